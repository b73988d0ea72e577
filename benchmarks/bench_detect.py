"""Speed of the frame-level detectors on this CPU: frames per second and real-time factor.

    python benchmarks/bench_detect.py [--models fmn04,fmn04_tf104,fmn10,fmn10_tf256,fmn10_gru256,fmn10_hybrid256]
                                      [--minutes 2] [--batch 8] [--threads 2]

Each model (random weights in the released layout: speed does not depend on the values) runs `dymn.detect`
end to end on the same minutes of audio (a 16 kHz WAV of noise and tones: decoding, the 16 kHz frontend, the
network, sigmoid, median filter and events), after one warm-up run on the same audio; the faster of two runs
counts. Frames are the 40 ms output frames (250 per 10 s chunk); the real-time factor is processing time /
audio duration (lower is faster). Prints a markdown table.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fmn04,fmn04_tf104,fmn10,fmn10_tf256,fmn10_gru256,fmn10_hybrid256")
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import dymn
    from dymn.detection import Detector

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
        rows.append((name, sum(p.numel() for p in model.parameters()) / 1e6, len(res.probs) / secs,
                     secs / res.duration))  # fmt: skip
    print(f"\n{a.minutes:g} min of 16 kHz audio, batch {a.batch} chunks of 10 s, {torch.get_num_threads()} threads, "
          f"CPU, torch {torch.__version__}\n")  # fmt: skip
    print("| model | params (M) | frames/s | real-time factor | x real time |\n|---|---:|---:|---:|---:|")
    for name, params, fps, rtf in rows:
        print(f"| {name} | {params:.2f} | {fps:.0f} | {rtf:.4f} | {1 / rtf:.0f} |")


if __name__ == "__main__":
    main()
