"""``dymn train``, ``dymn finetune`` and ``dymn evaluate`` (registered into the main CLI)."""

from __future__ import annotations

import argparse
import sys

from ..util.errors import UsageError, require
from .common import command


def _type(hint: str):
    """argparse type of a config field's annotation (``float | None`` -> float)."""
    for name, typ in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if hint.split("|")[0].strip() == name:
            return typ
    return str


def _default_text(name: str, default) -> str:
    """What a flag defaults to, as --help shows it: the "auto" recipe's value, noting what adapts to the data."""
    from ..train.recipes import ADAPTED, AUTO_DEFAULTS, RECIPES

    if name in ADAPTED:
        return "auto: set from the number of training clips; a named --recipe: its value"
    auto = {**RECIPES["folder"], **AUTO_DEFAULTS}
    if name in auto:
        value = auto[name]
        value = value[0] if isinstance(value, tuple) else value
        if value == "auto":
            return "auto: the longest training clip, at most 10 s; a named --recipe: its value"
        return f"{value} with the auto recipe; a named --recipe: its value"
    return "off" if default is False else "none" if default is None else str(default)


def add_config_arguments(group, cls) -> None:
    """One option per CLI field of a config dataclass, with its help and its default (None: not given)."""
    from ..train.config import config_fields

    for f in config_fields(cls):
        flag = "--" + f.name.replace("_", "-")
        text = f.metadata["help"]
        if "(default:" not in text:
            text += f" (default: {_default_text(f.name, f.default)})"
        typ = _type(str(f.type))
        if typ is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(flag, type=typ, default=None, help=text)


def config_overrides(args, *classes) -> dict:
    """The config fields the user gave on the command line (None: not given)."""
    from ..train.config import config_fields

    out = {}
    for cls in classes:
        for f in config_fields(cls):
            value = getattr(args, f.name, None)
            if value is not None:
                out[f.name] = value
    return out


def _common(p: argparse.ArgumentParser, training: bool = True) -> None:
    p.add_argument("--data", required=True,
                   help="dataset folder (the csv task: a CSV file; strong: a TSV of filename, onset, offset, "
                        "event_label)")  # fmt: skip
    p.add_argument("--model", default=None,
                   help="registry name (its released weights), mn / dymn (random), or a dymn checkpoint")  # fmt: skip
    p.add_argument("--weights", default=None, help="start from local weights (a plain state dict with --model)")
    p.add_argument("--width-mult", type=float, default=None, help="width for --model mn / dymn")
    if not training:
        p.add_argument(
            "--batch-size",
            type=int,
            default=8,
            help="clips per model call (8, as every inference command: one backend measurement)",
        )
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
        p.add_argument("--clip-seconds", type=float, default=None, help="pad or crop clips to this (default: recipe)")
        p.add_argument("--fold", type=int, default=None, help="ESC-50 test fold (default: recipe, 1)")
        p.add_argument("--val-csv", default=None, help="csv: the evaluation CSV")
        p.add_argument(
            "--val-fraction",
            type=float,
            default=None,
            help="folder/csv: evaluate only this seeded held-out fraction (default: every clip)",
        )
        p.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
        return
    p.add_argument("--out", required=True, help="run folder: checkpoints, logs, final model.pt")
    p.add_argument("--from-scratch", action="store_true", help="random initialisation (no released weights)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--recipe", default=None,
                   help="where the defaults come from: auto (adapted to the amount of data; the default for folder "
                        "and csv) or a published recipe (esc50, fsd50k, openmic, dcase20, audioset; the default for "
                        "those tasks)")  # fmt: skip
    from ..train.config import DataConfig, TrainConfig

    add_config_arguments(p.add_argument_group(
        "training (with the auto recipe, batch size, epochs, LR and schedule are set from the number of training "
        "clips, and the run prints what it chose)"), TrainConfig)  # fmt: skip
    add_config_arguments(p.add_argument_group("data"), DataConfig)
    p.add_argument("--teacher", default=None, help="online KD teacher: registry name(s), a,b,c")
    p.add_argument("--teacher-logits", default=None, help="KD teacher logits table (.npy, clips x classes)")
    p.add_argument("--teacher-index", default=None, help="clip id -> table row (.json, .csv or the official .pkl)")
    p.add_argument("--devices", default="auto", help="Lightning devices (e.g. 1, 4, auto)")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator (cpu, gpu, auto)")
    p.add_argument("--precision", default=None, help="32-true, bf16-mixed, 16-mixed, ... (default: 32-true)")
    p.add_argument("--num-nodes", type=int, default=1, help="machines for multi-node DDP")
    p.add_argument("--strategy", default="auto", help="Lightning strategy (ddp, ddp_spawn, fsdp, ...)")
    p.add_argument("--wandb", action="store_true", help="also log to Weights & Biases")
    p.add_argument("--export-plain", action="store_true", help="also write a reference-style state dict")
    p.add_argument("--push-to-hub", default=None, metavar="REPO_ID",
                   help="push the finished model, its card and run report, to this Hugging Face Hub repo")  # fmt: skip
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal; per-epoch lines are always printed)")  # fmt: skip


