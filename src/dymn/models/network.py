"""The contract of the networks themselves (MN, DyMN, FrameMN): ``info``, ``labels`` and ``save``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..util.errors import UsageError
from .checkpoint import checkpoint_meta, write_checkpoint
from .info import ModelInfo, default_labels


def is_network(model) -> bool:
    """True for the trainable networks themselves (MN, DyMN), not wrappers, ensembles or exports."""
    return isinstance(model, NetworkMixin)


class NetworkMixin:
    """The contract for the networks themselves (MN, DyMN): ``info``, ``labels`` and ``save``."""

    info: ModelInfo
    embed_dim: int
    config: object

    def _init_info(self) -> None:
        cfg = self.config
        self.info = ModelInfo(
            name=self.arch, arch=self.arch, labels=default_labels(cfg.num_classes), config=cfg.to_dict(),
            embed_dim=int(self.embed_dim), level=getattr(self, "level", "clip"),
        )  # fmt: skip

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    def save(self, path: str | os.PathLike, *, plain: bool = False) -> Path:
        """Write a self-describing checkpoint (``plain=True``: a reference-style state dict)."""
        return save_checkpoint(self, path, plain=plain)


def save_checkpoint(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    plain: bool = False,
    extra: dict | None = None,
) -> Path:
    """Write ``model`` atomically: a self-describing checkpoint, or with ``plain`` a reference-style
    state dict. A ``.safetensors`` suffix writes safetensors (metadata in its header). ``extra`` adds
    JSON-able entries to the metadata (e.g. the training configuration)."""
    if not is_network(model):
        raise UsageError(f"only MN and DyMN networks can be saved as checkpoints, not a {type(model).__name__} "
                         "(save the model before optimizing it; an ensemble is saved member by member)")  # fmt: skip
    return write_checkpoint(model.state_dict(), {**(extra or {}), **checkpoint_meta(model, name)}, path, plain=plain)
