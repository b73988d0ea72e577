"""Plain `dymn tag` against `dymn batch tag` (Ray) on the same ~1,000 real clips and the same cores.

    python benchmarks/bench_batch.py [--model mn04_as] [--files 1000]

The corpus is built from ../shared: spoken digits (FSDD, 8 kHz, about 0.5 s each) and crops of 3-10 s from the
real recordings in ../shared/audio (the metro station and the samples, at their own rates), every file a
real recording. Each command runs as a user would type it, in its own process; peak memory is the largest
proportional set size (PSS: shared pages counted once) of the process tree, sampled every 0.5 s (for Ray:
the driver and all of Ray's processes together: GCS, raylet, the model actor, the decoding workers). Then a
batch job is killed (SIGKILL of the driver, as a crashed machine) half-way and run again: the time to finish
is reported next to a full run. Prints a markdown table.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import make_corpus, private_cache, pss


def timed(cmd: list[str], env: dict, kill_after_shards: tuple[Path, int] | None = None) -> tuple[float, int, str]:
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, pss(proc.pid))
        if kill_after_shards and len(list(kill_after_shards[0].glob("*.parquet"))) >= kill_after_shards[1]:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.5)  # reading every process's smaps costs CPU: not too often
    out = proc.communicate()[0]
    return time.perf_counter() - t, peak, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mn04_as")
    ap.add_argument("--files", type=int, default=1000)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dymn-batch-"))
    env = private_cache(work, a.model)
    corpus = make_corpus(work / "corpus", a.files)
    dymn = [sys.executable, "-m", "dymn.cli"]
    batch = [*dymn, "batch", "tag", str(corpus), "--model", a.model, "--shard-size", "100"]
    rows = []
    secs, peak, _ = timed([*dymn, "tag", str(corpus), "--model", a.model, "--format", "json", "-o",
                           str(work / "tags.json")], env)  # fmt: skip
    rows.append(("`dymn tag DIR` (one process, 2 threads)", secs, peak))
    secs, peak, out = timed([*batch, "-o", str(work / "b1")], env)
    rows.append(("`dymn batch tag DIR -o OUT` (local Ray: 1 model actor on 1 thread, decoding tasks)", secs, peak))
    print(out.strip(), file=sys.stderr)
    secs, peak, out = timed([*batch, "--threads", "2", "-o", str(work / "b3")], env)
    rows.append(("`dymn batch tag DIR -o OUT --threads 2`", secs, peak))
    print(out.strip(), file=sys.stderr)
    shards = len(list((work / "b1").glob("*.parquet")))
    part = work / "b2"
    killed, _, _ = timed([*batch, "-o", str(part)], env,
                         kill_after_shards=(part, max(1, shards // 2)))  # fmt: skip
    subprocess.run(["ray", "stop", "--force"], capture_output=True)  # the killed driver's Ray processes
    resumed, peak, out = timed([*batch, "-o", str(part)], env)
    print(out.strip(), file=sys.stderr)
    import torch

    print(f"\n{a.files} real clips ({a.files * 7 // 10} spoken digits of ~0.5 s, {a.files * 3 // 10} crops of 3-10 s), "
          f"{a.model}, CPU, {os.cpu_count()} cores, torch {torch.__version__}\n")  # fmt: skip
    print("| run | wall time (s) | files/s | peak memory, PSS (MB) |\n|---|---:|---:|---:|")
    for name, s, p in rows:
        print(f"| {name} | {s:.1f} | {a.files / s:.1f} | {p / 2**20:.0f} |")
    print(
        f"\nkilled (SIGKILL) after {max(1, shards // 2)} of {shards} shards at {killed:.1f} s; "
        f"the same command again finished the rest in {resumed:.1f} s (a full run: {rows[1][1]:.1f} s)"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
