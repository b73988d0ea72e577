"""Export to ONNX (dynamic batch and time axes, optional frontend) and TorchScript; the cached ONNX graph that the
converted-graph backends start from (:func:`onnx_graph`)."""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..audio.frontend import MelFrontend
from ..models.network import is_network
from ..util.atomic import atomic_write
from ..util.errors import ExportError
from .fusion import fuse
from .graphs import cache_root, cached, graph_path

ONNX_META_KEY = "dymn"


class FrontendModel(nn.Module):
    """The mel frontend alone, as exported in front of an int8 network: waveform (B, N) -> (B, 1, F, T)."""

    def __init__(self, frontend: MelFrontend):
        super().__init__()
        self.frontend = frontend

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.frontend(wave).unsqueeze(1)


class WaveformModel(nn.Module):
    """Frontend + network in one module: waveform (B, N) -> (logits, embedding)."""

    def __init__(self, frontend: MelFrontend, net: nn.Module):
        super().__init__()
        self.frontend = frontend
        self.net = net

    def forward(self, wave: torch.Tensor):
        return self.net(self.frontend(wave).unsqueeze(1))


def _conv_frontend(model: nn.Module) -> MelFrontend:
    fe = MelFrontend.from_config(model.info.frontend).eval()
    fe.conv_stft = True  # the STFT as a convolution: one dense product in the graph
    return fe


def export_frontend(model: nn.Module) -> nn.Module:
    """``model``'s mel frontend as exported: the STFT as a convolution, waveform (B, N) -> (B, 1, F, T)."""
    return FrontendModel(_conv_frontend(model)).eval()


def export_module(model: nn.Module, with_frontend: bool = False) -> nn.Module:
    """The module that gets exported: BatchNorm folded, batch-independent shapes, fp32, NCHW.

    Dynamic depthwise convolutions run their K kernels as one static conv (no batch-sized groups), so
    the batch axis stays dynamic; the frontend (if included) computes its STFT as a convolution.
    """
    if model.info.level == "frame":  # detectors run as they are (their sequence models have nothing to fold)
        fast = copy.deepcopy(model).eval().float()
    else:
        fast = fuse(model, channels_last=False, static_dynamic_convs=True, micro_batch=None)
    if not with_frontend:
        return fast
    return WaveformModel(_conv_frontend(model), fast).eval()


@contextlib.contextmanager
def _quiet_torch_onnx():
    # the exporter logs about optional packages it does not need (torchvision ops)
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_out(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"cannot write {path}: folder {path.parent} does not exist")
    return path


def _meta(model: nn.Module, with_frontend: bool) -> dict:
    info = model.info
    return {
        "name": info.name,
        "arch": info.arch,
        "input": "waveform" if with_frontend else "spectrogram",
        "frontend": info.frontend.to_dict(),
        "labels": list(info.labels),
        "task": info.task,
        "level": info.level,
        "clip_seconds": info.clip_seconds,
        "embed_dim": info.embed_dim,
        "config": info.config,
    }


def _output_names(model) -> list[str]:
    """A tagger's outputs: ``logits`` (B, C), ``embedding`` (B, D); a detector's: ``frame_logits`` (B, C, T) every
    40 ms, and its clip-level ``logits`` (B, C)."""
    return ["frame_logits", "logits"] if model.info.level == "frame" else ["logits", "embedding"]


def _check_exportable(model) -> None:
    if not is_network(model):
        raise ExportError(f"only MN and DyMN networks can be exported, not {model.info.name} ({model.info.arch})")


def _exporter_options(exporter: str) -> dict:
    dynamo = "dynamo" in inspect.signature(torch.onnx.export).parameters  # PyTorch 2.5 and later
    if not dynamo:
        return {}  # only the TorchScript-based exporter
    if exporter == "torchscript":
        return {"dynamo": False}
    return {"dynamo": True, "external_data": False, "verbose": False}


