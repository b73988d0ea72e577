"""`dymn tag` over a folder of real files, end to end, against the model-only rate; and cold start.

    python benchmarks/bench_end_to_end.py [--files 1000] [--model mn04_as] [--backend auto]

The folder: 1,000 real files (70 % spoken digits of about 0.5 s, 30 % crops of 3-10 s of the real recordings in
../shared/audio, at 44.1/48 kHz, mostly stereo). Each row runs in its own process with 2 threads, the backend
choice already cached (as on any run after the first):

- model only: the network on exactly the batches `dymn tag` forms (clips shorter than 10 s padded to it, equal
  padded lengths batched together, batch 8), on log-mels computed beforehand: the rate the model alone allows;
- frontend + model: the same from waveforms (decoded and resampled beforehand);
- `dymn tag DIR`: everything (file listing, headers, decoding, resampling, frontend, model, output), wall time of
  the whole command, and the same without its start-up (the time of `dymn tag` on one file);
- cold start: `dymn tag one.wav` (the process from start to exit), with the backend choice cached, and the first
  run ever on a machine (an empty cache: the backends are converted and measured once).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import make_corpus, private_cache

_MODEL_ONLY = r"""
import json, sys, time, numpy as np, torch
import dymn
from dymn.audio.io import find_audio_files
from dymn.inference.tagging import decode_clip
torch.set_num_threads(2)
folder, model_name, backend, weights = sys.argv[1:5]
tagger = dymn.Tagger(dymn.load(model_name, weights=weights or None), backend=backend)
files, _ = find_audio_files([folder])
waves = [d.wave for d in (decode_clip(f, tagger.sample_rate) for f in files) if not isinstance(d, str)]
n = tagger.min_samples
by_len = {}  # as Tagger.logits batches: by padded length (short clips are all padded to 10 s)
for w in waves:
    by_len.setdefault(max(len(w), n), []).append(w)
batches = [ws[i:i + 8] for ws in by_len.values() for i in range(0, len(ws), 8)]
with torch.inference_mode():
    specs = [torch.cat([tagger.frontend(torch.from_numpy(np.pad(w, (0, max(0, n - len(w)))))[None])
                        for w in b]).unsqueeze(1) for b in batches]
    tagger.model(specs[0])  # warm-up
    start = time.perf_counter()
    for s in specs:
        tagger.model(s)
    model_s = time.perf_counter() - start
    start = time.perf_counter()
    for b in batches:
        tagger.run_batch(b)
    fm_s = time.perf_counter() - start
print(json.dumps({"files": len(waves), "model_s": model_s, "frontend_model_s": fm_s,
                  "backend": getattr(tagger.model, "backend", "torch")}))
"""


def run(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--model", default="mn04_as")
    ap.add_argument("--backend", default="auto")
    ap.add_argument(
        "--random-weights",
        action="store_true",
        help="a model without its released weights here: random weights in a checkpoint (speed only)",
    )
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dymn-e2e-"))
    folder = make_corpus(work / "corpus", a.files)
    env = {**private_cache(work, a.model), "OMP_NUM_THREADS": "2", "DYMN_BACKEND": a.backend}
    if a.random_weights:
        import dymn as lib

        name = a.model
        a.model = str(lib.load(name, pretrained=False).save(work / f"{name}-random.pt"))
    one = next((folder / "crops").glob("*.wav"))
    dymn = [sys.executable, "-m", "dymn.cli"]
    first = run([*dymn, "tag", str(one), "--model", a.model], env)  # an empty cache: converts and measures
    cold = min(run([*dymn, "tag", str(one), "--model", a.model], env) for _ in range(3))
    out = subprocess.run([sys.executable, "-c", _MODEL_ONLY, str(folder), a.model, a.backend, ""], env=env,
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    m = json.loads(out.strip().splitlines()[-1])
    n = m["files"]
    tag_s = min(run([*dymn, "tag", str(folder), "--model", a.model, "--format", "csv", "-o", str(work / "t.csv")],
                    env) for _ in range(2))  # fmt: skip
    steady = tag_s - cold
    print(
        f"\n{n} real files, {Path(a.model).stem}, backend {a.backend} (chose {m['backend']}), batch 8, 2 threads, CPU\n"
    )
    print("| run | seconds | files/s | share of the model-only rate |\n|---|---:|---:|---:|")
    rate = n / m["model_s"]
    print(f"| model only (log-mels computed beforehand) | {m['model_s']:.1f} | {rate:.0f} | 100 % |")
    print(f"| frontend + model (waveforms decoded beforehand) | {m['frontend_model_s']:.1f} | "
          f"{n / m['frontend_model_s']:.0f} | {100 * m['model_s'] / m['frontend_model_s']:.0f} % |")  # fmt: skip
    print(f"| `dymn tag DIR`, whole command | {tag_s:.1f} | {n / tag_s:.0f} | {100 * (n / tag_s) / rate:.0f} % |")
    print(f"| `dymn tag DIR`, without its start-up | {steady:.1f} | {n / steady:.0f} | "
          f"{100 * (n / steady) / rate:.0f} % |")  # fmt: skip
    print(
        f"\ncold start, `dymn tag one.wav` (whole process): {cold:.2f} s with the backend choice cached; "
        f"{first:.1f} s the first time on a machine (converting and measuring the backends once)"
    )
    os.system(f"rm -rf {work}")


if __name__ == "__main__":
    main()
