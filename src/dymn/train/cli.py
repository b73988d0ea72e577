"""``dymn train``, ``dymn finetune`` and ``dymn evaluate`` (registered into the main CLI)."""

from __future__ import annotations

import argparse
import os
import sys

# CLI option -> TrainConfig / dataset setting (None = keep the recipe's default)
_HYPER = [
    ("--epochs", int, "epochs"), ("--batch-size", int, "batch_size"), ("--lr", float, "lr"),
    ("--weight-decay", float, "weight_decay"), ("--warm-up-len", float, "warm_up_len"),
    ("--ramp-down-start", float, "ramp_down_start"), ("--ramp-down-len", float, "ramp_down_len"),
    ("--last-lr-value", float, "last_lr_value"), ("--mixup-alpha", float, "mixup_alpha"),
    ("--kd-lambda", float, "kd_lambda"), ("--kd-temperature", float, "kd_temperature"),
    ("--freqm", int, "freqm"), ("--timem", int, "timem"), ("--fmin-aug-range", int, "fmin_aug_range"),
    ("--fmax-aug-range", int, "fmax_aug_range"), ("--seed", int, "seed"), ("--num-workers", int, "num_workers"),
    ("--clip-seconds", float, "clip_seconds"), ("--roll", int, "roll"), ("--gain", int, "gain"),
    ("--wavmix", float, "wavmix"), ("--fold", int, "fold"), ("--val-fraction", float, "val_fraction"),
    ("--val-csv", str, "val_csv"), ("--epoch-len", int, "epoch_len"), ("--bn-momentum", float, "bn_momentum"),
]  # fmt: skip


def _common(p: argparse.ArgumentParser, training: bool = True) -> None:
    p.add_argument("--data", required=True, help="dataset folder (or CSV file for the csv task)")
    p.add_argument("--model", default=None, help="registry name (released weights) or mn / dymn")
    p.add_argument("--weights", default=None, help="start from local weights instead")
    p.add_argument("--width-mult", type=float, default=None, help="width for --model mn / dymn")
    if not training:
        p.add_argument("--batch-size", type=int, default=16)
        p.add_argument("--device", default="cpu")
        p.add_argument("--clip-seconds", type=float, default=None)
        p.add_argument("--fold", type=int, default=None)
        p.add_argument("--val-csv", default=None)
        p.add_argument("--val-fraction", type=float, default=None)
        p.add_argument("--seed", type=int, default=0)
        return
    p.add_argument("--out", required=True, help="run folder: checkpoints, logs, final model.pt")
    p.add_argument("--from-scratch", action="store_true", help="random initialisation (no released weights)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    for flag, typ, _ in _HYPER:
        p.add_argument(flag, type=typ, default=None)
    p.add_argument("--adamw", action="store_true", default=None)
    p.add_argument("--lr-per-step", action="store_true", default=None, help="LR schedule per step, not per epoch")
    p.add_argument("--temperature-schedule", action=argparse.BooleanOptionalAction, default=None,
                   help="DyMN: anneal the dynamic-conv temperature every epoch (default: on from scratch)")  # fmt: skip
    p.add_argument("--teacher", default=None, help="online KD teacher: registry name(s), a,b,c")
    p.add_argument("--teacher-logits", default=None, help="KD teacher logits table (.npy, clips x classes)")
    p.add_argument("--teacher-index", default=None, help="clip id -> table row (.json, .csv or the official .pkl)")
    p.add_argument("--devices", default="auto", help="Lightning devices (e.g. 1, 4, auto)")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--precision", default=None, help="32-true, bf16-mixed, 16-mixed, ...")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--strategy", default="auto", help="Lightning strategy (ddp, ddp_spawn, fsdp, ...)")
    p.add_argument("--wandb", action="store_true", help="also log to Weights & Biases")
    p.add_argument("--cache-dir", default=None, help="cache for resampled audio (default $DYMN_CACHE/audio)")
    p.add_argument("--export-plain", action="store_true", help="also write a reference-style state dict")
    p.add_argument("--no-progress", action="store_true")


def register(sub) -> None:
    from .recipes import TASKS

    t = sub.add_parser("train", help="AudioSet pre-training with knowledge distillation (Lightning)")
    t.add_argument("task", choices=("audioset",))
    _common(t)
    t.set_defaults(func=cmd_train)
    f = sub.add_parser("finetune", help="fine-tune on ESC-50, FSD50K, OpenMIC, DCASE20 or your own data")
    f.add_argument("task", choices=[x for x in TASKS if x != "audioset"])
    _common(f)
    f.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="mAP / ROC-AUC or accuracy of a model on a dataset")
    e.add_argument("task", choices=TASKS)
    _common(e, training=False)
    e.set_defaults(func=cmd_evaluate)


