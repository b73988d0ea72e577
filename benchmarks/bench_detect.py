"""Speed of the frame-level detectors on this CPU: frames per second and real-time factor.

    python benchmarks/bench_detect.py [--models fmn04,fmn04_tf104,fmn10,fmn10_tf256,fmn10_gru256,fmn10_hybrid256]
                                      [--minutes 2] [--batch 8] [--threads 2]

Each model (random weights in the released layout: speed does not depend on the values) runs `dymn.detect`
end to end on the same minutes of audio (a 16 kHz WAV of noise and tones: decoding, the 16 kHz frontend, the
network, sigmoid, median filter and events), after one warm-up run on the same audio; the faster of two runs
counts. Frames are the 40 ms output frames (250 per 10 s chunk); the real-time factor is processing time /
audio duration (lower is faster). Prints a markdown table.

    python benchmarks/bench_detect.py --memory [--model fmn04] [--hours 0.25,1,2]

Peak memory (max RSS of a fresh process) of `dymn.detect` on hours of audio, with the frame probabilities kept
(the API's default, needed for --scores and --plot) and without (`dymn detect` without those options): without
them memory must not grow with the audio's length.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

_CHILD = """
import json, resource, sys, time, torch
import dymn
from dymn.inference.detection import Detector
torch.set_num_threads(2)
model = dymn.load(sys.argv[1], pretrained=False)
model.info = model.info.replace(source="benchmark: random weights")
start = time.perf_counter()
res = Detector(model).detect(sys.argv[2], keep_probs=sys.argv[3] == "1")
print(json.dumps({"seconds": time.perf_counter() - start, "frames": len(res.times),
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def memory(model: str, hours: list[float]) -> None:
    work = Path(tempfile.mkdtemp(prefix="dymn-detect-mem-"))
    sr = 16000
    rows = []
    for h in hours:
        path = work / f"{h:g}h.wav"
        with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:  # written in blocks: any length
            rng = np.random.default_rng(0)
            for _ in range(int(h * 60)):
                f.write((0.05 * rng.standard_normal(60 * sr)).astype(np.float32))
        for keep in (False, True):
            out = subprocess.run([sys.executable, "-c", _CHILD, model, str(path), "1" if keep else "0"],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
            rows.append((h, keep, json.loads(out.strip().splitlines()[-1])))
        path.unlink()
    print(f"\n{model} (random weights), 16 kHz noise, batch 8, 2 threads, torch {torch.__version__}\n")
    print("| audio | frame probabilities | frames | seconds | peak RSS (MB) |\n|---|---|---:|---:|---:|")
    for h, keep, r in rows:
        print(
            f"| {h:g} h | {'kept' if keep else 'not kept'} | {r['frames']} | {r['seconds']:.1f} | "
            f"{r['max_rss_mb']:.0f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fmn04,fmn04_tf104,fmn10,fmn10_tf256,fmn10_gru256,fmn10_hybrid256")
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="peak memory on hours of audio instead of speed")
    ap.add_argument("--model", default="fmn04", help="--memory: the model")
    ap.add_argument("--hours", default="0.25,1,2", help="--memory: audio lengths in hours")
    a = ap.parse_args()
    if a.memory:
        memory(a.model, [float(h) for h in a.hours.split(",")])
        return
    torch.set_num_threads(a.threads)
    import dymn
    from dymn.inference.detection import Detector

    work = Path(tempfile.mkdtemp(prefix="dymn-detect-"))
    sr, n = 16000, int(a.minutes * 60 * 16000)
    t = np.arange(n) / sr
    x = 0.05 * np.random.default_rng(0).standard_normal(n) + 0.2 * np.sin(2 * np.pi * 440 * t) * (t % 7 < 2)
    sf.write(work / "audio.wav", x.astype(np.float32), sr)
    rows = []
    for name in a.models.split(","):
        model = dymn.load(name, pretrained=False)
        model.info = model.info.replace(source="benchmark: random weights")  # speed only
        det = Detector(model, batch_size=a.batch)
        det.detect(work / "audio.wav")  # warm-up with the same shapes (the first model run otherwise pays more)
        secs = float("inf")
        for _ in range(2):  # the faster of two runs
            start = time.perf_counter()
            res = det.detect(work / "audio.wav")
            secs = min(secs, time.perf_counter() - start)
        rows.append((name, sum(p.numel() for p in model.parameters()) / 1e6, len(res.times) / secs,
                     secs / res.duration))  # fmt: skip
    print(f"\n{a.minutes:g} min of 16 kHz audio, batch {a.batch} chunks of 10 s, {torch.get_num_threads()} threads, "
          f"CPU, torch {torch.__version__}\n")  # fmt: skip
    print("| model | params (M) | frames/s | real-time factor | x real time |\n|---|---:|---:|---:|---:|")
    for name, params, fps, rtf in rows:
        print(f"| {name} | {params:.2f} | {fps:.0f} | {rtf:.4f} | {1 / rtf:.0f} |")


if __name__ == "__main__":
    main()
