"""Recipe defaults of the reference (spec 6.1, 6.3) and how CLI overrides combine with them."""

from __future__ import annotations

import dataclasses

from .config import TrainConfig

# Recipe defaults (spec 6.1 and 6.3); (MN value, DyMN value) where the recipes differ.
FINETUNE = dict(epochs=80, warm_up_len=10, ramp_down_start=10, ramp_down_len=65, last_lr_value=0.01, mixup_alpha=0.3)
RECIPES: dict[str, dict] = {
    "audioset": dict(epochs=200, batch_size=(120, 120), lr=(8e-4, 1e-3), warm_up_len=8, ramp_down_start=80,
                     ramp_down_len=95, last_lr_value=0.01, mixup_alpha=0.3, kd_lambda=0.1, clip_seconds=10.0,
                     roll=0, gain=0, wavmix=0.0, epoch_len=100_000),
    "esc50": dict(FINETUNE, batch_size=(128, 64), lr=(6e-5, 4e-5), clip_seconds=5.0, roll=4000, gain=12, wavmix=0.5),
    "fsd50k": dict(FINETUNE, batch_size=(64, 32), lr=(7e-5, 4e-5), clip_seconds=10.0, roll=4000, gain=12,
                   wavmix=0.5, random_crop=True),
    "openmic": dict(FINETUNE, batch_size=(64, 32), lr=(1e-5, 2e-5), clip_seconds=10.0, roll=4000, gain=12,
                    wavmix=0.5),
    "dcase20": dict(FINETUNE, batch_size=(64, 32), lr=(8e-4, 3e-4), clip_seconds=None, roll=4000, gain=12,
                    wavmix=0.5),
    "folder": dict(FINETUNE, batch_size=(64, 32), lr=(6e-5, 4e-5), clip_seconds="auto", roll=4000, gain=12,
                   wavmix=0.5),
    "csv": dict(FINETUNE, batch_size=(64, 32), lr=(6e-5, 4e-5), clip_seconds="auto", roll=4000, gain=12,
                wavmix=0.5),
}  # fmt: skip
TASKS = tuple(RECIPES)


def recipe_defaults(task: str, arch: str) -> dict:
    """The recipe's settings for an architecture ("mn" or "dymn")."""
    out = {}
    for k, v in RECIPES[task].items():
        out[k] = (v[1] if arch == "dymn" else v[0]) if isinstance(v, tuple) else v
    return out


def make_config(task: str, arch: str, overrides: dict) -> tuple[TrainConfig, dict]:
    """TrainConfig and dataset settings: recipe defaults with ``overrides`` (None values ignored)."""
    merged = recipe_defaults(task, arch)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in merged.items() if k in fields})
    settings = {k: v for k, v in merged.items() if k not in fields}
    return cfg, settings