def _model(args, num_classes: int, labels: list[str]):
    from ..factory import create_model
    from ..registry import is_registered

    extra = {"width_mult": args.width_mult} if args.width_mult else {}
    name = args.model
    if args.weights:
        return create_model(name, weights=args.weights, num_classes=num_classes, **extra)
    if name is None:
        raise ValueError("name a model with --model (e.g. --model mn10_as) or give --weights")
    if is_registered(name) and not getattr(args, "from_scratch", False):
        return create_model(name, pretrained=True, num_classes=num_classes, **extra)
    return create_model(name, num_classes=num_classes, **extra)


def cmd_train(args) -> int:
    try:
        import lightning  # noqa: F401
    except ImportError:
        raise ValueError("training needs PyTorch Lightning: pip install 'dymn[train]'") from None
    from ..hub import cache_dir
    from .module import seed_all
    from .recipes import make_config
    from .runner import build_task, fit
    from .teacher import LogitsTable, OnlineTeacher

    if bool(args.teacher_logits) != bool(args.teacher_index):
        raise ValueError("--teacher-logits and --teacher-index go together")
    overrides = {key: getattr(args, flag.lstrip("-").replace("-", "_")) for flag, _, key in _HYPER}
    overrides.update(adamw=args.adamw, lr_per_step=args.lr_per_step)
    probe = "dymn" if (args.model or "").startswith("dymn") else "mn"
    if overrides.get("num_workers") is None:  # decode in the background, leaving a core for training
        overrides["num_workers"] = min(4, max(0, (os.cpu_count() or 1) - 1))
    cfg, settings = make_config(args.task, probe, overrides)
    cache = args.cache_dir or str(cache_dir() / "audio")
    td = build_task(args.task, args.data, settings, seed=cfg.seed, train=True, cache_dir=cache)
    seed_all(cfg.seed)  # the initial weights of a fresh model are part of a reproducible run
    model = _model(args, len(td.labels), td.labels)
    if model.arch != probe:  # e.g. --weights of a DyMN with no --model: take the DyMN recipe
        cfg, settings = make_config(args.task, model.arch, overrides)
    scratch = args.from_scratch or (args.weights is None and args.model in ("mn", "dymn"))
    cfg.temperature_schedule = args.temperature_schedule if args.temperature_schedule is not None else (
        scratch or args.task == "audioset") and model.arch == "dymn"  # fmt: skip
    if cfg.bn_momentum is None and scratch:
        cfg.bn_momentum = 0.1  # fresh running statistics must settle within the run
    teacher = None
    if args.teacher_logits:
        teacher = LogitsTable(args.teacher_logits, args.teacher_index, cfg.kd_temperature)
    elif args.teacher:
        teacher = OnlineTeacher(args.teacher, cfg.kd_temperature)
    _, final = fit(args.task, args.data, model, args.out, cfg, settings, teacher=teacher, resume=args.resume,
                   devices=args.devices, accelerator=args.accelerator, precision=args.precision,
                   num_nodes=args.num_nodes, strategy=args.strategy, wandb=args.wandb, progress=not args.no_progress,
                   cache_dir=cache, export_plain=args.export_plain, task_data=td)  # fmt: skip
    print(f"wrote {final} (tag with: dymn tag FILE --weights {final})")
    return 0


def cmd_evaluate(args) -> int:
    from ..factory import create_model
    from ..registry import is_registered
    from .runner import evaluate

    settings = {k: getattr(args, k) for k in ("clip_seconds", "fold", "val_csv", "val_fraction")}
    settings = {k: v for k, v in settings.items() if v is not None}
    if args.weights:
        model = create_model(args.model, weights=args.weights)
    elif args.model and is_registered(args.model):
        model = create_model(args.model, pretrained=True)
    else:
        raise ValueError("evaluate needs --weights FILE or a registry --model")
    metrics = evaluate(args.task, args.data, model, settings, batch_size=args.batch_size, device=args.device,
                       progress=sys.stderr.isatty())  # fmt: skip
    for k, v in metrics.items():
        print(f"{k}: {v:.4f}" if k not in ("clips", "skipped") else f"{k}: {int(v)}")
    return 0
