"""Export to ONNX (dynamic batch and time axes, optional frontend) and TorchScript; run ONNX files."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .frontend import FrontendConfig, MelFrontend
from .hub import atomic_write
from .optimize import optimize

ONNX_META_KEY = "dymn"


class ExportError(RuntimeError):
    """An export or an exported file that cannot be used; the message says why."""


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
    fast = optimize(model, channels_last=False, static_dynamic_convs=True, micro_batch=None)
    if not with_frontend:
        return fast
    fe = MelFrontend.from_config(model.frontend_config).eval()
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
    return {
        "name": getattr(model, "model_name", None),
        "arch": model.arch,
        "input": "waveform" if with_frontend else "spectrogram",
        "frontend": model.frontend_config.to_dict(),
        "labels": list(model.labels),
        "embed_dim": model.embed_dim,
    }


def export_onnx(model: nn.Module, path: str | os.PathLike, with_frontend: bool = False, opset: int = 18) -> Path:
    """Write ``model`` as ONNX with dynamic batch and time axes; labels and frontend go in the metadata.

    Input ``spectrogram`` (B, 1, n_mels, T), or ``waveform`` (B, N) with ``with_frontend``; outputs
    ``logits`` (B, C) and ``embedding`` (B, D). Written atomically.
    """
    import onnx

    path = _check_out(path)
    module = export_module(model, with_frontend)
    fe = model.frontend_config
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
                dynamo=True,
                external_data=False,
                verbose=False,
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
        raise ExportError(f"ONNX export of {getattr(model, 'model_name', model.arch)} failed: {exc}") from exc


def export_torchscript(model: nn.Module, path: str | os.PathLike, with_frontend: bool = False) -> Path:
    """Write a traced TorchScript module (same inputs and outputs as the ONNX export)."""
    path = _check_out(path)
    module = export_module(model, with_frontend)
    fe = model.frontend_config
    example = torch.randn(2, fe.sample_rate) if with_frontend else torch.randn(2, 1, fe.n_mels, 200)

    def write(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, (example,), check_trace=False)
            torch.jit.save(traced, tmp, _extra_files={"dymn.json": json.dumps(_meta(model, with_frontend))})

    return atomic_write(path, write)


class OnnxModel:
    """An exported ONNX file used like a model by :class:`dymn.Tagger` (onnxruntime, CPU by default)."""

    arch = "onnx"
    pretrained_cfg = None

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers=None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("the ONNX backend needs onnxruntime: pip install 'dymn[export]'") from None
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
            msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{path}: not a valid ONNX model ({msg})") from None
        meta = self.session.get_modelmeta().custom_metadata_map.get(ONNX_META_KEY)
        if meta is None:
            raise ExportError(f"{path}: not exported by dymn (no dymn metadata); use `dymn export onnx`")
        meta = json.loads(meta)
        self.model_name = meta.get("name") or path.stem
        self.labels = meta["labels"]
        self.frontend_config = FrontendConfig(**meta["frontend"])
        self.takes_waveform = meta["input"] == "waveform"
        self.embed_dim = meta.get("embed_dim")
        self.input_name = self.session.get_inputs()[0].name

    def to(self, *args, **kwargs):
        return self

    def eval(self):
        return self

    def __call__(self, x: torch.Tensor):
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        logits, emb = self.session.run(None, {self.input_name: arr})
        return torch.from_numpy(logits), torch.from_numpy(emb)
