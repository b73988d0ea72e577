"""Recipe defaults of the reference (spec 6.1, 6.3), the "auto" recipe, and how a run's configuration is
resolved: :func:`data_config` before the data is read, :func:`train_config` once the data and the model are
known. What the user gave always wins over a recipe."""

from __future__ import annotations

import dataclasses

from .config import DataConfig, TrainConfig

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
    # frame-level detectors on your strongly labelled data: 10 s chunks, EfficientSED's frame shift of +-0.125 s
    "strong": dict(FINETUNE, batch_size=(64, 32), lr=(6e-5, 4e-5), clip_seconds=10.0, roll=2000, gain=12,
                   wavmix=0.0),
}  # fmt: skip
TASKS = tuple(RECIPES)
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
_DATA_FIELDS = {f.name for f in dataclasses.fields(DataConfig)}
# Recipes by name (`--recipe`): the reference's, and "auto", the default for your own data (folder, csv)
RECIPE_NAMES = ("auto", *TASKS)
DEFAULT_RECIPE = {task: "auto" if task in ("folder", "csv", "strong") else task for task in TASKS}

# "auto": a run of about AUTO_STEPS optimizer steps whatever the amount of data, in batches no larger than
# an eighth of the training set (so small sets still get several steps per epoch), a peak LR that fine-tunes a
# released model in that many steps, and the schedule's warm-up and ramp-down as parts of the run.
# Measured on real recordings across data sizes: benchmarks/bench_finetune_fsdd.py.
AUTO_STEPS = 800
# Peak LR and augmentation of "auto", measured on real recordings (FSDD digits, benchmarks/): with 20 clips
# per class (batches of 7, speaker-independent, 3 seeds) lr 3e-4 without mixup or waveform mixing reached
# 91-93 % where the reference's fine-tuning defaults (mixup 0.3, wavmix 0.5) with lr 1e-3 reached 82 % and lr
# 1e-4 86 %; roll and gain stay (without them 77 %). On 2,700 clips (batches of 32) lr 3e-4 reached 97.7 % and
# 1e-3 99.3 %: the LR grows with the batch (the linear scaling rule), AUTO_LR per clip of the batch.
# DyMN takes the reference's DyMN/MN LR ratio; a frozen backbone trains its classifier with 10x the LR.
AUTO_LR = {"mn": 3.75e-5, "dymn": 2.5e-5}
AUTO_FROZEN_LR_FACTOR = 10.0
AUTO_DEFAULTS = dict(mixup_alpha=0.0, wavmix=0.0)
AUTO_MAX_EPOCHS = 100
# the settings "auto" sets from the number of training clips (unless given)
ADAPTED = ("epochs", "batch_size", "lr", "warm_up_len", "ramp_down_start", "ramp_down_len", "lr_per_step",
           "val_every")  # fmt: skip
AUTO_BATCH = (4, 32)


def recipe_defaults(task: str, arch: str) -> dict:
    """The recipe's settings for an architecture ("mn" or "dymn")."""
    out = {}
    for k, v in RECIPES[task].items():
        out[k] = (v[1] if arch == "dymn" else v[0]) if isinstance(v, tuple) else v
    return out


