"""Inference backends under one contract, and the automatic choice among them.

A backend runs a network's inference graph: ``torch`` (:func:`dymn.optimize`'s module), ``onnxruntime`` and
``openvino`` (the graph of ``dymn export onnx``, converted once and cached in ``$DYMN_CACHE/compiled``). Each
is an optional extra: ``pip install "dymn[fast]"`` adds both runtimes. The cache is kept under
``$DYMN_CACHE_MAX_GB`` (default 2) by :mod:`dymn.graph_cache`.

``backend="auto"`` (the default for inference) measures, the first time a model runs at a batch size on a
machine, every backend available there and each way it can run a batch (:func:`variants`: whole, or cut into
pieces; OpenVINO runs the pieces in parallel, one stream per thread), checks each one's outputs against the
plain network, and keeps the fastest; the choice is cached per machine, thread count, architecture, batch
size and library versions in ``$DYMN_CACHE/backends.json``, so later runs decide at once. ``DYMN_BACKEND``
sets the default (e.g. ``DYMN_BACKEND=torch`` never converts anything).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import allocator
from .errors import UsageError
from .graph_cache import cached, max_bytes

BACKENDS = ("torch", "onnxruntime", "openvino")
CHOICES = ("auto", *BACKENDS)
# a backend whose outputs differ from the plain network by more than this (max abs logit difference, relative to
# the logits' scale) is not used: a measured speed is worth nothing without the same results
AGREEMENT = 1e-3
# int8 moves logits by design (measured effect: benchmarks/bench_int8.py); this only rejects a broken graph
INT8_SANITY = 0.5
# the set of candidates measured; raised when it grows, so that cached choices are measured again
CHOICE_FORMAT = 2


def default_backend() -> str:
    """``$DYMN_BACKEND``, else "auto"."""
    value = os.environ.get("DYMN_BACKEND", "auto") or "auto"
    if value not in CHOICES:
        raise UsageError(f"DYMN_BACKEND={value!r}: choose one of {', '.join(CHOICES)}")
    return value


def _installed(module: str) -> bool:
    # found, not imported: importing the runtimes costs start-up time that a cached choice of torch never needs
    return importlib.util.find_spec(module) is not None


def available() -> list[str]:
    """The backends installed here (torch always; the runtimes need onnx too, for the exported graph)."""
    return ["torch", *(name for name in ("onnxruntime", "openvino") if _installed(name) and _installed("onnx"))]


@functools.cache
def _graph_source() -> str:
    """A digest of the code that shapes a converted graph: a checkout changed between releases (same version
    number) must not reuse graphs converted from the code before the change."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted([root / "optimized.py", root / "export.py", root / "backends.py", *root.glob("models/*.py")]):
        h.update(path.read_bytes())
    return h.hexdigest()[:8]


def _versions() -> dict[str, str]:
    """Versions that decide a converted graph or a measured speed (from the package metadata: no imports)."""
    from . import __version__

    out = {"dymn": f"{__version__}+{_graph_source()}", "torch": torch.__version__}
    for name in ("onnxruntime", "openvino"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def fingerprint(model: nn.Module) -> str:
    """A hash of what decides a network's graph and outputs: architecture, config and every tensor."""
    cached = getattr(model, "_dymn_fingerprint", None)
    if cached:
        return cached
    h = hashlib.sha256()
    h.update(json.dumps([model.arch, model.config.to_dict()], sort_keys=True, default=str).encode())
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    digest = h.hexdigest()[:20]
    object.__setattr__(model, "_dymn_fingerprint", digest)
    return digest


def _cache_root() -> Path:
    from .hub import cache_dir

    max_bytes()  # a bad DYMN_CACHE_MAX_GB is reported on first use, not only when a conversion happens
    return cache_dir()


def onnx_graph(model: nn.Module) -> Path:
    """The network's ONNX graph (as ``dymn export onnx`` writes it, by the faster TorchScript-based exporter where
    this PyTorch has it), exported once per weights and library versions."""
    from .export import export_onnx

    v = _versions()
    path = _cache_root() / "compiled" / f"{model.info.name}-{fingerprint(model)}-torch{v['torch']}-{v['dymn']}.onnx"

    def make() -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # the TorchScript-based exporter: 10-20x faster than torch.export's, graphs as fast (measured)
            export_onnx(model, path, exporter="torchscript")
        except Exception:  # noqa: BLE001 (a PyTorch without it, or a graph it cannot take)
            export_onnx(model, path)
        return path

    return cached(_cache_root(), path, make)


def _save_ir(model, path: Path) -> Path:
    """Write an OpenVINO model as ``path`` (.xml) and its .bin, each replaced whole: a reader never sees half."""
    import openvino as ov

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.xml")
    try:
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)
    return path


class CompiledModel(nn.Module):
    """A converted graph under the network's contract: spectrogram (B, 1, F, T) in, ``(logits, embedding)``
    out as float32 tensors, any batch size and length; ``info`` as the network's."""

    def __init__(self, model: nn.Module, backend: str, run, source: Path):
        super().__init__()
        self.backend = backend
        self.info = model.info
        self.arch = model.arch
        self.config = model.config
        self.embed_dim = model.embed_dim
        self.source = source
        self._run = run

    def forward(self, x: torch.Tensor, return_fmaps: bool = False):
        if return_fmaps:
            raise UsageError(f"the {self.backend} backend gives logits and embeddings only; feature maps need "
                             "backend='torch'")  # fmt: skip
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy())
        logits, emb = self._run(arr)
        return torch.from_numpy(logits), torch.from_numpy(emb)

    def __repr__(self) -> str:
        return f"CompiledModel({self.info.name}, backend={self.backend})"


def _threads() -> int:
    return max(1, torch.get_num_threads())


def _onnxruntime(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = _threads()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(arr: np.ndarray):
        logits, emb = session.run(None, {name: arr})
        return logits, emb

    return run


def _frames(model: nn.Module) -> int | None:
    """Frames of a clip of the model's training length: what nearly every input has (shorter clips are padded to
    it, timelines cut windows of it)."""
    info = model.info
    if not info.clip_seconds or info.input != "spectrogram":
        return None
    return 1 + (round(info.clip_seconds * info.sample_rate) - 1) // info.frontend.hop_length


def _static_graph(path: Path, shape: tuple[int, ...]) -> Path:
    """The OpenVINO graph at ``path`` with its input fixed to ``shape``, written once beside it. OpenVINO plans
    kernels and memory for a static shape ahead: 10-25 % faster than the graph with a free batch or length
    (dymn10 at batch 1: 9.3 -> 7.0 ms per clip; benchmarks/results/inference-cpu.md)."""
    import openvino as ov

    out = path.with_name(f"{path.stem}-static-{'x'.join(map(str, shape))}.xml")

    def make() -> Path:
        model = ov.Core().read_model(str(path))
        model.reshape(list(shape))
        try:
            return _save_ir(model, out)
        except (OSError, RuntimeError):  # a read-only or full cache: the general graph still runs
            return path

    return cached(_cache_root(), out, make)


def _openvino(path: Path, chunk: int | None = None, streams: int = 1, frames: int | None = None,
              batch_size: int | None = None):  # fmt: skip
    """Runs the OpenVINO graph at ``path`` on batches cut into ``chunk``-sized pieces (None: whole). With
    ``streams`` > 1 the pieces run in parallel on that many OpenVINO streams, the threads split among them:
    each core then works on its own clips, whose feature maps stay in its caches (measured faster than one
    request using every thread for every batch and width; see benchmarks/results/inference-cpu.md). Inputs of
    ``frames`` frames in pieces of ``chunk`` (or whole batches of ``batch_size``) or single clips run on a graph
    made for exactly that shape (:func:`_static_graph`); any other shape on the general graph."""
    import openvino as ov

    core = ov.Core()
    # OpenVINO's own cache of compiled models: a process's first call then loads instead of compiling
    # (dymn10: 0.31 -> 0.11 s, a tenth of `dymn tag one.wav`)
    blobs = _cache_root() / "openvino"
    with contextlib.suppress(OSError):
        blobs.mkdir(parents=True, exist_ok=True)
    if os.access(blobs, os.W_OK):  # a read-only cache still works, compiling every time
        core.set_property({"CACHE_DIR": str(blobs)})
    # f32 explicitly: on CPUs with bf16 units OpenVINO otherwise computes in bf16 (logits off by ~1e-2)
    config = {"INFERENCE_NUM_THREADS": _threads(), "INFERENCE_PRECISION_HINT": "f32"}
    local = threading.local()  # an infer request (or queue) serves one call at a time: one per thread
    lock = threading.Lock()
    compiled: dict[tuple, object] = {}
    # a remainder batch of another size stays on the general graph: one more graph would cost more than it saves
    static_batches = {b for b in (chunk or batch_size, 1) if b} if frames else set()

    graphs: dict[tuple[int, ...], Path] = {}

    def get(kind: str, shape: tuple[int, ...]):
        with lock:  # compiled once, on first use (a parallel model may never see a batch too small for it)
            if shape not in graphs:
                static = shape[-1] == frames and shape[0] in static_batches
                graphs[shape] = _static_graph(path, shape) if static else path
            graph = graphs[shape]
            if (kind, graph) not in compiled:
                extra = {"PERFORMANCE_HINT": "LATENCY"} if kind == "latency" else {
                    "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams}  # fmt: skip
                compiled[(kind, graph)] = core.compile_model(str(graph), "CPU", {**config, **extra})
            return compiled[(kind, graph)]

    def requests(kind: str, shape: tuple[int, ...], count: int) -> list:
        # this thread's requests, one set per compiled model (shapes on the general graph share it); found by
        # input shape without the lock after the first call
        by_shape = local.__dict__.setdefault("by_shape", {})
        if (kind, shape) not in by_shape:
            model = get(kind, shape)
            by_model = local.__dict__.setdefault("by_model", {})
            if id(model) not in by_model:
                by_model[id(model)] = [model.create_infer_request() for _ in range(count)]
            by_shape[(kind, shape)] = by_model[id(model)]
        return by_shape[(kind, shape)]

    def one(arr: np.ndarray):
        out = requests("latency", arr.shape, 1)[0].infer({0: arr})
        return np.array(out[0], np.float32), np.array(out[1], np.float32)  # copies: the request reuses its buffers

    def parallel(pieces: list[np.ndarray]):
        # one request per stream, each given the next piece as soon as it is free; no Python callbacks or
        # user data: OpenVINO's threads then never need the GIL (with AsyncInferQueue they could, and freeing
        # the compiled model while holding the GIL deadlocked on joining them)
        if len({p.shape for p in pieces}) > 1:  # a smaller last piece: each piece on its own
            return [one(p) for p in pieces]
        reqs = requests("parallel", pieces[0].shape, streams)
        outs: list = [None] * len(pieces)

        def collect(i: int) -> None:
            req = reqs[i % streams]
            req.wait()
            outs[i] = (np.array(req.get_output_tensor(0).data, np.float32),
                       np.array(req.get_output_tensor(1).data, np.float32))  # fmt: skip

        for i, piece in enumerate(pieces):
            if i >= streams:
                collect(i - streams)
            reqs[i % streams].start_async({0: piece})
        for i in range(max(0, len(pieces) - streams), len(pieces)):
            collect(i)
        return outs

    def run(arr: np.ndarray):
        if chunk is None or len(arr) <= chunk:
            return one(arr)  # a single piece: all threads on it
        pieces = [arr[s : s + chunk] for s in range(0, len(arr), chunk)]
        outs = parallel(pieces) if streams > 1 else [one(p) for p in pieces]
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    return run


def variants(backend: str, batch_size: int) -> list[int | None]:
    """How ``backend`` may run batches of ``batch_size``, all measured by auto: None for whole batches, or the
    size of the pieces a batch is cut into (PyTorch: run one after another; OpenVINO: run in parallel)."""
    if backend == "torch":
        return [None, *(mb for mb in (1, 2, 4) if mb < batch_size)]
    if backend == "openvino" and _threads() > 1 and batch_size > 1:
        return [None, *sorted({1, max(1, batch_size // _threads())})]
    return [None]


def _streams(batch_size: int, micro_batch: int | None) -> int:
    return 1 if micro_batch is None else max(1, min(_threads(), batch_size // micro_batch))


def openvino_grouped(model: nn.Module, batch_size: int) -> Path:
    """A DyMN network as an OpenVINO model for batches of exactly ``batch_size`` (any length), its dynamic
    convolutions run as the reference runs them: one B-group convolution over the batch's own kernels. A fixed
    batch is what makes that form exportable; it is far faster in OpenVINO than the batch-independent graph of
    ``dymn export onnx`` (which computes every depthwise convolution with all K kernels). Converted once, cached."""
    import warnings

    import openvino as ov

    from .optimized import FusedDynamicConv, optimize

    v = _versions()
    path = (_cache_root() / "compiled" / f"{model.info.name}-{fingerprint(model)}-grouped-b{batch_size}-"
            f"torch{v['torch']}-ov{v.get('openvino', '?')}-{v['dymn']}.xml")  # fmt: skip

    def make() -> Path:
        module = optimize(model, channels_last=False, static_dynamic_convs=False, micro_batch=None, backend="torch")
        for m in module.modules():
            if isinstance(m, FusedDynamicConv):
                m.grouped_batches = True
        fe = model.info.frontend
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            example = torch.randn(batch_size, 1, fe.n_mels, 200)
            # traced here without torch.jit.trace's default check (a second forward and a graph comparison: about
            # a third of dymn10's conversion); auto checks every backend's outputs against the plain network
            traced = torch.jit.trace(module, example, check_trace=False, strict=False)
            converted = ov.convert_model(traced, example_input=example,
                                         input=[ov.PartialShape([batch_size, 1, fe.n_mels, -1])])  # fmt: skip
        return _save_ir(converted, path)

    return cached(_cache_root(), path, make)


def _openvino_fixed_batch(path: Path, size: int, model: nn.Module, streams: int = 1):
    """Runs batches cut into pieces of exactly ``size`` in OpenVINO (in parallel with ``streams`` > 1); a
    remainder (fewer than ``size`` clips) goes to the PyTorch module, which takes any batch size."""
    from .optimized import optimize

    full = _openvino(path, size, streams, _frames(model), size)
    rest = optimize(model, backend="torch") if size > 1 else None

    def run(arr: np.ndarray):
        n = len(arr) - len(arr) % size
        if n == len(arr):
            return full(arr)
        outs = [full(arr[:n])] if n else []
        with torch.inference_mode():
            lo, emb = rest(torch.from_numpy(arr[n:]))
        outs.append((lo.float().numpy(), emb.float().numpy()))
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    return run


def compile_model(model: nn.Module, backend: str, graph: Path | None = None, micro_batch="auto",
                  batch_size: int = 8) -> nn.Module:  # fmt: skip
    """``model`` on ``backend`` for batches of ``batch_size`` (torch: :func:`dymn.optimize`'s module; else its
    ONNX graph, or ``graph``; DyMN on OpenVINO: a graph for a fixed batch). ``micro_batch``: see
    :func:`variants` ("auto": PyTorch's rule of thumb; OpenVINO cuts batches into single clips run in
    parallel when there are threads to spare)."""
    if backend == "torch":
        from .optimized import optimize

        return optimize(model, backend="torch", micro_batch=micro_batch)
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(CHOICES)}")
    if backend not in available():
        from .errors import MissingDependencyError

        raise MissingDependencyError(f"the {backend} backend is not installed: pip install 'dymn[fast]'")
    if micro_batch == "auto":
        micro_batch = 1 if backend == "openvino" and _threads() > 1 and batch_size > 1 else None
    if backend == "onnxruntime":
        path = graph or onnx_graph(model)
        return CompiledModel(model, backend, _onnxruntime(path), path).eval()
    streams = _streams(batch_size, micro_batch)
    if graph is None and model.arch == "dymn":
        size = micro_batch or batch_size
        path = openvino_grouped(model, size)
        return CompiledModel(model, backend, _openvino_fixed_batch(path, size, model, streams), path).eval()
    path = graph or onnx_graph(model)
    return CompiledModel(model, backend, _openvino(path, micro_batch, streams, _frames(model), batch_size),
                         path).eval()  # fmt: skip


# --- the automatic choice ------------------------------------------------------------------------------
def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}|{os.cpu_count()} cpus"


def _key(model: nn.Module, batch_size: int, int8: bool) -> str:
    # speed depends on the architecture, not on the values of the weights: a fine-tuned copy reuses the choice
    arch = json.dumps([model.arch, model.config.to_dict()], sort_keys=True, default=str)
    parts = [f"choice {CHOICE_FORMAT}", _machine(), f"threads {_threads()}", arch, f"batch {batch_size}",
             "int8" if int8 else "fp32", json.dumps(_versions(), sort_keys=True),
             f"malloc {allocator.state()}"]  # fmt: skip
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _read_choices(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_choice(path: Path, key: str, entry: dict) -> None:
    from .atomic import write_text

    data = _read_choices(path)  # other processes may have added their own choices meanwhile
    data[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only cache: the choice is measured again next time


def _probe_input(model: nn.Module, batch_size: int, seconds: float = 10.0) -> torch.Tensor:
    """Log-mels of noise: the shape the model will see (10 s clips), values in the model's range."""
    from .frontend import MelFrontend

    fe = model.info.frontend
    gen = torch.Generator().manual_seed(0)
    wave = torch.randn(batch_size, int(seconds * fe.sample_rate), generator=gen) * 0.05
    with torch.inference_mode():
        return MelFrontend.from_config(fe).eval()(wave).unsqueeze(1)


def measure(model: nn.Module, batch_size: int = 8, backends: list[str] | None = None, repeats: int = 3,
            int8_graph: Path | None = None) -> dict[str, dict]:  # fmt: skip
    """For each backend: ms per clip at ``batch_size`` on 10 s clips and the largest logit difference from
    the plain network (or an error); the module built is kept under "module"."""
    from .bench import time_calls

    x = _probe_input(model, batch_size)
    was_training = model.training
    with torch.inference_mode():
        ref_logits, _ = model.eval()(x)
    model.train(was_training)  # the caller's model is left as it was
    scale = max(1.0, float(ref_logits.abs().max()))
    built: dict[tuple, dict] = {}
    errors: dict[str, dict] = {}
    for name in backends or available():
        # also how each backend runs a batch (whole, or in pieces that keep the early maps in the caches)
        for split in variants(name, batch_size):
            try:
                module = compile_model(model, name, int8_graph if name != "torch" else None, micro_batch=split,
                                       batch_size=batch_size)  # fmt: skip
                with torch.inference_mode():
                    logits, _ = module(x)
                diff = float((logits.float() - ref_logits).abs().max()) / scale
                built[(name, split)] = {"diff": diff, "module": module, "micro_batch": split}
            except Exception as exc:  # a backend that cannot run this model is simply not chosen
                errors[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
    with torch.inference_mode():  # interleaved rounds: a slow spell of the machine hits every candidate alike
        seconds = time_calls({key: (lambda m=r["module"]: m(x)) for key, r in built.items()}, repeats, min_time=0.3)
    out: dict[str, dict] = {}
    for (name, _), result in built.items():
        result["ms"] = 1000 * seconds[(name, result["micro_batch"])] / batch_size
        if name not in out or result["ms"] < out[name]["ms"]:
            out[name] = result
    return {**{name: e for name, e in errors.items() if name not in out}, **out}


def choose(model: nn.Module, batch_size: int = 8, device: str | torch.device = "cpu", quiet: bool = False,
           int8_graph: Path | None = None) -> tuple[str, nn.Module | None]:  # fmt: skip
    """The fastest backend for ``model`` at ``batch_size`` on this machine (measured once, then cached), and
    its module (None on a GPU or when there is nothing to choose)."""
    if torch.device(device).type != "cpu":
        return "torch", None  # GPU inference stays in PyTorch (CUDA graphs of the runtimes are not installed)
    candidates = available() if int8_graph is None else [b for b in available() if b != "torch"]
    if candidates == ["torch"] and batch_size == 1:
        return "torch", None  # nothing to choose
    store = _cache_root() / "backends.json"
    key = _key(model, batch_size, int8_graph is not None)
    entry = _read_choices(store).get(key)
    if entry and entry.get("backend") in candidates:
        try:
            return entry["backend"], compile_model(model, entry["backend"], int8_graph, batch_size=batch_size,
                                                   micro_batch=entry.get("micro_batch", "auto"))  # fmt: skip
        except Exception:  # noqa: BLE001 (a cached graph gone bad is measured again)
            pass
    if not quiet:
        print(f"dymn: measuring the backends for {model.info.name} at batch {batch_size} on this machine "
              f"({', '.join(candidates)}; once, then cached) ...", file=sys.stderr, flush=True)  # fmt: skip
    started = time.perf_counter()
    results = measure(model, batch_size, candidates, int8_graph=int8_graph)
    limit = INT8_SANITY if int8_graph is not None else AGREEMENT
    good = {n: r for n, r in results.items() if "ms" in r and r["diff"] <= limit}
    if not good:
        best = "torch" if int8_graph is None else None
        if best is None:
            raise UsageError(f"no backend runs the int8 graph of {model.info.name}: " + "; ".join(
                f"{n}: {r.get('error') or 'outputs differ'}" for n, r in results.items()))  # fmt: skip
        return best, None
    best = min(good, key=lambda n: good[n]["ms"])
    if not quiet:
        others = ", ".join(f"{n} {r['ms']:.1f}" for n, r in sorted(good.items(), key=lambda i: i[1]["ms"])[1:])
        print(
            f"dymn: {best} chosen ({good[best]['ms']:.1f} ms per 10 s clip"
            + (f"; {others}" if others else "")
            + f"), measured in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    _write_choice(store, key, {"backend": best, "model": model.info.name, "batch": batch_size,
                               "micro_batch": good[best].get("micro_batch"),
                               "ms_per_clip": {n: round(r["ms"], 3) for n, r in good.items()},
                               "rejected": {n: r.get("error") or f"diff {r['diff']:.2e}" for n, r in results.items()
                                            if n not in good}})  # fmt: skip
    return best, results[best]["module"]
