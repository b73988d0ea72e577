"""One module per backend (:mod:`.pt`, :mod:`.ort`, :mod:`.ov`), each offering ``available``, ``variants`` and
``build``; they never import each other. :func:`build` is the one dispatch point."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ...util.errors import MissingDependencyError, UsageError
from ..backends import BACKENDS, CHOICES, Plan
from . import ort, ov, pt

ENGINES = {"torch": pt, "onnxruntime": ort, "openvino": ov}


def variants(backend: str, batch_size: int) -> list[int | None]:
    """How ``backend`` may run batches of ``batch_size``, all measured by auto: None for whole batches, or the
    size of the pieces a batch is cut into (PyTorch: run one after another; OpenVINO: run in parallel)."""
    return ENGINES[backend].variants(batch_size)


def build(model: nn.Module, plan: Plan, graph: Path | None = None) -> nn.Module:
    """``model`` on ``plan.backend`` (torch: the fused module; else its ONNX graph, or ``graph``; DyMN on OpenVINO:
    a graph for a fixed batch)."""
    if plan.backend not in BACKENDS:
        raise UsageError(f"unknown backend {plan.backend!r}; choose one of {', '.join(CHOICES)}")
    engine = ENGINES[plan.backend]
    if not engine.available():
        raise MissingDependencyError(f"the {plan.backend} backend is not installed: pip install 'dymn[fast]'")
    return engine.build(model, plan, graph)
