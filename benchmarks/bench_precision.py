"""Effect of reduced precision on a real checkpoint's outputs, and its speed.

    python benchmarks/bench_precision.py [--weights ../shared/weights/mn04_as_mAP_432.pt] [--audio DIR]

Runs the real mn04_as checkpoint on real clips in fp32 (the reference) and bf16 (CPU), printing the
largest probability difference, top-1 / top-5 agreement and ms per clip for each.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import dymn
from dymn.runtime.api import optimize
from dymn.util.timing import time_call

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="mn04_as")
    p.add_argument("--weights", default=str(ROOT.parent / "shared/weights/mn04_as_mAP_432.pt"))
    p.add_argument("--audio", default=str(ROOT.parent / "shared/audio"))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = dymn.load(a.model, weights=a.weights)
    files = sorted(Path(a.audio).rglob("*.wav"))
    if not files:
        print(f"no .wav files under {a.audio}", file=sys.stderr)
        return 2
    fe = dymn.MelFrontend.from_config(model.info.frontend).eval()
    specs = []
    for f in files:
        w = dymn.load_audio(f)[: 10 * 32000]
        w = np.pad(w, (0, 10 * 32000 - len(w)))  # equal lengths so clips batch together
        specs.append(fe(torch.from_numpy(w)[None]).unsqueeze(1))
    x = torch.cat(specs)
    rows = []
    with torch.inference_mode():
        ref = torch.sigmoid(optimize(model)(x)[0])
        for name, dtype in [("fp32", torch.float32), ("bf16", torch.bfloat16)]:
            fast = optimize(model, dtype=dtype)
            prob = torch.sigmoid(fast(x)[0])
            diff = (prob - ref).abs().max().item()
            top1 = (prob.argmax(1) == ref.argmax(1)).float().mean().item()
            top5 = np.mean(
                [len(set(prob[i].topk(5).indices.tolist()) & set(ref[i].topk(5).indices.tolist())) / 5
                 for i in range(len(files))]
            )  # fmt: skip
            ms = time_call(lambda m=fast: m(x[:8]), 5) * 1000 / min(8, len(files))
            rows.append(f"| {name} | {diff:.4f} | {100 * top1:.0f}% | {100 * top5:.0f}% | {ms:.1f} |")
    print(f"{a.model} on {len(files)} real clips (10 s), {a.threads} threads, CPU\n")
    cols = ["precision", "max abs probability difference vs fp32", "top-1 agreement", "top-5 overlap",
            "ms/clip (batch 8)"]  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
