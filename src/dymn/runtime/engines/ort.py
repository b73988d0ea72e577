"""The onnxruntime engine: the network's cached ONNX graph (or a given one) in an onnxruntime session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import nn

from ..backends import Plan, threads
from ..backends import available as backends_available
from ..compiled import CompiledModel
from ..export import onnx_graph


def available() -> bool:
    return "onnxruntime" in backends_available()


def variants(batch_size: int) -> list[int | None]:
    return [None]


def session(path: str | os.PathLike, num_threads: int | None = None, providers=None):
    """An onnxruntime session for ``path`` with quiet logging (the one place sessions are set up); errors from
    onnxruntime pass through for the caller to word."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if num_threads:
        opts.intra_op_num_threads = num_threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])


def runner(path: Path):
    """A function running the graph at ``path``: array in, ``(logits, embedding)`` arrays out."""
    sess = session(path, threads())
    name = sess.get_inputs()[0].name

    def run(arr: np.ndarray):
        logits, emb = sess.run(None, {name: arr})
        return logits, emb

    return run


def build(model: nn.Module, plan: Plan, graph: Path | None = None) -> CompiledModel:
    path = graph or onnx_graph(model)
    return CompiledModel(model, plan, runner(path), path).eval()
