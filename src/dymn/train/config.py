"""What a training run is made of: a :class:`TrainConfig` (optimisation) and a :class:`DataConfig` (clips,
splits, augmentation of waveforms). Kept free of Lightning so that the CLI starts fast.

Every field carries its help text (``metadata["help"]``): ``dymn finetune --help`` is generated from these
fields, and ``config.json`` of a run holds both configurations as resolved.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field


def _f(default, help: str, cli: bool = True):
    return field(default=default, metadata={"help": help, "cli": cli})


@dataclass
class TrainConfig:
    """Optimisation settings of a run (the recipe's defaults, then what the user gave)."""

    epochs: int = _f(80, "training epochs")
    batch_size: int = _f(64, "clips per optimizer step")
    lr: float = _f(6e-5, "peak learning rate (Adam)")
    weight_decay: float = _f(0.0, "weight decay")
    adamw: bool = _f(False, "AdamW instead of Adam")
    warm_up_len: float = _f(10, "epochs of exponential LR warm-up")
    ramp_down_start: float = _f(10, "epoch where the linear LR ramp-down starts")
    ramp_down_len: float = _f(65, "epochs of linear LR ramp-down")
    last_lr_value: float = _f(0.01, "final LR as a fraction of the peak")
    lr_per_step: bool = _f(False, "evaluate the LR schedule at fractional epochs, every step")
    mixup_alpha: float = _f(0.3, "mixup Beta(alpha, alpha) on spectrograms; 0 = off")
    kd_lambda: float = _f(0.1, "weight of the label loss when a teacher is used (1 - weight of KD)")
    kd_temperature: float = _f(1.0, "temperature of the teacher's probabilities")
    freqm: int = _f(0, "frequency masking width in mel bins; 0 = off")
    timem: int = _f(0, "time masking width in frames; 0 = off")
    fmin_aug_range: int = _f(10, "random shift of the mel fmin (Hz)")
    fmax_aug_range: int = _f(2000, "random shift of the mel fmax (Hz)")
    temperature_schedule: bool | None = _f(
        None, "DyMN: anneal the dynamic-conv temperature each epoch (default: on from scratch, off fine-tuning)"
    )
    # None keeps the released models' 0.01, which is too slow for the running statistics of a freshly
    # initialised network to settle in a short run: from scratch it resolves to 0.1
    bn_momentum: float | None = _f(None, "BatchNorm momentum (default: 0.01 fine-tuning, 0.1 from scratch)")
    seed: int = _f(0, "random seed (every draw depends on seed, epoch, step, rank; also the held-out split)")
    recipe: str = _f("auto", "where the defaults come from", cli=False)
    freeze_backbone: bool = _f(False, "train only the classifier on the frozen network's features (fast; a strong "
                                      "baseline for tiny sets)")  # fmt: skip
    lr_decay: float = _f(1.0, "layer-wise LR decay: each block below the top gets this factor (1 = off)")
    val_every: int = _f(1, "validate and checkpoint every N epochs")
    early_stop: bool | None = _f(
        None,
        "stop once the validation metric has not improved for --patience "
        "validations, keeping the best model (default: on with the auto recipe)",
    )
    patience: int = _f(3, "validations without improvement before an early stop")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DataConfig:
    """How clips are read, split and augmented (the recipe's defaults, then what the user gave)."""

    clip_seconds: float | str | None = _f("auto", "pad or crop clips to this length, in seconds")
    roll: int = _f(4000, "random time roll of the waveform, in samples; 0 = off")
    gain: int = _f(12, "random gain, +-dB; 0 = off")
    wavmix: float = _f(0.0, "probability of mixing two waveforms; 0 = off")
    random_crop: bool = _f(False, "crop long clips at a random offset (else from the start)", cli=False)
    fold: int = _f(1, "ESC-50 test fold (1-5)")
    val_fraction: float = _f(0.2, "folder/csv/strong: fraction of clips (strong: files) held out for validation")
    val_csv: str | None = _f(
        None, "csv: a separate validation CSV instead of a held-out fraction (strong: a validation TSV)"
    )
    labels: list[str] | None = _f(None, "csv: class order (default: sorted)", cli=False)
    epoch_len: int | None = _f(None, "AudioSet: clips sampled per epoch (default: all)")
    balanced_only: bool = _f(False, "AudioSet: the balanced subset only", cli=False)
    num_workers: int | None = _f(None, "background decoding processes (default: 0 below 30 min of audio, else up "
                                       "to cores - 1, at most 4)")  # fmt: skip
    cache_dir: str | None = _f(None, "cache for resampled audio (default: $DYMN_CACHE/audio)")

    def to_dict(self) -> dict:
        return asdict(self)


def config_fields(cls) -> list[dataclasses.Field]:
    """The fields of a config class that are command-line options."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]
