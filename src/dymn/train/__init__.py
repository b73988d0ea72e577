"""Training and fine-tuning on PyTorch Lightning (install the ``[train]`` extra).

A run is a model, a :class:`TaskDataModule`, a :class:`TrainConfig` and a run folder::

    data = TaskDataModule("folder", "my_sounds/")          # splits read, "auto" data settings resolved
    model = dymn.load("mn04_as", num_classes=data.num_classes)
    cfg = train_config("folder", model.info.arch, data.num_train)   # the recipe, adapted to the data
    module, path = fit(model, data, cfg, "runs/mine")
"""

from __future__ import annotations

from importlib import import_module

from .config import DataConfig, TrainConfig
from .recipes import RECIPE_NAMES, TASKS, data_config, train_config

# Lightning is imported only when these are used, so that the CLI starts fast and works without [train]
_LAZY = {"TaskDataModule": ".datamodule", "fit": ".runner", "evaluate": ".runner", "TaggingModule": ".module"}

__all__ = ["DataConfig", "TrainConfig", "RECIPE_NAMES", "TASKS", "data_config", "train_config", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