def adapt_to_data(cfg: TrainConfig, n_train: int, arch: str, explicit: set[str]) -> TrainConfig:
    """Resolve the "auto" recipe once the data is known; settings the user gave (``explicit``) are kept."""
    if cfg.recipe != "auto":
        return cfg
    changes: dict = {}
    if "batch_size" not in explicit:
        changes["batch_size"] = int(min(AUTO_BATCH[1], max(AUTO_BATCH[0], n_train // 8)))
    batch = changes.get("batch_size", cfg.batch_size)
    steps_per_epoch = max(1, -(-n_train // batch))
    if "epochs" not in explicit:
        changes["epochs"] = int(min(AUTO_MAX_EPOCHS, max(3, -(-AUTO_STEPS // steps_per_epoch))))
    epochs = changes.get("epochs", cfg.epochs)
    if cfg.early_stop is None:
        changes["early_stop"] = True  # small data learns long before the planned end (issue 25: 0.94 at 9 of 100)
    if "val_every" not in explicit:
        every = max(1, epochs // 40)  # about 40 validations and checkpoints per run, the last at the end
        changes["val_every"] = every
        if "epochs" not in explicit:
            changes["epochs"] = epochs = -(-epochs // every) * every
    for key, part in (("warm_up_len", 0.05), ("ramp_down_start", 0.4), ("ramp_down_len", 0.6)):
        if key not in explicit:
            changes[key] = round(part * epochs, 4)
    if "lr" not in explicit:
        factor = AUTO_FROZEN_LR_FACTOR if cfg.freeze_backbone else 1.0
        changes["lr"] = round(AUTO_LR["dymn" if arch == "dymn" else "mn"] * batch * factor, 8)
    if "lr_per_step" not in explicit:
        changes["lr_per_step"] = True
    return dataclasses.replace(cfg, **changes)


def _recipe_values(task: str, arch: str, recipe: str | None) -> dict:
    recipe = recipe or DEFAULT_RECIPE.get(task, task)
    if task not in TASKS:
        from ..util.errors import UsageError

        raise UsageError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if recipe not in RECIPE_NAMES:
        from ..util.errors import UsageError

        raise UsageError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPE_NAMES)}")
    merged = recipe_defaults(task if recipe == "auto" else recipe, arch)
    if recipe == "auto":
        merged.update(AUTO_DEFAULTS)
    if recipe != "auto" and recipe != task:  # data settings (clip length, augmentation) stay the task's
        merged.update({k: v for k, v in recipe_defaults(task, arch).items() if k not in _TRAIN_FIELDS})
    merged["recipe"] = recipe
    return merged


def _given(overrides: dict | None) -> dict:
    return {k: v for k, v in (overrides or {}).items() if v is not None}


def data_config(task: str, overrides: dict | None = None, recipe: str | None = None) -> DataConfig:
    """The data settings of a run: the recipe's (they do not depend on the architecture), then ``overrides``
    (None values ignored; keys that are not data settings are ignored too, so one dict can feed both)."""
    merged = {**_recipe_values(task, "mn", recipe), **_given(overrides)}
    return DataConfig(**{k: v for k, v in merged.items() if k in _DATA_FIELDS})


def train_config(task: str, arch: str, n_train: int, overrides: dict | None = None, recipe: str | None = None,
                 scratch: bool = False) -> TrainConfig:  # fmt: skip
    """The optimisation settings of a run, resolved once the model (``arch``: "mn" or "dymn") and the number
    of training clips are known: the recipe's values, then ``overrides``; "auto" adapts the rest to the data."""
    given = _given(overrides)
    unknown = set(given) - _TRAIN_FIELDS - _DATA_FIELDS
    if unknown:
        from ..util.errors import UsageError

        raise UsageError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    merged = {**_recipe_values(task, arch, recipe), **given}
    cfg = TrainConfig(**{k: v for k, v in merged.items() if k in _TRAIN_FIELDS})
    cfg = adapt_to_data(cfg, n_train, arch, set(given))
    changes: dict = {}
    if cfg.temperature_schedule is None:  # the reference anneals when training DyMN from scratch
        changes["temperature_schedule"] = (scratch or task == "audioset") and arch == "dymn"
    if cfg.early_stop is None:  # the reference's recipes run every planned epoch
        changes["early_stop"] = False
    if cfg.patience < 1:
        from ..util.errors import UsageError

        raise UsageError(f"--patience must be at least 1 validation, got {cfg.patience}")
    if cfg.bn_momentum is None and scratch:
        changes["bn_momentum"] = 0.1  # fresh running statistics must settle within the run
    return dataclasses.replace(cfg, **changes)
