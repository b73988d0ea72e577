"""Inference benchmark: the reference-style forward, dymn's eager model and ``optimize()`` side by side.

The reference runs every dynamic convolution as one grouped convolution over per-example kernels
(input reshaped to (1, B*C, F, T)); :func:`reference_dynamic_convs` restores exactly that forward so each
optimisation is compared against it in the same run, on the same machine.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .complexity import count_macs
from .frontend import MelFrontend
from .loader import load
from .models.dy_blocks import DynamicConv
from .optimized import optimize


def _grouped_conv_forward(self: DynamicConv, x: torch.Tensor, g) -> torch.Tensor:
    return self.grouped_conv(x, self.kernels(g[0]))


@contextlib.contextmanager
def reference_dynamic_convs():
    """Temporarily run every DynamicConv the reference way (one B-group convolution)."""
    original = DynamicConv.forward
    DynamicConv.forward = _grouped_conv_forward
    try:
        yield
    finally:
        DynamicConv.forward = original


def time_call(fn: Callable[[], object], repeats: int = 5, min_time: float = 0.5) -> float:
    """Seconds per call: the minimum over ``repeats`` rounds (after a warm-up call).

    The minimum is the least noisy estimate on a shared machine.
    """
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        n = 0
        while True:
            fn()
            n += 1
            if time.perf_counter() - t >= min_time / repeats or n >= 50:
                break
        times.append((time.perf_counter() - t) / n)
    return min(times)


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """float32 matrix-multiply rate of this machine with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    sec = time_call(lambda: a @ b, repeats=repeats, min_time=1.0)
    return 2 * n**3 / sec / 1e9


@dataclass
class BenchRow:
    model: str
    batch: int
    gmacs: float
    reference_ms: float  # per clip, spectrogram in, reference-style forward
    eager_ms: float  # per clip, dymn model as created
    optimized_ms: float  # per clip, dymn.optimize()
    end_to_end_ms: float  # per clip, waveform in, probabilities out, optimized
    onnx_ms: float | None = None

    def gflops(self, ms: float) -> float:
        return 2 * self.gmacs / (ms / 1000)


def bench_model(
    name: str,
    batch: int,
    seconds: float = 10.0,
    device: str = "cpu",
    repeats: int = 5,
    onnx_path: str | None = None,
) -> BenchRow:
    model = load(name, pretrained=False).to(device)  # timing only: random weights, no download
    if model.arch == "dymn":
        model.set_temperature(1.0)
    fe = model.info.frontend
    samples = int(seconds * fe.sample_rate)
    frames = 1 + (samples - 1) // fe.hop_length
    macs = count_macs(model.cpu(), (1, 1, fe.n_mels, frames)).total / 1e9
    model.to(device)
    spec = torch.randn(batch, 1, fe.n_mels, frames, device=device)
    wave = torch.randn(batch, samples, device=device) * 0.1
    fast = optimize(model, device=device, backend="torch")
    frontend = MelFrontend.from_config(fe).to(device).eval()

    def sync():
        if device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()

    def run(m, x):
        def f():
            m(x)
            sync()

        return f

    def end_to_end():
        torch.sigmoid(fast(frontend(wave).unsqueeze(1))[0])
        sync()

    with torch.inference_mode():
        with reference_dynamic_convs():
            ref = time_call(run(model, spec), repeats)
        eager = time_call(run(model, spec), repeats)
        opt = time_call(run(fast, spec), repeats)
        e2e = time_call(end_to_end, repeats)
    onnx_ms = None
    if onnx_path is not None:
        import numpy as np
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: spec.cpu().numpy().astype(np.float32)}
        onnx_ms = time_call(lambda: sess.run(None, feed), repeats) * 1000 / batch
    per = 1000 / batch
    return BenchRow(name, batch, macs, ref * per, eager * per, opt * per, e2e * per, onnx_ms)


# Reference implementation on a 2-core AVX-512 CPU, 2 threads, fp32, 10 s clips, spectrogram input
# (ms per clip at batch 1 / batch 8), as given in the project's speed issue.
REFERENCE_MS = {
    "mn04_as": (17.6, 16.6),
    "mn10_as": (27.8, 29.8),
    "dymn04_as": (28.9, 23.1),
    "dymn10_as": (45.9, 87.7),
    "dymn20_as": (102.5, 169.7),
}


def markdown_table(rows: list[BenchRow], gemm: float) -> str:
    head = (
        "| model | batch | GMACs/clip | published reference ms | reference-style ms | dymn eager ms "
        "| optimized ms | speed-up vs published | GFLOP/s | % of GEMM | end-to-end ms | onnxruntime ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        pub = REFERENCE_MS.get(r.model)
        pub_ms = pub[0] if pub and r.batch == 1 else pub[1] if pub and r.batch == 8 else None
        gf = r.gflops(r.optimized_ms)
        lines.append(
            f"| {r.model} | {r.batch} | {r.gmacs:.3f} | {pub_ms if pub_ms else '-'} | {r.reference_ms:.1f} "
            f"| {r.eager_ms:.1f} | **{r.optimized_ms:.1f}** | "
            f"{f'{pub_ms / r.optimized_ms:.2f}x' if pub_ms else '-'} | {gf:.1f} | {100 * gf / gemm:.0f}% "
            f"| {r.end_to_end_ms:.1f} | {f'{r.onnx_ms:.1f}' if r.onnx_ms else '-'} |"
        )
    return head + "\n".join(lines) + "\n"


def run_benchmark(
    models: list[str],
    batches: list[int],
    threads: int | None = 2,
    device: str = "cpu",
    repeats: int = 5,
    onnx: bool = False,
    log: Callable[[str], None] = print,
) -> str:
    """Benchmark ``models`` x ``batches`` and return a markdown table (ms per clip, 10 s clips)."""
    if threads:
        torch.set_num_threads(threads)
    gemm = gemm_gflops()
    log(f"float32 GEMM (2048^2): {gemm:.1f} GFLOP/s with {torch.get_num_threads()} threads")
    rows = []
    for name in models:
        onnx_path = None
        if onnx:
            import tempfile

            from .export import export_onnx

            onnx_path = str(tempfile.mkdtemp()) + f"/{name}.onnx"
            export_onnx(load(name, pretrained=False), onnx_path)
        for b in batches:
            row = bench_model(name, b, device=device, repeats=repeats, onnx_path=onnx_path)
            log(f"{name} batch {b}: reference-style {row.reference_ms:.1f}, eager {row.eager_ms:.1f}, "
                f"optimized {row.optimized_ms:.1f} ms/clip")  # fmt: skip
            rows.append(row)
    threads_used = torch.get_num_threads()
    footer = (
        f"\n{threads_used} threads, fp32, {device}, 10 s clips; ms per clip (minimum over {repeats} rounds); "
        f"float32 GEMM in the same run: {gemm:.1f} GFLOP/s; GFLOP/s = 2 x MACs / optimized time.\n"
    )
    return (
        markdown_table(rows, gemm)
        + footer
        + "\nmedian speed-up over reference-style: "
        + (f"{statistics.median(r.reference_ms / r.optimized_ms for r in rows):.2f}x\n")
    )
