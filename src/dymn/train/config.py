"""Every hyperparameter of a training run (kept free of Lightning so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TrainConfig:
    """Every hyperparameter of a run (recipe defaults, overridable from the CLI)."""

    epochs: int = 80
    batch_size: int = 64
    lr: float = 6e-5
    weight_decay: float = 0.0
    adamw: bool = False
    warm_up_len: float = 10
    ramp_down_start: float = 10
    ramp_down_len: float = 65
    last_lr_value: float = 0.01
    lr_per_step: bool = False  # evaluate the schedule at fractional epochs, every step
    mixup_alpha: float = 0.3
    kd_lambda: float = 0.1  # weight of the label loss when a teacher is present
    kd_temperature: float = 1.0
    freqm: int = 0
    timem: int = 0
    fmin_aug_range: int = 10
    fmax_aug_range: int = 2000
    temperature_schedule: bool = False  # DyMN: update the dynamic-conv temperature every epoch
    # BatchNorm momentum during training; None keeps the released models' 0.01, which is too slow for the
    # running statistics of a freshly initialised network to settle in a short run
    bn_momentum: float | None = None
    seed: int = 0
    num_workers: int = 0
    recipe: str = "auto"  # the recipe the defaults came from ("auto": adapted to the data, see recipes.py)
    freeze_backbone: bool = False  # train only the classifier on the frozen network's features
    lr_decay: float = 1.0  # layer-wise LR decay: each layer below the top gets this factor more (1 = off)
    val_every: int = 1  # validate (and checkpoint) every N epochs
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
