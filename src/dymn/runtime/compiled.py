"""The wrapper every converted-graph backend returns: the network's contract on a foreign runtime."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..util.errors import UsageError
from .backends import Plan


class CompiledModel(nn.Module):
    """A converted graph under the network's contract: spectrogram (B, 1, F, T) in, ``(logits, embedding)``
    out as float32 tensors, any batch size and length; ``info`` as the network's, ``plan`` as it runs."""

    def __init__(self, model: nn.Module, plan: Plan, run: Callable[[np.ndarray], tuple], source: Path):
        super().__init__()
        self.plan = plan
        self.backend = plan.backend
        self.info = model.info
        self.arch = model.arch
        self.config = model.config
        self.embed_dim = model.embed_dim
        self.source = source
        self.run = run

    def forward(self, x: torch.Tensor, return_fmaps: bool = False):
        if return_fmaps:
            raise UsageError(f"the {self.backend} backend gives logits and embeddings only; feature maps need "
                             "backend='torch'")  # fmt: skip
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy())
        logits, emb = self.run(arr)
        return torch.from_numpy(logits), torch.from_numpy(emb)

    def __repr__(self) -> str:
        return f"CompiledModel({self.info.name}, backend={self.backend})"
