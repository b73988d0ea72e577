"""The runtime's interface: :func:`compile` (what Tagger and Detector call), :func:`optimize` (the public
``dymn.optimize``), :func:`open_onnx` and :func:`export_onnx_checked`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.network import is_network
from ..util.errors import UsageError
from . import engines
from .backends import Plan, canonical, default_backend
from .choice import choose
from .export import export_frontend, export_module, export_onnx
from .fusion import fuse
from .onnxfile import OnnxModel


def compile(  # noqa: A001 (the runtime's verb, as torch.compile)
    model: nn.Module,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    backend: str | None = None,
    dtype: torch.dtype = torch.float32,
    micro_batch: int | None | str = "auto",
    channels_last: bool = True,
) -> nn.Module:
    """``model`` ready to run fast: ``backend`` as named, or "auto" (the default, or ``$DYMN_BACKEND``): on a GPU or
    in reduced precision PyTorch; on the CPU the backend remembered or measured for ``batch_size`` on this machine
    (:mod:`.choice`). Returns a module with the network's ``info`` and a ``plan``."""
    if not is_network(model):
        raise UsageError(f"optimize() takes an MN or DyMN network, not {type(model).__name__}")
    backend = canonical(backend) or default_backend()
    on_cpu = torch.device(device).type == "cpu"
    if backend == "auto":
        if dtype != torch.float32 or not on_cpu:
            backend = "torch"  # reduced precision and GPUs are PyTorch's
        else:
            backend, built = choose(model, batch_size, device)
            if built is not None:
                return built
    if backend == "torch":
        return engines.pt.build(model, Plan("torch", batch_size, micro_batch, device=str(device)), dtype=dtype,
                                channels_last=channels_last)  # fmt: skip
    if not on_cpu or dtype != torch.float32:
        raise UsageError(f"the {backend} backend runs fp32 on the CPU; use backend='torch' for "
                         f"{torch.device(device).type} or {dtype}")  # fmt: skip
    return engines.build(model, Plan(backend, batch_size, "auto"))


@torch.no_grad()
def optimize(
    model: nn.Module,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    channels_last: bool = True,
    static_dynamic_convs: bool = False,
    micro_batch: int | None | str = "auto",
    backend: str | None = None,
    batch_size: int = 8,
    calibration=None,
) -> nn.Module:
    """An equivalent, faster inference module: spectrogram in, ``(logits, embedding)`` out, any batch size and
    length; outputs equal ``model``'s within 1e-4 in fp32. ``model`` itself is not modified.

    ``backend``: "auto" (the default, or ``$DYMN_BACKEND``) runs the fastest backend installed on this machine
    for ``batch_size`` (measured on first use and cached, see :mod:`dymn.runtime.choice`); "torch", "onnxruntime"
    or "openvino" choose one. The PyTorch module folds BatchNorm and batches the dynamic convolutions;
    ``dtype=torch.bfloat16`` (CPU) or ``torch.float16`` (GPU) trade a little accuracy for speed (PyTorch only).
    Channels-last memory is used by default (measured faster on CPU for both MN and DyMN); ``micro_batch``
    splits large batches into chunks ("auto": 4 for width >= 1 on CPU, else whole batches).
    ``dtype="int8"``: post-training static quantization calibrated on ``calibration`` (audio files, a folder or
    waveforms like the ones you will tag), run on the faster of onnxruntime and OpenVINO (``[int8]`` extra);
    offered for MN models of width 1.0 and up, where it pays (:func:`dymn.runtime.int8.check_offered`).
    """
    if isinstance(dtype, str):
        if dtype != "int8":
            raise UsageError(f"dtype takes a torch dtype or 'int8', got {dtype!r}")
        if not is_network(model):
            raise UsageError(f"optimize() takes an MN or DyMN network, not {type(model).__name__}")
        if torch.device(device).type != "cpu":
            raise UsageError("int8 runs on the CPU")
        from .int8 import int8_model

        return int8_model(model, calibration, canonical(backend) or "auto", batch_size)
    if static_dynamic_convs:  # the form ONNX export needs: PyTorch's
        return fuse(model, device, dtype, channels_last, static_dynamic_convs, micro_batch)
    return compile(model, device, batch_size, backend, dtype=dtype, micro_batch=micro_batch,
                   channels_last=channels_last)  # fmt: skip


def open_onnx(path: str | os.PathLike, threads: int | None = None, providers=None) -> OnnxModel:
    """An ONNX file written by ``dymn export onnx`` as a model (``info`` from its metadata)."""
    return OnnxModel(path, threads, providers)


def export_onnx_checked(model: nn.Module, path: str | os.PathLike, with_frontend: bool = False) -> Path:
    """:func:`~dymn.runtime.export.export_onnx` by the TorchScript-based exporter (10-20x faster than
    torch.export's, its graphs as fast), checked: its graph runs once in onnxruntime against PyTorch on a 10 s
    input, and where it differs or fails (that exporter misreads the attention of the transformer detectors,
    fmn*_tf*) the graph is exported again by torch.export."""
    try:
        export_onnx(model, path, with_frontend=with_frontend, exporter="torchscript")
        if _matches(model, path, with_frontend):
            return Path(path)
    except Exception:  # noqa: BLE001 (a PyTorch without it, or a graph it cannot take)
        pass
    return export_onnx(model, path, with_frontend=with_frontend)


def _matches(model: nn.Module, path: str | os.PathLike, with_frontend: bool) -> bool:
    """Whether the ONNX graph at ``path`` gives what ``model`` gives on a 10 s input (1e-3)."""
    fe = model.info.frontend
    samples = int(round((model.info.clip_seconds or 10.0) * fe.sample_rate))
    wave = torch.randn(1, samples, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.inference_mode():
        x = wave if with_frontend else export_frontend(model)(wave)
        want = export_module(model, with_frontend)(x)[0].float().numpy()
    try:
        sess = engines.ort.session(path)
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    except Exception:  # noqa: BLE001 (a graph that does not run is a graph that does not match)
        return False
    return got.shape == want.shape and bool(np.allclose(got, want, atol=1e-3, rtol=1e-3))
