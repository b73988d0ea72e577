"""The model contract: what every model-like object in dymn carries and how it is called.

MN, DyMN, an optimized module, an ensemble, an exported ONNX file and a fine-tuned model all carry the
same :class:`ModelInfo` as ``model.info`` and are called the same way: ``model(x) -> (logits, embedding)``
where ``x`` is what ``info.input`` says (a log-mel spectrogram ``(B, 1, n_mels, T)`` or, for models that
own their frontends, a waveform ``(B, N)``). Waveforms become probabilities in one place,
:class:`dymn.Tagger`, which owns the frontend and applies ``info.activation``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from ..audio.frontend import FrontendConfig
from ..util.errors import ScoresError, UsageError, WeightsError

if TYPE_CHECKING:
    from .pretrained import PretrainedCfg

TASKS = ("multilabel", "singlelabel")
INPUTS = ("spectrogram", "waveform")
LEVELS = ("clip", "frame")


@dataclass(frozen=True)
class ModelInfo:
    """Everything needed to use a model: what it is, what it expects and what its outputs mean.

    ``task`` decides the output activation: ``multilabel`` -> sigmoid per class (AudioSet tagging),
    ``singlelabel`` -> softmax over classes (a model fine-tuned with cross-entropy on one label per clip).
    ``source`` says where the weights came from (released URL, file, or random initialisation).
    ``clip_seconds`` is the training clip length: shorter clips are zero-padded to it for inference.
    """

    name: str
    arch: str  # "mn", "dymn", "ensemble", "onnx"
    labels: tuple[str, ...]
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    task: Literal["multilabel", "singlelabel"] = "multilabel"
    config: dict = field(default_factory=dict)
    embed_dim: int = 0
    input: Literal["spectrogram", "waveform"] = "spectrogram"
    source: str = "random initialisation"
    pretrained_cfg: PretrainedCfg | None = None
    # the clip length the model was trained on: shorter clips are zero-padded to it before tagging
    # (measured better than the raw clip, benchmarks/results/short-clips-cpu.md); None = no padding
    clip_seconds: float | None = 10.0
    # "clip": model(x) -> (logits (B, C), embedding (B, D)), a tagger; "frame": model(x) -> (frame logits
    # (B, C, F), clip logits (B, C)), a detector that scores F frames per clip_seconds of audio
    level: Literal["clip", "frame"] = "clip"
    # measured results of these weights, e.g. {"val_accuracy": 0.95} of a fine-tune's validation split, or the
    # published {"audioset_mAP": 43.2}; and the model they were trained from (a registry name, a Hub repo, a file)
    results: dict = field(default_factory=dict)
    base_model: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(str(lab) for lab in self.labels))
        if self.task not in TASKS:
            raise WeightsError(f"model task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.input not in INPUTS:
            raise WeightsError(f"model input must be one of {', '.join(INPUTS)}, got {self.input!r}")
        if self.level not in LEVELS:
            raise WeightsError(f"model level must be one of {', '.join(LEVELS)}, got {self.level!r}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def sample_rate(self) -> int:
        return int(self.frontend.sample_rate)

    @property
    def activation(self) -> str:
        return "sigmoid" if self.task == "multilabel" else "softmax"

    @property
    def trained(self) -> bool:
        """False for random weights and for ImageNet initialisations (whose classifier is random)."""
        if self.pretrained_cfg is not None and not self.pretrained_cfg.tagger:
            return False
        return self.source != "random initialisation"

    def require_trained(self) -> None:
        """Raise a :class:`~dymn.UsageError` for a model whose scores mean nothing (see :attr:`trained`)."""
        if not self.trained:
            random = self.source == "random initialisation"
            what = "randomly initialised:" if random else "an ImageNet initialisation with"
            raise UsageError(f"{self.name} is {what} a random classifier; use a trained model such as dymn10_as")

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Class probabilities from logits ``(..., C)`` with this model's activation. A row with any logit that
        is not finite is all NaN (a sigmoid would turn an overflow into a confident 1.0): see :func:`check_scores`."""
        logits = np.asarray(logits, dtype=np.float32)
        if self.task == "multilabel":
            probs = sigmoid(logits)
        else:
            z = logits - logits.max(axis=-1, keepdims=True)
            e = np.exp(z)
            probs = e / e.sum(axis=-1, keepdims=True)
        return mark_non_finite(logits, probs)

    def replace(self, **changes) -> ModelInfo:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line for logs: name, architecture, classes, task, rate."""
        return (f"{self.name} ({self.arch}, {self.num_classes} classes, {self.task}, "
                f"{self.sample_rate} Hz {self.input} input; {self.source})")  # fmt: skip


def mark_non_finite(raw: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` computed from ``raw`` (..., C), with NaN in every row where ``raw`` is not all finite."""
    bad = ~np.isfinite(raw).all(axis=-1)
    if bad.any():
        values = np.array(values, dtype=np.float32, copy=True)
        values[bad] = np.nan
    return values


def check_scores(values: np.ndarray, source: str) -> np.ndarray:
    """``values`` (scores, probabilities or embeddings), or a :class:`~dymn.ScoresError` naming ``source`` when
    any is not finite: such a model's output is never reported as scores (or written as JSON ``NaN``)."""
    if not np.isfinite(values).all():
        raise ScoresError(f"{source}: the model's outputs are not finite numbers for this input (its weights "
                          "overflow); nothing was reported")  # fmt: skip
    return values


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings for large negative logits."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


@runtime_checkable
class AudioModel(Protocol):
    """What every model-like object offers (see the module docstring)."""

    info: ModelInfo

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def to(self, *args, **kwargs) -> AudioModel: ...

    def eval(self) -> AudioModel: ...


def default_labels(num_classes: int) -> tuple[str, ...]:
    """AudioSet names for 527 outputs (AudioSet-Strong names for 447), else ``class_0 ...``: what a freshly
    built network is given."""
    if num_classes == 527:
        from .labels import audioset_names

        return tuple(audioset_names())
    if num_classes == 447:
        from .labels import audioset_strong_labels

        return tuple(lab.name for lab in audioset_strong_labels())
    return tuple(f"class_{i}" for i in range(num_classes))


def check_labels(labels: Sequence[str], num_classes: int, source: str) -> tuple[str, ...]:
    """Labels that match the model's outputs, or a WeightsError that says what does not fit."""
    labels = tuple(str(lab) for lab in labels)
    if len(labels) != num_classes:
        raise WeightsError(f"{source}: {len(labels)} labels for a model with {num_classes} outputs")
    return labels