def export_onnx(model: nn.Module, path: str | os.PathLike, with_frontend: bool = False, opset: int = 18,
                exporter: str = "auto") -> Path:  # fmt: skip
    """Write ``model`` as ONNX with dynamic batch and time axes; labels and frontend go in the metadata.

    Input ``spectrogram`` (B, 1, n_mels, T), or ``waveform`` (B, N) with ``with_frontend``; outputs
    ``logits`` (B, C) and ``embedding`` (B, D) (a detector's: ``frame_logits`` (B, C, T) and ``logits``).
    Written atomically. ``exporter``: "auto" uses PyTorch's torch.export-based exporter where it has one (2.5
    and later), else the TorchScript-based one; "torchscript" the latter (deprecated by PyTorch, but 10-20x
    faster: 1.4 s instead of 24 s for dymn10; its graphs ran as fast in onnxruntime and OpenVINO). Both are
    tested on the reference fixtures.
    """
    import onnx

    if exporter not in ("auto", "torchscript"):
        raise ExportError(f"exporter must be 'auto' or 'torchscript', not {exporter!r}")

    path = _check_out(path)
    _check_exportable(model)
    module = export_module(model, with_frontend)
    fe = model.info.frontend
    if with_frontend:
        example = (torch.randn(2, fe.sample_rate),)
        names, axes = ["waveform"], {"waveform": {0: "batch", 1: "samples"}}
    else:
        example = (torch.randn(2, 1, fe.n_mels, 200),)
        names, axes = ["spectrogram"], {"spectrogram": {0: "batch", 3: "frames"}}
    outputs = _output_names(model)
    axes.update({name: {0: "batch"} for name in outputs})
    if model.info.level == "frame":
        axes["frame_logits"][2] = "frames"

    def write(tmp: str) -> None:
        _torch_onnx_export(module, example, tmp, names, outputs, axes, opset, exporter)
        proto = onnx.load(tmp)
        entry = proto.metadata_props.add()
        entry.key, entry.value = ONNX_META_KEY, json.dumps(_meta(model, with_frontend))
        onnx.save(proto, tmp)

    try:
        return atomic_write(path, write)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"ONNX export of {model.info.name} failed: {exc}") from exc


def _torch_onnx_export(module: nn.Module, example: tuple, tmp: str, inputs: list[str], outputs: list[str],
                       axes: dict, opset: int, exporter: str) -> None:  # fmt: skip
    with warnings.catch_warnings(), _quiet_torch_onnx():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, tmp, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=opset, **_exporter_options(exporter))  # fmt: skip


def frontend_graph(model: nn.Module, path: str | os.PathLike, opset: int = 18) -> Path:
    """Write ``model``'s mel frontend alone as ONNX (TorchScript-based exporter where this PyTorch has it):
    input ``waveform`` (B, N), output ``spectrogram`` (B, 1, F, T); what goes in front of an int8 network."""
    import onnx

    path = _check_out(path)
    module = export_frontend(model)
    example = (torch.randn(2, model.info.frontend.sample_rate),)

    axes = {"waveform": {0: "batch", 1: "samples"}, "spectrogram": {0: "batch", 3: "frames"}}

    def write(tmp: str) -> None:
        _torch_onnx_export(module, example, tmp, ["waveform"], ["spectrogram"], axes, opset, "torchscript")
        onnx.checker.check_model(onnx.load(tmp))

    return atomic_write(path, write)


def export_torchscript(model: nn.Module, path: str | os.PathLike, with_frontend: bool = False) -> Path:
    """Write a traced TorchScript module (same inputs and outputs as the ONNX export)."""
    path = _check_out(path)
    _check_exportable(model)
    module = export_module(model, with_frontend)
    fe = model.info.frontend
    example = torch.randn(2, fe.sample_rate) if with_frontend else torch.randn(2, 1, fe.n_mels, 200)

    def write(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, (example,), check_trace=False)
            torch.jit.save(traced, tmp, _extra_files={"dymn.json": json.dumps(_meta(model, with_frontend))})

    return atomic_write(path, write)


def onnx_graph(model: nn.Module) -> Path:
    """The network's ONNX graph (as ``dymn export onnx`` writes it, by the faster TorchScript-based exporter where
    this PyTorch has it), exported once per weights and library versions into the cache. Every backend built
    on it is checked against the plain network before it is used (:func:`dymn.runtime.choice.choose`)."""
    path = graph_path(model, "", ".onnx")

    def make() -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # the TorchScript-based exporter: 10-20x faster than torch.export's, graphs as fast (measured)
            export_onnx(model, path, exporter="torchscript")
        except Exception:  # noqa: BLE001 (a PyTorch without it, or a graph it cannot take)
            export_onnx(model, path)
        return path

    return cached(cache_root(), path, make)
