"""Inference benchmark: the reference-style forward, dymn's eager model and every backend side by side.

The reference runs every dynamic convolution as one grouped convolution over per-example kernels
(input reshaped to (1, B*C, F, T)); :func:`reference_dynamic_convs` restores exactly that forward so each
optimisation is compared against it in the same run, on the same machine.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..audio.frontend import MelFrontend
from ..models.complexity import count_macs
from ..models.dy_blocks import DynamicConv
from ..util import allocator
from ..util.errors import UsageError
from ..util.timing import time_call, time_calls
from .backends import BACKENDS, available
from .choice import compile_model
from .engines import variants
from .fusion import fuse


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


DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}  # fmt: skip


def dtype_of(name: str) -> torch.dtype:
    """A precision by name (float32, float16, bfloat16 and their short forms)."""
    if name not in DTYPES:
        raise UsageError(f"--dtype takes float32, float16 or bfloat16, got {name!r}")
    return DTYPES[name]


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
    backend_ms: dict[str, float]  # per clip, spectrogram in: torch (dymn.optimize's module), onnxruntime, ...
    end_to_end_ms: float  # per clip, waveform in, probabilities out, on the fastest backend
    dtype: str = "float32"

    @property
    def fastest(self) -> str:
        return min(self.backend_ms, key=self.backend_ms.get)

    @property
    def best_ms(self) -> float:
        return self.backend_ms[self.fastest]

    @property
    def optimized_ms(self) -> float:  # the PyTorch module of dymn.optimize
        return self.backend_ms["torch"]

    def gflops(self, ms: float) -> float:
        return 2 * self.gmacs / (ms / 1000)


def bench_model(
    name: str,
    batch: int,
    seconds: float = 10.0,
    device: str = "cpu",
    repeats: int = 5,
    backends: list[str] | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    build: Callable[[str], nn.Module],
) -> BenchRow:
    """Times of one registry model (random weights: speed only) at ``batch`` on ``seconds`` clips: the
    reference-style forward, the eager model, and ``backends`` (default: every one installed here). ``build``
    makes the network of a name (the CLI passes ``dymn.load(name, pretrained=False)``)."""
    torch.manual_seed(0)  # the same random weights every run: a converted graph is cached and reused
    model = build(name).to(device)  # timing only: random weights, no download
    if model.arch == "dymn":
        model.set_temperature(1.0)
    fe = model.info.frontend
    samples = int(seconds * fe.sample_rate)
    frames = fe.frames(samples)
    macs = count_macs(model.cpu(), (1, 1, fe.n_mels, frames)).total / 1e9
    model.to(device)
    spec = torch.randn(batch, 1, fe.n_mels, frames, device=device)
    wave = torch.randn(batch, samples, device=device) * 0.1
    frontend = MelFrontend.from_config(fe).to(device).eval()
    on_cpu = torch.device(device).type == "cpu"
    if backends is None:
        backends = available() if on_cpu and dtype == torch.float32 else ["torch"]
    # every way of running a batch that auto measures (whole, or in pieces): each backend's best counts
    modules = {("torch", mb): fuse(model, device=device, dtype=dtype, micro_batch=mb)
               for mb in variants("torch", batch)}  # fmt: skip
    for b in backends:
        if b != "torch":
            for mb in variants(b, batch):
                modules[(b, mb)] = compile_model(model.cpu(), b, micro_batch=mb, batch_size=batch)

    def sync():
        if device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()

    def run(m, x):
        def f():
            m(x)
            sync()

        return f

    per = 1000 / batch
    with torch.inference_mode():

        def reference():
            with reference_dynamic_convs():
                run(model, spec)()

        # all interleaved, the reference included (as the speed targets are measured)
        fns = {"reference": reference, "eager": run(model, spec), **{k: run(m, spec) for k, m in modules.items()}}
        by_variant = {key: sec * per for key, sec in time_calls(fns, repeats, settle=0.15 if on_cpu else 0.0).items()}
        ref, eager = by_variant.pop("reference") / per, by_variant.pop("eager") / per
        best = modules[min(by_variant, key=by_variant.get)]
        times: dict[str, float] = {}
        for (b, _), ms in by_variant.items():
            times[b] = min(ms, times.get(b, float("inf")))

        def end_to_end():
            torch.sigmoid(best(frontend(wave).unsqueeze(1))[0])
            sync()

        e2e = time_call(end_to_end, repeats)
    return BenchRow(name, batch, macs, ref * per, eager * per, times, e2e * per, str(dtype).replace("torch.", ""))


# The reference implementation measured side by side with dymn in one process by the project's speed issue
# (2-core AVX-512 CPU, 2 threads, fp32, 10 s clips, model only; ms per clip at batch 1 / batch 8; None: not given).
REFERENCE_MS: dict[str, tuple[float | None, float | None]] = {
    "mn10_as": (21.8, 29.9),
    "dymn04_as": (None, 15.3),
    "dymn10_as": (42.6, 50.1),
    "dymn20_as": (None, 162.6),
}


def markdown_table(rows: list[BenchRow], gemm: float | None) -> str:
    names = [b for b in BACKENDS if any(b in r.backend_ms for r in rows)]
    names += sorted({b for r in rows for b in r.backend_ms} - set(names))
    head = ("| model | batch | GMACs/clip | reference ms (speed issue) | reference-style ms | dymn eager ms | "
            + " | ".join(f"{b} ms" for b in names)
            + " | fastest | speed-up vs reference | speed-up vs reference-style | GFLOP/s | % of GEMM "
            "| end-to-end ms |\n" + "|---" * (12 + len(names)) + "|\n")  # fmt: skip
    lines = []
    for r in rows:
        pub = REFERENCE_MS.get(r.model, (None, None))
        pub_ms = pub[0] if r.batch == 1 else pub[1] if r.batch == 8 else None
        gf = r.gflops(r.best_ms)
        cells = [f"**{r.backend_ms[b]:.1f}**" if b == r.fastest else f"{r.backend_ms[b]:.1f}" if b in r.backend_ms
                 else "-" for b in names]  # fmt: skip
        lines.append(
            f"| {r.model} | {r.batch} | {r.gmacs:.3f} | {pub_ms or '-'} | {r.reference_ms:.1f} "
            f"| {r.eager_ms:.1f} | " + " | ".join(cells) + f" | {r.fastest} "
            f"| {f'{pub_ms / r.best_ms:.2f}x' if pub_ms else '-'} | {r.reference_ms / r.best_ms:.2f}x "
            f"| {gf:.1f} | {f'{100 * gf / gemm:.0f}%' if gemm else '-'} | {r.end_to_end_ms:.1f} |"
        )
    return head + "\n".join(lines) + "\n"


def run_benchmark(
    models: list[str],
    batches: list[int],
    threads: int | None = 2,
    device: str = "cpu",
    repeats: int = 5,
    backends: list[str] | None = None,
    dtype: torch.dtype = torch.float32,
    log: Callable[[str], None] = print,
    *,
    build: Callable[[str], nn.Module],
) -> str:
    """Benchmark ``models`` x ``batches`` on every installed backend (or ``backends``) and return a markdown
    table (ms per clip, 10 s clips)."""
    if threads:
        torch.set_num_threads(threads)
    gemm = gemm_gflops() if torch.device(device).type == "cpu" else None
    if gemm:
        log(f"float32 GEMM (2048^2): {gemm:.1f} GFLOP/s with {torch.get_num_threads()} threads")
    rows = []
    for name in models:
        for b in batches:
            row = bench_model(name, b, device=device, repeats=repeats, backends=backends, dtype=dtype, build=build)
            log(f"{name} batch {b}: reference-style {row.reference_ms:.1f}, eager {row.eager_ms:.1f}, "
                + ", ".join(f"{k} {v:.1f}" for k, v in row.backend_ms.items()) + " ms/clip")  # fmt: skip
            rows.append(row)
    threads_used = torch.get_num_threads()
    footer = (
        f"\n{threads_used} threads, {str(dtype).replace('torch.', '')}, {device}, 10 s clips; ms per clip "
        f"(minimum over {repeats} rounds, the reference-style forward, dymn eager and every backend taking turns)"
        + (f"; float32 GEMM in the same run: {gemm:.1f} GFLOP/s" if gemm else "")
        + "; each backend in its fastest way to run a batch (torch: whole, or micro-batches of 1, 2, 4; openvino:"
        " whole, or pieces run in parallel streams); GFLOP/s = 2 x MACs / the fastest backend's time; C allocator: "
        f"{allocator.state()} (dymn.util.allocator).\n"
    )
    return (
        markdown_table(rows, gemm)
        + footer
        + "\nmedian speed-up of the fastest backend over reference-style: "
        + (f"{statistics.median(r.reference_ms / r.best_ms for r in rows):.2f}x\n")
    )
