"""An exported ONNX file (``dymn export onnx``) under the model contract: :class:`OnnxModel`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from ..audio.frontend import FrontendConfig
from ..models.info import TASKS, ModelInfo
from ..util.errors import DymnError, ExportError, first_line, require
from .engines import ort, ov
from .export import ONNX_META_KEY

INPUTS = ("waveform", "spectrogram")
MAX_CLASSES = 100_000  # as a checkpoint's num_classes


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
        self.info = info_from_meta(text, path, self.session)
        self.path = path
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
        try:
            logits, emb = self._run(arr) if self._run is not None else self.session.run(None, {self.input_name: arr})
        except Exception as exc:  # noqa: BLE001 (the runtime's own errors: a graph that cannot run or allocate)
            raise ExportError(f"{self.path}: the runtime cannot run this graph ({first_line(exc)})") from None
        if logits.shape != (len(arr), self.info.num_classes):  # a shape decided only when it runs
            raise ExportError(f"{self.path}: the graph gave scores of shape {tuple(logits.shape)} for "
                              f"{len(arr)} inputs and {self.info.num_classes} labels")  # fmt: skip
        return torch.from_numpy(logits), torch.from_numpy(emb)


def info_from_meta(text: str, path: Path, session=None) -> ModelInfo:
    """The model contract of an exported file from its dymn metadata, checked as a checkpoint's is (one frontend
    validator) and, with ``session``, against the graph itself: its input's rank, two outputs, as many scores as
    labels. A file that does not fit is an ExportError before anything runs."""
    try:
        meta = json.loads(text)
        if not isinstance(meta, dict):
            raise ValueError("the metadata must be a mapping")
        labels = meta["labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise ValueError("labels must be a non-empty list of strings")
        if len(labels) > MAX_CLASSES:
            raise ValueError(f"{len(labels)} labels (at most {MAX_CLASSES})")
        if meta["input"] not in INPUTS:
            raise ValueError(f"input must be one of {', '.join(INPUTS)}, got {meta['input']!r:.60}")
        if meta.get("task", "multilabel") not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {meta.get('task')!r:.60}")
        clip_seconds = meta.get("clip_seconds", 10.0)
        if clip_seconds is not None and not (_number(clip_seconds) and 0.01 <= clip_seconds <= 3600):
            raise ValueError(f"clip_seconds must be a number of seconds in 0.01..3600, got {clip_seconds!r:.60}")
        embed_dim = meta.get("embed_dim") or 0
        if not (_number(embed_dim) and embed_dim == int(embed_dim) and 0 <= embed_dim <= 1 << 16):
            raise ValueError(f"embed_dim must be a whole number in 0..65536, got {embed_dim!r:.60}")
        config = meta.get("config") or {}
        if not isinstance(config, dict):
            raise ValueError("config must be a mapping")
        info = ModelInfo(
            name=str(meta.get("name") or path.stem), arch="onnx", labels=tuple(labels),
            frontend=FrontendConfig.from_dict(meta["frontend"]), task=meta.get("task", "multilabel"),
            config=dict(config, exported_arch=meta.get("arch")), embed_dim=int(embed_dim), input=meta["input"],
            source=f"file {path}", clip_seconds=clip_seconds,
        )  # fmt: skip
    except (ValueError, TypeError, KeyError, DymnError) as exc:
        raise ExportError(f"{path}: invalid dymn metadata ({first_line(exc)})") from None
    if session is not None:
        _check_graph(session, info, path)
    return info


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _check_graph(session, info: ModelInfo, path: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    rank = 2 if info.input == "waveform" else 4
    if len(inputs) != 1 or len(inputs[0].shape) != rank:
        shape = [list(i.shape) for i in inputs]
        raise ExportError(f"{path}: its metadata says {info.input} input (rank {rank}), but the graph takes "
                          f"{shape}; the metadata does not describe this graph")  # fmt: skip
    if outputs and outputs[0].name == "frame_logits":
        raise ExportError(f"{path}: a frame-level detector's graph, which dymn runs only in the browser (`dymn "
                          "export web`); give the detector's name or checkpoint instead")  # fmt: skip
    if len(outputs) != 2:
        raise ExportError(f"{path}: a dymn graph has two outputs (logits, embeddings); this one has {len(outputs)}")
    classes = outputs[0].shape[-1] if outputs[0].shape else None
    if isinstance(classes, int) and classes != info.num_classes:
        raise ExportError(f"{path}: {info.num_classes} labels in the metadata for a graph with {classes} outputs")
    dim = outputs[1].shape[-1] if outputs[1].shape else None
    if info.embed_dim and isinstance(dim, int) and dim != info.embed_dim:
        raise ExportError(f"{path}: embed_dim {info.embed_dim} in the metadata for a graph with {dim}-dim embeddings")
