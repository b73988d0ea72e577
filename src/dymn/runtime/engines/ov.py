"""The OpenVINO engine: the network's cached ONNX graph converted to OpenVINO (DyMN: a graph for a fixed batch
that runs its dynamic convolutions as the reference does), graphs for exactly the shapes of 10 s clips, and batches
cut into pieces run in parallel streams."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...util import altstack
from ..backends import Plan, threads
from ..backends import available as backends_available
from ..compiled import CompiledModel
from ..export import onnx_graph
from ..fusion import FusedDynamicConv, fuse
from ..graphs import cache_root, cached, derived_path, graph_path


def available() -> bool:
    return "openvino" in backends_available()


def variants(batch_size: int) -> list[int | None]:
    """Whole batches (None) or pieces run in parallel streams: single clips, or a batch split among the threads."""
    if threads() > 1 and batch_size > 1:
        return [None, *sorted({1, max(1, batch_size // threads())})]
    return [None]


def clip_frames(model: nn.Module) -> int | None:
    """Frames of a clip of the model's training length: what nearly every input has (shorter clips are padded to
    it, timelines cut windows of it)."""
    info = model.info
    if not info.clip_seconds or info.input != "spectrogram":
        return None
    return info.frontend.frames(round(info.clip_seconds * info.sample_rate))


def save_ir(model, path: Path) -> Path:
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


def static_graph(path: Path, shape: tuple[int, ...]) -> Path:
    """The OpenVINO graph at ``path`` with its input fixed to ``shape``, written once beside it. OpenVINO plans
    kernels and memory for a static shape ahead: 10-25 % faster than the graph with a free batch or length
    (dymn10 at batch 1: 9.3 -> 7.0 ms per clip; benchmarks/results/inference-cpu.md)."""
    import openvino as ov

    out = derived_path(path, f"static-{'x'.join(map(str, shape))}", ".xml")

    def make() -> Path:
        model = ov.Core().read_model(str(path))
        model.reshape(list(shape))
        try:
            return save_ir(model, out)
        except (OSError, RuntimeError):  # a read-only or full cache: the general graph still runs
            return path

    return cached(cache_root(), out, make)


def runner(path: Path, chunk: int | None = None, streams: int = 1, frames: int | None = None,
              batch_size: int | None = None):  # fmt: skip
    """Runs the OpenVINO graph at ``path`` on batches cut into ``chunk``-sized pieces (None: whole). With
    ``streams`` > 1 the pieces run in parallel on that many OpenVINO streams, the threads split among them:
    each core then works on its own clips, whose feature maps stay in its caches (measured faster than one
    request using every thread for every batch and width; see benchmarks/results/inference-cpu.md). Inputs of
    ``frames`` frames in pieces of ``chunk`` (or whole batches of ``batch_size``) or single clips run on a graph
    made for exactly that shape (:func:`static_graph`); any other shape on the general graph."""
    import openvino as ov

    core = ov.Core()
    # OpenVINO's own cache of compiled models: a process's first call then loads instead of compiling
    # (dymn10: 0.31 -> 0.11 s, a tenth of `dymn tag one.wav`)
    blobs = cache_root() / "openvino"
    with contextlib.suppress(OSError):
        blobs.mkdir(parents=True, exist_ok=True)
    if os.access(blobs, os.W_OK):  # a read-only cache still works, compiling every time
        core.set_property({"CACHE_DIR": str(blobs)})
    # f32 explicitly: on CPUs with bf16 units OpenVINO otherwise computes in bf16 (logits off by ~1e-2)
    config = {"INFERENCE_NUM_THREADS": threads(), "INFERENCE_PRECISION_HINT": "f32"}
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
                graphs[shape] = static_graph(path, shape) if static else path
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
        with altstack.preserved():  # OpenVINO replaces this thread's signal stack
            return run_pieces(arr)

    def run_pieces(arr: np.ndarray):
        if chunk is None or len(arr) <= chunk:
            return one(arr)  # a single piece: all threads on it
        pieces = [arr[s : s + chunk] for s in range(0, len(arr), chunk)]
        outs = parallel(pieces) if streams > 1 else [one(p) for p in pieces]
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])

    return run


def grouped_graph(model: nn.Module, batch_size: int) -> Path:
    """A DyMN network as an OpenVINO model for batches of exactly ``batch_size`` (any length), its dynamic
    convolutions run as the reference runs them: one B-group convolution over the batch's own kernels. A fixed
    batch is what makes that form exportable; it is far faster in OpenVINO than the batch-independent graph of
    ``dymn export onnx`` (which computes every depthwise convolution with all K kernels). Converted once, cached."""
    import warnings

    import openvino as ov

    path = graph_path(model, f"grouped-b{batch_size}", ".xml", openvino=True)

    def make() -> Path:
        module = fuse(model, channels_last=False, static_dynamic_convs=False, micro_batch=None)
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
        return save_ir(converted, path)

    return cached(cache_root(), path, make)


def fixed_batch_runner(path: Path, size: int, model: nn.Module, streams: int = 1):
    """Runs batches cut into pieces of exactly ``size`` in OpenVINO (in parallel with ``streams`` > 1); a
    remainder (fewer than ``size`` clips) goes to the PyTorch module, which takes any batch size."""
    full = runner(path, size, streams, clip_frames(model), size)
    rest = fuse(model) if size > 1 else None

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


def build(model: nn.Module, plan: Plan, graph: Path | None = None) -> CompiledModel:
    """``model`` on OpenVINO for ``plan`` (``micro_batch`` "auto": single clips run in parallel when there are
    threads to spare)."""
    with altstack.preserved():  # converting and compiling replace this thread's signal stack too
        return _build(model, plan, graph)


def _build(model: nn.Module, plan: Plan, graph: Path | None) -> CompiledModel:
    micro_batch = plan.micro_batch
    if micro_batch == "auto":
        micro_batch = 1 if threads() > 1 and plan.batch_size > 1 else None
    streams = 1 if micro_batch is None else max(1, min(threads(), plan.batch_size // micro_batch))
    plan = dataclasses.replace(plan, micro_batch=micro_batch)
    if graph is None and model.arch == "dymn":
        size = micro_batch or plan.batch_size
        path = grouped_graph(model, size)
        return CompiledModel(model, plan, fixed_batch_runner(path, size, model, streams), path).eval()
    path = graph or onnx_graph(model)
    run = runner(path, micro_batch, streams, clip_frames(model), plan.batch_size)
    return CompiledModel(model, plan, run, path).eval()
