"""Fine-tuning on real recordings: the Free Spoken Digit Dataset (../shared/data/fsdd), on CPU.

    python benchmarks/bench_finetune_fsdd.py [--epochs 8] [--threads 2]

Split by recording index (index 0-4 of every speaker and digit = test, 300 clips; the rest = train,
2,700 clips): the test speakers are also in training, so this is not speaker-independent.
A) mn04_as from the released AudioSet checkpoint (../shared/weights/mn04_as_mAP_432.pt);
B) DyMN width 0.4 from scratch, given the same wall-clock budget as A.
Prints test accuracy and wall time of each as a markdown table.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

import dymn
from dymn.train.module import seed_all
from dymn.train.runner import evaluate, fit, make_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def make_split(dst: Path) -> Path:
    src = SHARED / "data" / "fsdd" / "recordings"
    files = sorted(src.glob("*.wav"))
    if not files:
        sys.exit(f"no recordings under {src}")
    for f in files:
        digit, _speaker, index = f.stem.split("_")
        part = "test" if int(index) < 5 else "train"
        target = dst / part / digit / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(f)
    return dst


def run(name, model, data, out, overrides, max_time=None):
    cfg, settings = make_config("folder", model.arch, overrides)
    t = time.perf_counter()
    module, final = fit("folder", data, model, out, cfg, settings, progress=False, max_time=max_time,
                        cache_dir=str(out.parent / "cache"))  # fmt: skip
    wall = time.perf_counter() - t
    acc = evaluate("folder", data, dymn.load(weights=final), settings)["accuracy"]
    print(f"{name}: test accuracy {acc:.4f} after {module.current_epoch} epochs, {wall:.0f} s", file=sys.stderr)
    print((out / "logs" / "metrics.csv").read_text(), file=sys.stderr)  # per-epoch validation accuracy
    return acc, wall, module.current_epoch


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", default=str(SHARED / "weights" / "mn04_as_mAP_432.pt"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        data = make_split(d / "fsdd")
        common = dict(batch_size=32, warm_up_len=1, ramp_down_start=2, ramp_down_len=a.epochs - 2, seed=0)
        seed_all(0)
        mn = dymn.load("mn04_as", weights=a.weights, num_classes=10)
        acc_a, wall_a, ep_a = run(
            "mn04_as (AudioSet weights)", mn, data, d / "a", dict(common, epochs=a.epochs, lr=1e-3)
        )
        seed_all(0)
        # from scratch as the reference trains DyMNs: temperature annealed from T_max = 30 by 1 per epoch;
        # BatchNorm momentum 0.1 so that fresh running statistics settle within the run
        scratch = dymn.load("dymn", width_mult=0.4, num_classes=10, pretrained=False)
        long = 4 * a.epochs  # the schedule's length; the time budget ends the run first
        scratch_cfg = dict(common, epochs=long, lr=2e-3, ramp_down_len=long - 2, bn_momentum=0.1,
                           temperature_schedule=True)  # fmt: skip
        acc_b, wall_b, ep_b = run("dymn04 from scratch", scratch, data, d / "b", scratch_cfg, max_time=wall_a)
    print(f"FSDD, 2,700 train / 300 test clips (index split), CPU, {a.threads} threads\n")
    print("| model | start | epochs | wall time (s) | test accuracy |")
    print("|---|---|---|---|---|")
    print(f"| mn04 | AudioSet checkpoint mn04_as | {ep_a} | {wall_a:.0f} | {100 * acc_a:.1f}% |")
    print(f"| DyMN width 0.4 | random init (same time budget) | {ep_b} | {wall_b:.0f} | {100 * acc_b:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
