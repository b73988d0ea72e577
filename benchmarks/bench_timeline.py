"""Timeline throughput and memory on a 1-hour file.

    python benchmarks/bench_timeline.py [--minutes 60] [--model mn04_as] [--weights FILE] [--hop 1]

Writes a long 44.1 kHz 16-bit file (real clips from ../shared/audio tiled, or noise), then runs
`dymn timeline` on it in a child process and reports windows per second and the child's peak RSS.
For comparison it also runs the reference's way on the first minutes: one window at a time through the
eager model (no batching, no optimize), as `windowed_inference.py` does.
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import dymn

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def write_long_file(path: Path, minutes: float, sr: int = 44100) -> None:
    clips = [dymn.load_audio(p, sr) for p in sorted((SHARED / "audio").rglob("*.wav"))[:8]]
    if not clips:
        clips = [np.random.default_rng(0).standard_normal(sr * 10).astype(np.float32) * 0.1]
    total = int(minutes * 60 * sr)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        written, i = 0, 0
        while written < total:
            c = clips[i % len(clips)][: total - written]
            f.write(np.clip(c, -1, 1))
            written += len(c)
            i += 1


def reference_style(path: Path, model_args: list[str], minutes: float, window: float, hop: float) -> float:
    """Windows per second, one window at a time through the eager model (the reference's approach)."""
    name = model_args[model_args.index("--model") + 1]
    weights = model_args[model_args.index("--weights") + 1] if "--weights" in model_args else None
    model = dymn.load(name, weights=weights) if weights else dymn.load(name, pretrained=False)
    fe = dymn.MelFrontend.from_config(model.info.frontend).eval()
    wave = dymn.load_audio(path)[: int(minutes * 60 * 32000)]
    win, h = int(window * 32000), int(hop * 32000)
    starts = range(0, len(wave) - win + 1, h)
    t = time.perf_counter()
    with torch.inference_mode():
        for s in starts:
            torch.sigmoid(model(fe(torch.from_numpy(wave[s : s + win])[None]).unsqueeze(1))[0])
    return len(starts) / (time.perf_counter() - t)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--model", default="mn04_as")
    p.add_argument("--weights", default=str(SHARED / "weights/mn04_as_mAP_432.pt"))
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--hop", type=float, default=1.0)
    p.add_argument("--reference-minutes", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model_args = ["--model", a.model] + (["--weights", a.weights] if Path(a.weights).is_file() else [])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "long.wav"
        write_long_file(path, a.minutes)
        size_mb = path.stat().st_size / 1e6
        cmd = [sys.executable, "-m", "dymn.cli", "timeline", str(path), *model_args, "--window", str(a.window),
               "--hop", str(a.hop), "--format", "csv", "-o", str(Path(d) / "events.csv")]  # fmt: skip
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env={"OMP_NUM_THREADS": str(a.threads), **__import__("os").environ})
        wall = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        n_windows = int((a.minutes * 60 - a.window) // a.hop) + 1
        ref_wps = reference_style(path, model_args, a.reference_minutes, a.window, a.hop)
    print(f"{a.minutes:g} min file ({size_mb:.0f} MB, 44.1 kHz 16-bit), {a.model}, windows of {a.window:g} s "
          f"every {a.hop:g} s, {a.threads} threads\n")  # fmt: skip
    print("| path | windows | wall (s) | windows/s | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    print(f"| dymn timeline (streamed, batched, optimized; incl. start-up) | {n_windows} | {wall:.1f} "
          f"| {n_windows / wall:.1f} | {peak_mb:.0f} |")  # fmt: skip
    print(f"| reference-style, one window at a time (first {a.reference_minutes:g} min) | - | - "
          f"| {ref_wps:.1f} | - |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
