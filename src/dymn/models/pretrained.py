"""What a released model is: :class:`PretrainedCfg`, everything it takes to use one (a leaf: the registry in
:mod:`dymn.hub.registry` holds the entries)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..audio.frontend import FrontendConfig

# EfficientAT's release: the default home of the released weights
RELEASE_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"


@dataclass(frozen=True)
class PretrainedCfg:
    """A released model: architecture, frontend, where its weights live and what it scores.

    ``params`` counts learnable parameters; ``macs_g`` is the published GMACs for a 10 s clip
    (None where unpublished; ``dymn info`` measures it); ``map`` is AudioSet mAP in %.
    """

    name: str
    arch: str  # "mn" or "dymn"
    arch_config: dict = field(default_factory=dict)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    filename: str = ""
    sha256: str | None = None
    labels: str | None = "audioset"
    num_classes: int = 527
    map: float | None = None
    params: int | None = None
    macs_g: float | None = None
    # DyMN dynamic-conv temperature the weights were trained to end at; None = start of schedule (T_max)
    temperature: float | None = 1.0
    tagger: bool = True  # False for ImageNet initialisations (random classifier)
    notes: str = ""
    base_url: str | None = None  # None: EfficientAT's release (RELEASE_URL)
    psds1: float | None = None  # frame-level detectors: AudioSet-Strong PSDS1 (macro-averaged, %), as published

    @property
    def url(self) -> str:
        return (self.base_url or RELEASE_URL) + self.filename

    @property
    def level(self) -> str:
        """ "clip" for taggers, "frame" for the frame-level detectors."""
        return "frame" if self.arch == "fmn" else "clip"

    @property
    def width_mult(self) -> float:
        return float(self.arch_config.get("width_mult", 1.0))
