"""The runtime's interface: :func:`compile` (what Tagger and Detector call), :func:`optimize` (the public
``dymn.optimize``) and :func:`open_onnx`."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..models.network import is_network
from ..util.errors import UsageError
from . import engines
from .backends import Plan, canonical, default_backend
from .choice import choose
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
