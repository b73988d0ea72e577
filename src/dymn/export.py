"""Export to ONNX (dynamic batch and time axes, optional frontend) and TorchScript; run ONNX files."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .errors import DymnError, ExportError, first_line
from .frontend import FrontendConfig, MelFrontend
from .model import ModelInfo, is_network
from .optimized import optimize

ONNX_META_KEY = "dymn"


class WaveformModel(nn.Module):
    """Frontend + network in one module: waveform (B, N) -> (logits, embedding)."""

    def __init__(self, frontend: MelFrontend, net: nn.Module):
        super().__init__()
        self.frontend = frontend
        self.net = net

    def forward(self, wave: torch.Tensor):
        return self.net(self.frontend(wave).unsqueeze(1))


def export_module(model: nn.Module, with_frontend: bool = False) -> nn.Module:
    """The module that gets exported: BatchNorm folded, batch-independent shapes, fp32, NCHW.

    Dynamic depthwise convolutions run their K kernels as one static conv (no batch-sized groups), so
    the batch axis stays dynamic; the frontend (if included) computes its STFT as a convolution.
    """
    fast = optimize(model, channels_last=False, static_dynamic_convs=True, micro_batch=None, backend="torch")
    if not with_frontend:
        return fast
    fe = MelFrontend.from_config(model.info.frontend).eval()
    fe.conv_stft = True
    return WaveformModel(fe, fast).eval()


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
        "clip_seconds": info.clip_seconds,
        "embed_dim": info.embed_dim,
        "config": info.config,
    }


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
    ``logits`` (B, C) and ``embedding`` (B, D). Written atomically. ``exporter``: "auto" uses PyTorch's
    torch.export-based exporter where it has one (2.5 and later), else the TorchScript-based one;
    "torchscript" the latter (deprecated by PyTorch, but 10-20x faster: 1.4 s instead of 24 s for dymn10; its
    graphs ran as fast in onnxruntime and OpenVINO). Both are tested on the reference fixtures.
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
    axes.update({"logits": {0: "batch"}, "embedding": {0: "batch"}})

    def write(tmp: str) -> None:
        with warnings.catch_warnings(), _quiet_torch_onnx():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                example,
                tmp,
                input_names=names,
                output_names=["logits", "embedding"],
                dynamic_axes=axes,
                opset_version=opset,
                **_exporter_options(exporter),
            )
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


class OnnxModel:
    """An exported ONNX file under the model contract (``info``; called like the exported module)."""

    arch = "onnx"

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers=None):
        from .errors import require

        ort = require("onnxruntime", "export", "running ONNX files")
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"{path}: no such ONNX file")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:
            raise ExportError(f"{path}: not a valid ONNX model ({first_line(exc)})") from None
        text = self.session.get_modelmeta().custom_metadata_map.get(ONNX_META_KEY)
        if text is None:
            raise ExportError(f"{path}: not exported by dymn (no dymn metadata); use `dymn export onnx`")
        self.info = _info_from_meta(text, path)
        self.input_name = self.session.get_inputs()[0].name
        self._run = None
        if json.loads(text).get("dtype") == "int8":
            # OpenVINO runs NNCF's int8 graphs 3-7x faster than onnxruntime (which refused some of them outright)
            from .backends import _openvino, available

            if "openvino" not in available():
                raise ExportError(f"{path}: an int8 graph runs on OpenVINO: pip install 'dymn[fast]'")
            self._run = _openvino(path)

    def to(self, *args, **kwargs):
        return self

    def eval(self):
        return self

    def __call__(self, x: torch.Tensor):
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        logits, emb = self._run(arr) if self._run is not None else self.session.run(None, {self.input_name: arr})
        return torch.from_numpy(logits), torch.from_numpy(emb)


def _info_from_meta(text: str, path: Path) -> ModelInfo:
    try:
        meta = json.loads(text)
        labels = meta["labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise ValueError("labels must be a non-empty list of strings")
        return ModelInfo(
            name=str(meta.get("name") or path.stem), arch="onnx", labels=tuple(labels),
            frontend=FrontendConfig(**meta["frontend"]), task=meta.get("task", "multilabel"),
            config=dict(meta.get("config") or {}, exported_arch=meta.get("arch")),
            embed_dim=int(meta.get("embed_dim") or 0), input=meta["input"], source=f"file {path}",
            clip_seconds=meta.get("clip_seconds", 10.0),
        )  # fmt: skip
    except (ValueError, TypeError, KeyError, DymnError) as exc:
        raise ExportError(f"{path}: invalid dymn metadata ({first_line(exc)})") from None
