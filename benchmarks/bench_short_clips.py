"""How should clips shorter than a second be tagged? Measured on real short sounds.

    python benchmarks/bench_short_clips.py [--weights ../shared/weights/mn04_as_mAP_432.pt]

Two sets of real sounds, run through the real mn04_as checkpoint with each way of feeding a short clip:
  - 300 spoken digits from FSDD (0.3-0.8 s each; the right top tag is "Speech");
  - excerpts of 35 ms .. 1 s cut from the real clips in ../shared/audio, compared with the top tag of
    the whole clip.
Strategies: the raw clip, zero-padded to 0.5 / 1 / 2 / 10 s, or repeated (tiled) to 1 s. Prints a table.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

import dymn

ROOT = Path(__file__).resolve().parents[1]
SR = 32000


def pad(x, seconds):
    n = round(seconds * SR)
    return np.pad(x, (0, max(0, n - len(x))))


def tile(x, seconds):
    n = round(seconds * SR)
    return np.tile(x, -(-n // len(x)))[: max(n, len(x))]


STRATEGIES = {
    "raw": lambda x: x,
    "pad 0.5 s": lambda x: pad(x, 0.5),
    "pad 1 s": lambda x: pad(x, 1.0),
    "pad 2 s": lambda x: pad(x, 2.0),
    "pad 10 s": lambda x: pad(x, 10.0),
    "tile 1 s": lambda x: tile(x, 1.0),
}


@torch.inference_mode()
def probs(model, fe, wave):
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
    return torch.sigmoid(model(fe(x).unsqueeze(1))[0])[0].numpy()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", default=str(ROOT.parent / "shared/weights/mn04_as_mAP_432.pt"))
    p.add_argument("--fsdd", default=str(ROOT.parent / "shared/data/fsdd/recordings"))
    p.add_argument("--audio", default=str(ROOT.parent / "shared/audio"))
    p.add_argument("--digits", type=int, default=300)
    a = p.parse_args()
    torch.set_num_threads(2)
    model = dymn.optimize(dymn.load("mn04_as", weights=a.weights))
    fe = dymn.MelFrontend.from_config(model.info.frontend).eval()
    labels = list(model.info.labels)
    speech = labels.index("Speech")

    digits = sorted(Path(a.fsdd).glob("*.wav"))[:: max(1, 3000 // a.digits)][: a.digits]
    waves = [dymn.load_audio(f, SR) for f in digits]
    lens = [len(w) / SR for w in waves]
    rows = [f"FSDD spoken digits: {len(waves)} clips, {min(lens):.2f}-{max(lens):.2f} s (median "
            f"{np.median(lens):.2f} s); right answer: Speech", "",
            "| strategy | Speech top-1 | Speech in top-3 | mean P(Speech) | mean top-1 P of other classes |",
            "|---|---|---|---|---|"]  # fmt: skip
    for name, fn in STRATEGIES.items():
        ps = np.stack([probs(model, fe, fn(w)) for w in waves])
        top1 = ps.argmax(1)
        top3 = np.argsort(-ps, 1)[:, :3]
        other = np.where(top1 != speech, ps.max(1), np.nan)
        spurious = np.nanmean(other) if np.isfinite(other).any() else 0.0
        rows.append(f"| {name} | {np.mean(top1 == speech):.1%} | {np.mean((top3 == speech).any(1)):.1%} | "
                    f"{ps[:, speech].mean():.3f} | {spurious:.3f} |")  # fmt: skip

    clips = sorted(Path(a.audio).rglob("*.wav"))
    full = {c: dymn.load_audio(c, SR) for c in clips}
    ref = {c: int(probs(model, fe, w).argmax()) for c, w in full.items()}
    rows += ["", f"Excerpts of {len(clips)} real clips (5 offsets each): agreement of the excerpt's top-1 tag "
             "with the whole clip's, and the mean top-1 probability", "",
             "| strategy | " + " | ".join(f"{ms} ms" for ms in (35, 100, 250, 500, 1000)) + " |",
             "|---|" + "---|" * 5]  # fmt: skip
    for name, fn in STRATEGIES.items():
        cells = []
        for ms in (35, 100, 250, 500, 1000):
            n = round(ms / 1000 * SR)
            agree, conf = [], []
            for c, w in full.items():
                for off in np.linspace(0, len(w) - n, 5).astype(int):
                    pr = probs(model, fe, fn(w[off : off + n]))
                    agree.append(pr.argmax() == ref[c])
                    conf.append(pr.max())
            cells.append(f"{np.mean(agree):.0%} ({np.mean(conf):.2f})")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
