"""The in-browser site (`dymn export web`) in headless Chromium: speed, load time and size, and agreement with
`dymn tag`.

    python benchmarks/bench_web.py [--models mn04_as,mn10_as] [--runs 10] [--ort .web/node_modules/onnxruntime-web/dist]

Speed: for each model in fp32 and int8 (NNCF, calibrated on the shared sample clips), the site is exported with
a local onnxruntime-web, served by a static file server on 127.0.0.1 and opened in a fresh headless Chromium
context: "load" is the time from navigation to the model being ready (onnxruntime-web's WebAssembly and the model
fetched and compiled); "ms per 10 s window" the median over ``--runs`` runs (after one warm-up) of a 10 s
waveform through the model in the page's Web Worker, and the fastest run (one WebAssembly thread, as on any
static host without cross-origin isolation), frontend included. Weights are random except for mn04_as (the real
checkpoint in ../shared): speed does not depend on them. "download" is what the browser fetches: model +
onnxruntime-web.

Accuracy: the real mn04_as (fp32) site tags every shared sample clip through the page's file input, and each
again resampled to 32 kHz by soxr (what the page then decodes as it is); reports the largest difference of any of
the top-10 probabilities from `dymn tag` (PyTorch) and whether the top 5 are the same, in the same order.
"""

import argparse
import functools
import http.server
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL = SHARED / "weights" / "mn04_as_mAP_432.pt"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/", httpd


def model_of(name: str):
    import torch

    import dymn

    if name == "mn04_as" and REAL.exists():
        return dymn.load(name, weights=REAL)
    torch.manual_seed(0)
    return dymn.load(name, pretrained=False)


def open_page(browser, url: str):
    ctx = browser.new_context()
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("body[data-state=ready], body[data-state=failed]", timeout=120_000)
    if page.locator("body").get_attribute("data-state") != "ready":
        raise SystemExit(page.locator("#status").inner_text())
    return page, (time.perf_counter() - t0) * 1000


def window_ms(page, runs: int) -> float:
    times = page.evaluate(
        """async (runs) => {
            const m = window.dymn.meta.value;
            const n = Math.round(m.clip_seconds * m.sample_rate);
            const out = [];
            for (let i = 0; i <= runs; i++) {
                const wave = new Float32Array(n).map(() => 0.1 * (Math.random() - 0.5));
                const { ms } = await window.dymn.run(wave);
                if (i > 0) out.push(ms);
            }
            return out;
        }""",
        runs,
    )
    return statistics.median(times), min(times)


def speed(browser, models: list[str], ort: Path, runs: int, work: Path) -> list[tuple]:
    from dymn.web import export_web

    calibration = [SHARED / "audio" / "samples"]
    rows = []
    for name in models:
        model = model_of(name)
        dtypes = ["fp32", "int8"] if getattr(model, "arch", None) == "mn" else ["fp32"]
        for dtype in dtypes:
            folder = export_web(model, work / f"{name}-{dtype}", int8=dtype == "int8", calibration=calibration, ort=ort)
            url, httpd = serve(folder)
            page, load = open_page(browser, url)
            ms, fastest = window_ms(page, runs)
            page.context.close()
            httpd.shutdown()
            size = (folder / "model.onnx").stat().st_size
            download = size + sum(f.stat().st_size for f in (folder / "ort").iterdir())
            rows.append((name, dtype, ms, fastest, load, size / 1e6, download / 1e6))
            print(f"{name} {dtype}: {ms:.0f} ms per window, load {load:.0f} ms", file=sys.stderr)
    return rows


def accuracy(browser, ort: Path, work: Path) -> list[tuple]:
    import soundfile as sf
    import soxr

    import dymn
    from dymn.web import export_web

    samples = sorted((SHARED / "audio" / "samples").glob("*.wav"))
    files = list(samples)
    for f in samples:
        x, sr = sf.read(f, dtype="float32")
        files.append(work / f"{f.stem}@32k.wav")
        sf.write(files[-1], soxr.resample(x, sr, 32000, quality="HQ"), 32000, subtype="FLOAT")
    model = model_of("mn04_as")
    url, httpd = serve(export_web(model, work / "accuracy", ort=ort))
    page, _ = open_page(browser, url)
    page.set_input_files("#file", [str(f) for f in files])
    while (page.locator("#results > li").count() < len(files)
           or page.locator("#results > li[data-state=working]").count()):  # fmt: skip
        time.sleep(0.2)
    with page.expect_download() as dl:
        page.click("#download")
    got = json.loads(Path(dl.value.path()).read_text())
    page.context.close()
    httpd.shutdown()
    want = list(dymn.Tagger(model, backend="torch").tag_files(files, top_k=10))
    rows = []
    for g, w in zip(got, want):
        ref = {t.label: t.probability for t in w.tags}
        diff = max(abs(t["probability"] - ref[t["label"]]) for t in g["tags"] if t["label"] in ref)
        same = [t["label"] for t in g["tags"][:5]] == [t.label for t in w.tags[:5]]
        rows.append((g["file"], diff, same))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mn04_as,mn10_as")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--ort", default=str(ROOT / ".web" / "node_modules" / "onnxruntime-web" / "dist"))
    ap.add_argument("--no-accuracy", action="store_true")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from dymn.web import find_ort

    ort = find_ort(args.ort)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        rows = speed(browser, args.models.split(","), ort, args.runs, Path(tmp))
        acc = [] if args.no_accuracy else accuracy(browser, ort, Path(tmp))
        version = browser.version
        browser.close()
    print(f"Headless Chromium {version}, onnxruntime-web (WebAssembly, 1 thread), this machine's 2 cores\n")
    print("| model | dtype | ms per 10 s window (median) | fastest | page load (ms) | model (MB) | download (MB) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, dtype, ms, fastest, load, size, download in rows:
        print(f"| {name} | {dtype} | {ms:.0f} | {fastest:.0f} | {load:.0f} | {size:.1f} | {download:.1f} |")
    if acc:
        print("\nmn04_as (real weights) in the page vs `dymn tag`: largest top-10 probability difference, same top 5\n")
        print("| file | max abs diff | same top 5 |")
        print("|---|---|---|")
        for f, diff, same in acc:
            print(f"| {f} | {diff:.4f} | {'yes' if same else 'NO'} |")
        worst = {k: max((d for f, d, _ in acc if ("@32k" in f) == k), default=np.nan) for k in (False, True)}
        print(f"\nlargest difference: {worst[False]:.4f} (browser decodes and resamples), {worst[True]:.6f} "
              f"(32 kHz files); same top 5 in {sum(s for *_, s in acc)} of {len(acc)}")  # fmt: skip


if __name__ == "__main__":
    main()
