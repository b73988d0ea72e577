"""int8 post-training quantization: what it does to the real checkpoint's outputs, and whether it is faster.

    python benchmarks/bench_int8.py [--speed-models mn04_as,mn05_as,mn10_as,mn20_as] [--threads 2]

Accuracy: the real mn04_as checkpoint (../shared/weights), quantized with NNCF calibrated on 100 spoken digits of
4 FSDD speakers and 7 of the real sample clips; evaluated on clips it was not calibrated on: 300 digits of the
other 2 speakers (zero-shot: is "Speech" the top AudioSet class?) and the other 7 samples plus the metro clip
(is the expected class in the top 3?). It is the only real checkpoint here, and narrower than int8 is offered
for (width 1.0 and up), so it is quantized with ``any_width=True``. Reports the largest and mean change of any
probability, top-1 agreement and top-5 overlap with fp32, and both models' zero-shot accuracy.

Speed: ms per 10 s clip (spectrogram in) of the fastest fp32 backend and the fastest int8 backend (onnxruntime
or OpenVINO, each measured) at batch 1 and 8, for each model (random weights for those without a real
checkpoint here: speed does not depend on the values; calibrated on the same clips). Prints markdown tables.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES = {  # file -> expected AudioSet class (a name of the 527)
    "applause": "Applause", "arcade_music": "Music", "birds1": "Bird", "car_engine": "Vehicle",
    "cinematic": "Music", "crowd_cheering": "Cheering", "guitar": "Guitar", "jazz_guitar": "Guitar",
    "piano": "Piano", "rain": "Rain", "snoring": "Snoring", "thunder": "Thunder", "train": "Train",
    "typing": "Typing", "metro_station-paris": "Vehicle",
}  # fmt: skip


def _clips():
    digits = sorted((SHARED / "data" / "fsdd" / "recordings").glob("*.wav"))
    speakers = sorted({p.stem.split("_")[1] for p in digits})
    calib_spk, eval_spk = speakers[:4], speakers[4:]
    calib = [p for p in digits if p.stem.split("_")[1] in calib_spk][::12][:100]
    evald = [p for p in digits if p.stem.split("_")[1] in eval_spk][::3][:300]
    samples = sorted((SHARED / "audio" / "samples").glob("*.wav"))
    return calib + samples[::2], evald, samples[1::2] + [SHARED / "audio" / "metro_station-paris.wav"]


def accuracy(threads: int) -> str:
    import dymn
    from dymn.audio.io import load_audio

    model = dymn.load("mn04_as", weights=SHARED / "weights" / "mn04_as_mAP_432.pt")
    calib, digits, samples = _clips()
    start = time.perf_counter()
    from dymn.runtime.int8 import int8_model

    # the one real checkpoint here is narrower than int8 is offered for: what quantization does to real weights
    int8 = int8_model(model, [str(p) for p in calib], any_width=True)
    quant_s = time.perf_counter() - start
    fp32 = dymn.Tagger(model, backend="torch")
    q = dymn.Tagger(int8)
    files = digits + samples
    waves = [load_audio(f, 32000) for f in files]
    p32, p8 = fp32.predict(waves), q.predict(waves)
    labels = list(model.info.labels)
    speech = labels.index("Speech")
    n_d = len(digits)

    def zero_shot(p):
        digit_acc = float(np.mean(p[:n_d].argmax(1) == speech))
        hits = [labels.index(SAMPLES[f.stem]) in np.argsort(-p[n_d + i])[:3] for i, f in enumerate(samples)]
        return digit_acc, float(np.mean(hits))

    d32, s32 = zero_shot(p32)
    d8, s8 = zero_shot(p8)
    top5 = np.mean([len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5 for a, b in zip(p32, p8)])
    return (
        f"\nmn04_as (real checkpoint), int8 by NNCF on {len(calib)} calibration clips in {quant_s:.0f} s "
        f"({getattr(int8, 'backend', '?')} runs it); {len(files)} evaluation clips not used for calibration\n\n"
        "| measure | fp32 | int8 |\n|---|---:|---:|\n"
        f"| largest change of any probability | - | {np.abs(p8 - p32).max():.3f} |\n"
        f"| mean change of a probability | - | {np.abs(p8 - p32).mean():.5f} |\n"
        f"| top-1 agreement with fp32 | - | {np.mean(p8.argmax(1) == p32.argmax(1)):.1%} |\n"
        f"| top-5 overlap with fp32 | - | {top5:.1%} |\n"
        f"| zero-shot: 'Speech' top-1 on {n_d} spoken digits (2 unseen speakers) | {d32:.1%} | {d8:.1%} |\n"
        f"| zero-shot: expected class in top 3 on {len(samples)} real clips | {s32:.1%} | {s8:.1%} |\n"
    )


def speed(models: list[str], threads: int) -> str:
    import dymn
    from dymn.runtime import backends, choice, engines
    from dymn.runtime.int8 import quantize
    from dymn.util.timing import time_calls

    calib, _, _ = _clips()
    calib = [str(p) for p in calib[:40]]
    rows = []
    for name in models:
        torch.manual_seed(0)
        model = dymn.load(name, pretrained=False)
        fe = model.info.frontend
        graph = quantize(model, calib, any_width=True)  # the narrow ones too: the table says why they are not offered
        for batch in (1, 8):
            x = torch.randn(batch, 1, fe.n_mels, 1000)
            modules = {}
            for b in backends.available():
                for kind, g in (("fp32", None), ("int8", graph)):
                    if g is not None and b == "torch":
                        continue
                    for mb in engines.variants(b, batch):  # each way auto runs a batch: the best counts
                        try:
                            m = choice.compile_model(model, b, g, micro_batch=mb, batch_size=batch)
                            with torch.inference_mode():
                                m(x)
                            modules[(kind, b, mb)] = m
                        except Exception as exc:  # a runtime that cannot run this graph is left out, and said so
                            print(f"{name}: {b} {kind} fails: {str(exc)[:200]}", file=sys.stderr)
            with torch.inference_mode():  # fp32 and int8 in turns, as dymn bench and auto time candidates
                seconds = time_calls({key: (lambda m=m, x=x: m(x)) for key, m in modules.items()})
            t32, t8 = {}, {}
            for (kind, b, _), sec in seconds.items():
                times = t32 if kind == "fp32" else t8
                times[b] = min(1000 * sec / batch, times.get(b, float("inf")))
            b32, b8 = min(t32, key=t32.get), min(t8, key=t8.get)
            rows.append((name, batch, b32, t32[b32], b8, t8[b8]))
            print(f"{name} batch {batch}: fp32 {t32}, int8 {t8}", file=sys.stderr, flush=True)
    out = ["\n| model | batch | fastest fp32 | ms/clip | fastest int8 | ms/clip | int8 speed-up |",
           "|---|---:|---|---:|---|---:|---:|"]  # fmt: skip
    out += [f"| {n} | {b} | {k32} | {m32:.2f} | {k8} | {m8:.2f} | {m32 / m8:.2f}x |" for n, b, k32, m32, k8, m8 in rows]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speed-models", default="mn04_as,mn05_as,mn10_as,mn20_as")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-accuracy", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import os

    os.environ.setdefault("DYMN_CACHE", "/tmp/dymn-bench-int8-cache")
    print(f"torch {torch.__version__}, {a.threads} threads, CPU")
    if not a.skip_accuracy:
        print(accuracy(a.threads))
    print(speed(a.speed_models.split(","), a.threads))


if __name__ == "__main__":
    main()
