"""``dymn train``, ``dymn finetune`` and ``dymn evaluate`` (registered into the main CLI)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import MissingDependencyError, UsageError

# CLI option -> type, TrainConfig / dataset setting, help. None keeps the recipe's value (`--recipe`, shown by
# --help as "recipe"): the recipes of the reference differ per task and per architecture (spec 6).
_HYPER = [
    ("--epochs", int, "epochs", "training epochs"),
    ("--batch-size", int, "batch_size", "clips per optimizer step"),
    ("--lr", float, "lr", "peak learning rate (Adam)"),
    ("--weight-decay", float, "weight_decay", "weight decay"),
    ("--warm-up-len", float, "warm_up_len", "epochs of exponential LR warm-up"),
    ("--ramp-down-start", float, "ramp_down_start", "epoch where the linear LR ramp-down starts"),
    ("--ramp-down-len", float, "ramp_down_len", "epochs of linear LR ramp-down"),
    ("--last-lr-value", float, "last_lr_value", "final LR as a fraction of the peak"),
    ("--mixup-alpha", float, "mixup_alpha", "mixup Beta(alpha, alpha) on spectrograms; 0 = off"),
    ("--kd-lambda", float, "kd_lambda", "weight of the label loss when a teacher is used (1 - weight of KD)"),
    ("--kd-temperature", float, "kd_temperature", "temperature of the teacher's probabilities"),
    ("--freqm", int, "freqm", "frequency masking width in mel bins; 0 = off"),
    ("--timem", int, "timem", "time masking width in frames; 0 = off"),
    ("--fmin-aug-range", int, "fmin_aug_range", "random shift of the mel fmin (Hz)"),
    ("--fmax-aug-range", int, "fmax_aug_range", "random shift of the mel fmax (Hz)"),
    ("--seed", int, "seed", "random seed (every draw depends on seed, epoch, step, rank)"),
    ("--num-workers", int, "num_workers", "background decoding processes (default: cores - 1, at most 4)"),
    ("--clip-seconds", float, "clip_seconds", "clip length: pad or crop to this (folder/csv: longest clip, <= 10 s)"),
    ("--roll", int, "roll", "random time roll of the waveform, in samples; 0 = off"),
    ("--gain", int, "gain", "random gain, +-dB; 0 = off"),
    ("--wavmix", float, "wavmix", "probability of mixing two waveforms; 0 = off"),
    ("--fold", int, "fold", "ESC-50 test fold (1-5)"),
    ("--val-fraction", float, "val_fraction", "folder/csv: fraction of clips held out for validation"),
    ("--val-csv", str, "val_csv", "csv: a separate validation CSV instead of a held-out fraction"),
    ("--epoch-len", int, "epoch_len", "AudioSet: clips sampled per epoch"),
    ("--bn-momentum", float, "bn_momentum", "BatchNorm momentum (default 0.01 fine-tuning, 0.1 from scratch)"),
    ("--lr-decay", float, "lr_decay", "layer-wise LR decay: each block below the top gets this factor (1 = off)"),
    ("--val-every", int, "val_every", "validate and checkpoint every N epochs"),
]  # fmt: skip


def _common(p: argparse.ArgumentParser, training: bool = True) -> None:
    p.add_argument("--data", required=True, help="dataset folder (or CSV file for the csv task)")
    p.add_argument("--model", default=None,
                   help="registry name (its released weights), mn / dymn (random), or a dymn checkpoint")  # fmt: skip
    p.add_argument("--weights", default=None, help="start from local weights (a plain state dict with --model)")
    p.add_argument("--width-mult", type=float, default=None, help="width for --model mn / dymn")
    if not training:
        p.add_argument("--batch-size", type=int, default=16, help="clips per model call")
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
        p.add_argument("--clip-seconds", type=float, default=None, help="pad or crop clips to this (default: recipe)")
        p.add_argument("--fold", type=int, default=None, help="ESC-50 test fold (default: recipe, 1)")
        p.add_argument("--val-csv", default=None, help="csv: the evaluation CSV")
        p.add_argument("--val-fraction", type=float, default=None, help="folder/csv: held-out fraction")
        p.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
        return
    p.add_argument("--out", required=True, help="run folder: checkpoints, logs, final model.pt")
    p.add_argument("--from-scratch", action="store_true", help="random initialisation (no released weights)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--recipe", default=None,
                   help="where the defaults come from: auto (adapted to the amount of data; the default for folder "
                        "and csv) or a published recipe (esc50, fsd50k, openmic, dcase20, audioset; the default for "
                        "those tasks)")  # fmt: skip
    p.add_argument("--freeze-backbone", action="store_true", default=None,
                   help="train only the classifier on the frozen network's features (fast; a strong baseline "
                        "for tiny sets)")  # fmt: skip
    hyper = p.add_argument_group(
        "hyperparameters (default: the recipe's value; with --recipe auto, batch size, epochs, LR and schedule "
        "are set from the number of training clips, and the run prints what it chose)")  # fmt: skip
    for flag, typ, _, text in _HYPER:
        hyper.add_argument(flag, type=typ, default=None, help=text)
    hyper.add_argument("--adamw", action="store_true", default=None, help="AdamW instead of Adam")
    hyper.add_argument("--lr-per-step", action="store_true", default=None, help="LR schedule per step, not per epoch")
    hyper.add_argument(
        "--temperature-schedule",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="DyMN: anneal the dynamic-conv temperature each epoch (default: on from scratch)",
    )
    p.add_argument("--teacher", default=None, help="online KD teacher: registry name(s), a,b,c")
    p.add_argument("--teacher-logits", default=None, help="KD teacher logits table (.npy, clips x classes)")
    p.add_argument("--teacher-index", default=None, help="clip id -> table row (.json, .csv or the official .pkl)")
    p.add_argument("--devices", default="auto", help="Lightning devices (e.g. 1, 4, auto)")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator (cpu, gpu, auto)")
    p.add_argument("--precision", default=None, help="32-true, bf16-mixed, 16-mixed, ... (default: 32-true)")
    p.add_argument("--num-nodes", type=int, default=1, help="machines for multi-node DDP")
    p.add_argument("--strategy", default="auto", help="Lightning strategy (ddp, ddp_spawn, fsdp, ...)")
    p.add_argument("--wandb", action="store_true", help="also log to Weights & Biases")
    p.add_argument("--cache-dir", default=None, help="cache for resampled audio (default $DYMN_CACHE/audio)")
    p.add_argument("--export-plain", action="store_true", help="also write a reference-style state dict")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal; per-epoch lines are always printed)")  # fmt: skip


def register(sub, formatter=argparse.HelpFormatter) -> None:
    from .recipes import TASKS

    def command(name, text):
        return sub.add_parser(name, help=text, description=text, formatter_class=formatter)

    t = command("train", "AudioSet pre-training with knowledge distillation (Lightning)")
    t.add_argument("task", choices=("audioset",), help="the training recipe")
    _common(t)
    t.set_defaults(func=cmd_train)
    f = command("finetune", "fine-tune on ESC-50, FSD50K, OpenMIC, DCASE20 or your own data (folder, csv)")
    f.add_argument("task", choices=[x for x in TASKS if x != "audioset"], help="dataset layout and recipe")
    _common(f)
    f.set_defaults(func=cmd_train)
    e = command("evaluate", "mAP / ROC-AUC or accuracy of a model on a dataset")
    e.add_argument("task", choices=TASKS, help="dataset layout")
    _common(e, training=False)
    e.set_defaults(func=cmd_evaluate)


def _model(args, num_classes: int):
    from ..errors import UsageError
    from ..loader import load

    extra = {"width_mult": args.width_mult} if args.width_mult else {}
    if args.model is None and args.weights is None:
        raise UsageError("name a model with --model (e.g. --model mn10_as) or give --weights")
    return load(args.model, weights=args.weights, pretrained=not args.from_scratch, num_classes=num_classes, **extra)


def cmd_train(args) -> int:
    try:
        import lightning  # noqa: F401
    except ImportError:
        raise MissingDependencyError("training needs PyTorch Lightning: pip install 'dymn[train]'") from None
    from ..hub import cache_dir
    from .module import seed_all
    from .recipes import adapt_to_data, make_config
    from .runner import build_task, fit
    from .teacher import LogitsTable, OnlineTeacher

    if bool(args.teacher_logits) != bool(args.teacher_index):
        raise UsageError("--teacher-logits and --teacher-index go together")
    overrides = {key: getattr(args, flag.lstrip("-").replace("-", "_")) for flag, _, key, _ in _HYPER}
    overrides.update(adamw=args.adamw, lr_per_step=args.lr_per_step, freeze_backbone=args.freeze_backbone)
    explicit = {k for k, v in overrides.items() if v is not None}
    probe = "dymn" if (args.model or "").startswith("dymn") else "mn"
    cfg, settings = make_config(args.task, probe, overrides, recipe=args.recipe)
    cache = args.cache_dir or str(cache_dir() / "audio")
    td = build_task(args.task, args.data, settings, seed=cfg.seed, train=True, cache_dir=cache)
    seed_all(cfg.seed)  # the initial weights of a fresh model are part of a reproducible run
    model = _model(args, len(td.labels))
    if model.arch != probe:  # e.g. --weights of a DyMN with no --model: take the DyMN recipe
        cfg, settings = make_config(args.task, model.arch, overrides, recipe=args.recipe)
    cfg = adapt_to_data(cfg, len(td.train), model.arch, explicit)
    if "num_workers" not in explicit:
        # decoding is cached after the first epoch: background workers pay off only for larger sets
        audio_seconds = len(td.train) * (td.clip_seconds or 10.0)
        cfg.num_workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if audio_seconds > 1800 else 0
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
                   num_nodes=args.num_nodes, strategy=args.strategy, wandb=args.wandb,
                   progress=sys.stderr.isatty() if args.progress is None else args.progress,
                   cache_dir=cache, export_plain=args.export_plain, task_data=td)  # fmt: skip
    print(f"wrote {final} (tag with: dymn tag FILE --model {final})")
    return 0


def cmd_evaluate(args) -> int:
    from ..errors import UsageError
    from ..loader import load
    from .runner import evaluate

    settings = {k: getattr(args, k) for k in ("clip_seconds", "fold", "val_csv", "val_fraction")}
    settings = {k: v for k, v in settings.items() if v is not None}
    if args.model is None and args.weights is None:
        raise UsageError("evaluate needs --model NAME|FILE or --weights FILE")
    model = load(args.model, weights=args.weights)
    metrics = evaluate(args.task, args.data, model, settings, batch_size=args.batch_size, device=args.device,
                       progress=sys.stderr.isatty())  # fmt: skip
    for k, v in metrics.items():
        print(f"{k}: {v:.4f}" if k not in ("clips", "skipped") else f"{k}: {int(v)}")
    return 0
