"""The PyTorch engine: the fused module of :mod:`..fusion` (any device, any precision PyTorch has)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ...util.errors import UsageError
from ..backends import Plan
from ..fusion import fuse


def available() -> bool:
    return True


def variants(batch_size: int) -> list[int | None]:
    """How a batch may run: whole (None), or one piece of 1, 2 or 4 clips after another."""
    return [None, *(mb for mb in (1, 2, 4) if mb < batch_size)]


def build(model: nn.Module, plan: Plan, graph=None, *, dtype=None, channels_last: bool = True) -> nn.Module:
    """``model`` fused for ``plan`` (``plan.micro_batch`` "auto": PyTorch's rule of thumb); PyTorch runs the network
    itself, never a converted ``graph``."""
    if graph is not None:
        raise UsageError("the torch backend runs the network itself, not a converted graph (int8 runs on "
                         "onnxruntime or openvino)")  # fmt: skip
    fused = fuse(model, plan.device, dtype or torch.float32, channels_last=channels_last, micro_batch=plan.micro_batch)
    fused.plan = dataclasses.replace(fused.plan, batch_size=plan.batch_size)
    return fused
