"""Where the wall time of a fine-tuning epoch goes, and how much memory the run holds.

    python benchmarks/bench_train_epoch.py [--model mn04_as] [--classes 10] [--per-class 30] [--epochs 10]

Fine-tunes on real recordings (Free Spoken Digit Dataset from ../shared: N digits x M clips, a folder with one
sub-folder per class) with the default settings of `dymn finetune folder` (the "auto" recipe), stopped after
--epochs epochs (the schedule stays the full run's), under Lightning's SimpleProfiler. Prints a table of
seconds per epoch by part: data loading (decoding, resampling, the cache, waveform roll/gain/mix, collation),
the frontend and spectrogram augmentation, forward + loss, backward, the optimizer step, validation,
checkpointing, and what is left (Lightning's loop, logging, between epochs). The first epoch, which decodes
and caches every clip, is shown apart. Then peak memory (RSS) and CPU time (user, system).
"""

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import SHARED, private_cache


def make_set(dst: Path, classes: int, per_class: int) -> Path:
    files = sorted((SHARED / "data" / "fsdd" / "recordings").glob("*.wav"))
    if not files:
        sys.exit("no FSDD recordings under ../shared/data/fsdd")
    for d in range(classes):
        mine = [f for f in files if f.stem.split("_")[0] == str(d)]
        step = len(mine) / per_class
        for f in [mine[int(i * step)] for i in range(per_class)]:
            (dst / str(d)).mkdir(parents=True, exist_ok=True)
            (dst / str(d) / f.name).symlink_to(f)
    return dst


def _sum(durations: dict, *needles: str, exact: bool = True) -> float:
    if exact:
        return sum(sum(durations.get(n, [])) for n in needles)
    return sum(sum(v) for k, v in durations.items() if any(n in k for n in needles))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mn04_as")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dymn-epoch-"))
    os.environ.update(private_cache(work, args.model))
    import torch
    from lightning.pytorch.profilers import SimpleProfiler

    import dymn
    from dymn.train import TaskDataModule, fit, train_config

    data = TaskDataModule("folder", make_set(work / "data", args.classes, args.per_class))
    model = dymn.load(args.model, num_classes=data.num_classes)
    cfg = train_config("folder", model.info.arch, data.num_train)
    prof = SimpleProfiler()
    t0 = time.perf_counter()
    fit(model, data, cfg, work / "run", progress=False, profiler=prof, max_epochs=args.epochs)
    wall = time.perf_counter() - t0
    d = prof.recorded_durations
    steps = data.steps_per_epoch()
    loading = d.get("[_TrainingEpochLoop].train_dataloader_next", [])
    frontend = _sum(d, "[dymn] frontend and spectrogram augmentation")
    step = _sum(d, "[Strategy]SingleDeviceStrategy.training_step")
    backward = _sum(d, "[Strategy]SingleDeviceStrategy.backward")
    optimizer = _sum(d, "[LightningModule]TaggingModule.optimizer_step") - step - backward
    validation = _sum(d, "[_EvaluationLoop].val_next", "[Strategy]SingleDeviceStrategy.validation_step",
                      "[LightningModule]TaggingModule.on_validation_epoch_end")  # fmt: skip
    checkpoints = _sum(d, "save_checkpoint") + _sum(d, "EpochReport.on_train_epoch_end", exact=False)
    parts = [
        ("data loading, epoch 1 (decode, resample, cache)", sum(loading[:steps])),
        ("data loading, later epochs (cache, roll/gain)", sum(loading[steps:])),
        ("frontend + spectrogram augmentation", frontend),
        ("forward + loss", step - frontend),
        ("backward", backward),
        ("optimizer step", optimizer),
        (f"validation (every {cfg.val_every} epochs, {len(data.data.val)} clips)",
         validation),
        ("checkpoints (last.ckpt, epoch ckpt, model_best.pt)", checkpoints),
    ]  # fmt: skip
    parts.append(("everything else (loop, logging, setup, final model.pt)", wall - sum(p for _, p in parts)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # decoding workers, when the data is large
    print(f"\n{args.model}, {data.num_train} training / {len(data.data.val)} validation clips of "
          f"{data.cfg.clip_seconds:g} s, batch {cfg.batch_size}, {steps} steps per epoch, {args.epochs} epochs, "
          f"{data.cfg.num_workers} decoding workers, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")  # fmt: skip
    print("| part | seconds | per epoch | share |\n|---|---:|---:|---:|")
    for name, secs in parts:
        print(f"| {name} | {secs:.1f} | {secs / args.epochs:.2f} | {100 * secs / wall:.0f} % |")
    print(f"| **total** | **{wall:.1f}** | **{wall / args.epochs:.2f}** | 100 % |")
    print(f"\npeak RSS {usage.ru_maxrss / 1024:.0f} MB (largest worker {children.ru_maxrss / 1024:.0f} MB); "
          f"CPU time user {usage.ru_utime + children.ru_utime:.0f} s, "
          f"system {usage.ru_stime + children.ru_stime:.0f} s")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
