"""Inference speed table (markdown): reference-style forward vs dymn eager vs every installed backend.

    python benchmarks/bench_inference.py [--models mn04_as,...] [--batch 1,8] [--threads 2]
                                         [--out benchmarks/results/inference-cpu.md] [--malloc default|tuned]

Same as `dymn bench`; ms per 10 s clip, minimum over rounds; GEMM rate measured in the same run. By default the
C allocator is left as a program using the library has it (the reference-style column then runs as the
reference would); `dymn bench` runs with it tuned, as every dymn command (dymn.util.allocator).
"""

import argparse
import platform
import sys
from pathlib import Path

import torch

import dymn
from dymn.runtime.bench import run_benchmark


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="mn04_as,mn10_as,dymn04_as,dymn10_as,dymn20_as")
    p.add_argument("--batch", default="1,8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    p.add_argument("--malloc", choices=["default", "tuned"], default="default",
                   help="glibc's allocator as a program using the library has it (default), or as the dymn "
                        "command sets it (dymn.util.allocator)")  # fmt: skip
    a = p.parse_args()
    if a.malloc == "tuned":
        from dymn.util.allocator import tune

        tune()
    table = run_benchmark(a.models.split(","), [int(b) for b in a.batch.split(",")], threads=a.threads,
                          device=a.device, repeats=a.repeats, log=lambda m: print(m, file=sys.stderr, flush=True),
                          build=lambda name: dymn.load(name, pretrained=False))  # fmt: skip
    cpu = platform.processor() or platform.machine()
    header = f"torch {torch.__version__}, {cpu}, {torch.get_num_threads()} threads\n\n"
    print(header + table)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(header + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
