"""Fine-tuning with default settings on real recordings of several sizes (Free Spoken Digit Dataset).

    python benchmarks/bench_finetune_fsdd.py [--model mn04_as] [--sets small,medium,full]

Every run is the command a user would type, `dymn finetune folder --data DIR --model mn04_as --out RUN`,
with no other setting (and once more with `--freeze-backbone`); test accuracy from `dymn evaluate folder`
on the held-out `test/` tree of the same folder (the last epoch's model.pt, not the best on validation).
  - 4x16:   4 digits x 16 clips (same four speakers), tested on the other two: early stopping's case;
  - small:  3 digits x 20 clips (speakers jackson, nicolas, theo, yweweler), tested on the 300 clips of
            those digits by the other two speakers (george, lucas): speaker-independent;
  - medium: 10 digits x 30 clips (same four speakers), tested on the other two: speaker-independent;
  - full:   2,700 clips (recording index 5-49 of every speaker and digit), tested on index 0-4 (300 clips;
            the test speakers are in training, as in the earlier README table).
The released mn04_as checkpoint comes from ../shared/weights (put in a temporary DYMN_CACHE).
Prints a markdown table of test accuracy and wall time.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TRAIN_SPEAKERS = ("jackson", "nicolas", "theo", "yweweler")


def _link(f: Path, dst: Path, part: str) -> None:
    target = dst / part / f.stem.split("_")[0] / f.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(f)


def make_set(name: str, dst: Path) -> Path:
    files = sorted((SHARED / "data" / "fsdd" / "recordings").glob("*.wav"))
    if not files:
        sys.exit("no FSDD recordings under ../shared/data/fsdd")
    if name == "full":
        for f in files:
            _link(f, dst, "test" if int(f.stem.split("_")[2]) < 5 else "train")
        return dst
    digits, per_class = {"small": (("0", "1", "2"), 20), "medium": (tuple("0123456789"), 30),
                         "4x16": (("0", "1", "2", "3"), 16)}[name]  # fmt: skip
    for d in digits:
        train = [f for f in files if f.stem.split("_")[0] == d and f.stem.split("_")[1] in TRAIN_SPEAKERS]
        # spread the picks over the train speakers and recording indices
        step = len(train) / per_class
        for f in [train[int(i * step)] for i in range(per_class)]:
            _link(f, dst, "train")
        for f in files:
            if f.stem.split("_")[0] == d and f.stem.split("_")[1] not in TRAIN_SPEAKERS:
                _link(f, dst, "test")
    return dst


def dymn(*args: str, env: dict) -> tuple[str, float]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "dymn.cli", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"dymn {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout + r.stderr, wall


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mn04_as")
    p.add_argument("--sets", default="small,medium,full")
    p.add_argument(
        "--runs",
        default="defaults,freeze",
        help="defaults, freeze (--freeze-backbone) and/or full (--no-early-stop: every planned epoch)",
    )
    p.add_argument("--weights", default=str(SHARED / "weights" / "mn04_as_mAP_432.pt"))
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cache = d / "cache"
        cache.mkdir()
        shutil.copy(a.weights, cache / Path(a.weights).name)
        env = dict(os.environ, DYMN_CACHE=str(cache))
        for name in a.sets.split(","):
            data = make_set(name, d / name)
            n_train = sum(1 for _ in (data / "train").rglob("*.wav"))
            n_test = sum(1 for _ in (data / "test").rglob("*.wav"))
            runs = {"defaults": [], "freeze": ["--freeze-backbone"], "full": ["--no-early-stop"]}
            for extra in [runs[r] for r in a.runs.split(",")]:
                out = d / f"run-{name}-{'-'.join(extra) or 'defaults'}"
                log, wall = dymn("finetune", "folder", "--data", str(data), "--model", a.model, "--out", str(out),
                                 *extra, env=env)  # fmt: skip
                settings = next(line for line in log.splitlines() if line.startswith("settings"))
                stop = next((line for line in log.splitlines() if line.startswith("stopped early")), "")
                settings += f"; {stop.split(':')[0]}" if stop else "; every planned epoch"
                ev, _ = dymn("evaluate", "folder", "--data", str(data), "--model", str(out / "model.pt"), env=env)
                acc = float(next(x for x in ev.splitlines() if x.startswith("accuracy:")).split()[1])
                print(
                    f"{name} {' '.join(extra) or 'defaults'}: {acc:.4f} in {wall:.0f} s\n  {settings}", file=sys.stderr
                )
                rows.append((name, n_train, n_test, " ".join(extra) or "(defaults)", settings, acc, wall))
    print(f"`dymn finetune folder --data DIR --model {a.model} --out RUN [--freeze-backbone]`, FSDD, CPU (2 cores)\n")
    print("| set | train clips | test clips | flags | what `auto` chose | test accuracy | wall time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, n_tr, n_te, flags, settings, acc, wall in rows:
        chose = settings.split(": ", 1)[1].split("; mixup")[0].split("; ", 1)[-1]
        print(f"| {name} | {n_tr} | {n_te} | {flags} | {chose} | {100 * acc:.1f}% | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
