"""An exported ONNX file (``dymn export onnx``) under the model contract: :class:`OnnxModel`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..audio.frontend import FrontendConfig
from ..models.info import ModelInfo
from ..util.errors import DymnError, ExportError, first_line, require
from .engines import ort, ov
from .export import ONNX_META_KEY


class OnnxModel:
    """An exported ONNX file under the model contract (``info``; called like the exported module)."""

    arch = "onnx"

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers=None):
        require("onnxruntime", "export", "running ONNX files")
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"{path}: no such ONNX file")
        try:
            self.session = ort.session(path, threads, providers)
        except Exception as exc:
            raise ExportError(f"{path}: not a valid ONNX model ({first_line(exc)})") from None
        text = self.session.get_modelmeta().custom_metadata_map.get(ONNX_META_KEY)
        if text is None:
            raise ExportError(f"{path}: not exported by dymn (no dymn metadata); use `dymn export onnx`")
        self.info = info_from_meta(text, path)
        self.input_name = self.session.get_inputs()[0].name
        self._run = None
        if json.loads(text).get("dtype") == "int8":
            # OpenVINO runs NNCF's int8 graphs 3-7x faster than onnxruntime (which refused some of them outright)
            if not ov.available():
                raise ExportError(f"{path}: an int8 graph runs on OpenVINO: pip install 'dymn[fast]'")
            self._run = ov.runner(path)

    def to(self, *args, **kwargs):
        return self

    def eval(self):
        return self

    def __call__(self, x: torch.Tensor):
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        logits, emb = self._run(arr) if self._run is not None else self.session.run(None, {self.input_name: arr})
        return torch.from_numpy(logits), torch.from_numpy(emb)


def info_from_meta(text: str, path: Path) -> ModelInfo:
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