def register(sub) -> None:
    from ..train.recipes import TASKS

    t = command(sub, "train", "AudioSet pre-training with knowledge distillation (Lightning)", cmd_train)
    t.add_argument("task", choices=("audioset",), help="the training recipe")
    _common(t)
    f = command(sub, "finetune", "fine-tune on ESC-50, FSD50K, OpenMIC, DCASE20 or your own data (folder, csv; strong: "
                            "a frame-level detector on events with onsets and offsets)", cmd_train)  # fmt: skip
    f.add_argument("task", choices=[x for x in TASKS if x != "audioset"], help="dataset layout and recipe")
    _common(f)
    e = command(sub, "evaluate", "mAP / ROC-AUC or accuracy of a model on a dataset", cmd_evaluate)
    e.add_argument("task", choices=[x for x in TASKS if x != "strong"],
                   help="dataset layout (detectors: dymn evaluate-sed)")  # fmt: skip
    _common(e, training=False)


def _model(args, num_classes: int):
    from ..hub.loader import load

    extra = {"width_mult": args.width_mult} if args.width_mult else {}
    if args.model is None and args.weights is None:
        example = "fmn10_tf256" if args.task == "strong" else "mn10_as"
        raise UsageError(f"name a model with --model (e.g. --model {example}) or give --weights")
    return load(args.model, weights=args.weights, pretrained=not args.from_scratch, num_classes=num_classes, **extra)


def _check_before_training(args) -> None:
    """What can fail before any data is read or any time is spent training."""
    require("lightning", "train", "training")
    if bool(args.teacher_logits) != bool(args.teacher_index):
        raise UsageError("--teacher-logits and --teacher-index go together")
    if args.push_to_hub:
        from ..hub.huggingface import parse_hf

        require("huggingface_hub", "hub", "--push-to-hub")
        parse_hf(f"hf-hub:{args.push_to_hub}")


def cmd_train(args) -> int:
    _check_before_training(args)
    from ..hub.publish import push_to_hub
    from ..train.config import DataConfig, TrainConfig
    from ..train.datamodule import TaskDataModule
    from ..train.module import seed_all
    from ..train.recipes import data_config, train_config
    from ..train.runner import fit
    from ..train.teacher import make_teacher

    given = config_overrides(args, TrainConfig, DataConfig)
    seed = given.get("seed", 0)
    data = TaskDataModule(args.task, args.data, data_config(args.task, given, args.recipe), seed=seed)
    seed_all(seed)  # the initial weights of a fresh model are part of a reproducible run
    model = _model(args, data.num_classes)
    scratch = args.from_scratch or (args.weights is None and args.model in ("mn", "dymn"))
    cfg = train_config(args.task, model.info.arch, data.num_train, given, args.recipe, scratch=scratch)
    teacher = make_teacher(args.teacher_logits, args.teacher_index, args.teacher, cfg.kd_temperature)
    _, final = fit(model, data, cfg, args.out, teacher=teacher, resume=args.resume, wandb=args.wandb,
                   progress=sys.stderr.isatty() if args.progress is None else args.progress,
                   export_plain=args.export_plain, devices=args.devices, accelerator=args.accelerator,
                   precision=args.precision, num_nodes=args.num_nodes, strategy=args.strategy)  # fmt: skip
    use = "detect" if model.info.level == "frame" else "tag"
    print(f"wrote {final} ({use} with: dymn {use} FILE --model {final})")
    if args.push_to_hub:
        print(f"pushed {args.push_to_hub}: {push_to_hub(final, args.push_to_hub)}")
    return 0


def cmd_evaluate(args) -> int:
    from ..train.runner import evaluate

    settings = {k: getattr(args, k) for k in ("clip_seconds", "fold", "val_csv", "val_fraction")}
    settings = {k: v for k, v in settings.items() if v is not None}
    if args.model is None and args.weights is None:
        raise UsageError("evaluate needs --model NAME|FILE or --weights FILE")
    metrics = evaluate(args.task, args.data, args.model, settings, batch_size=args.batch_size, device=args.device,
                       progress=sys.stderr.isatty(), weights=args.weights)  # fmt: skip
    for k, v in metrics.items():
        print(f"{k}: {v:.4f}" if k not in ("clips", "skipped") else f"{k}: {int(v)}")
    return 0
