"""dymn: efficient pre-trained audio taggers (MN and Dynamic MobileNets) as a library and a CLI.

Start with :func:`dymn.load` (any name, file or ensemble -> a model under one contract, ``model.info``)
and :class:`dymn.Tagger` (waveforms and files -> probabilities).
"""

from ._version import __version__ as __version__
from .audio.frontend import FrontendConfig, MelFrontend
from .audio.io import load_audio
from .hub.loader import DEFAULT_MODEL, load
from .hub.registry import get_pretrained_cfg, list_models
from .inference.detection import Detection, Detector, detect
from .inference.embedding import Embeddings, embed
from .inference.events import Event, EventConfig, detect_events
from .inference.scoring import timeline
from .inference.tagging import Tag, Tagger, TagResult
from .inference.timelines import Timeline, plot_timeline
from .models.checkpoint import Checkpoint, load_checkpoint
from .models.configs import DyMNConfig, FrameMNConfig, MNConfig
from .models.dymn import DyMN
from .models.ensemble import Ensemble
from .models.info import AudioModel, ModelInfo
from .models.labels import audioset_labels, audioset_strong_labels
from .models.mn import MN
from .models.network import save_checkpoint
from .models.pretrained import PretrainedCfg
from .models.sed import FrameMN
from .runtime.api import optimize
from .util.errors import (
    AudioError,
    DataError,
    DownloadError,
    DymnError,
    ExportError,
    MissingDependencyError,
    OutputError,
    ScoresError,
    UnknownModelError,
    UsageError,
    WeightsError,
)

__all__ = [
    "DEFAULT_MODEL",
    "Detection",
    "Detector",
    "FrameMN",
    "FrameMNConfig",
    "audioset_strong_labels",
    "detect",
    "AudioError",
    "AudioModel",
    "Checkpoint",
    "DataError",
    "DownloadError",
    "DyMN",
    "DyMNConfig",
    "DymnError",
    "Embeddings",
    "Ensemble",
    "Event",
    "EventConfig",
    "ExportError",
    "FrontendConfig",
    "MN",
    "MNConfig",
    "MelFrontend",
    "MissingDependencyError",
    "ModelInfo",
    "OutputError",
    "ScoresError",
    "PretrainedCfg",
    "Tag",
    "TagResult",
    "Tagger",
    "Timeline",
    "UnknownModelError",
    "UsageError",
    "WeightsError",
    "audioset_labels",
    "detect_events",
    "embed",
    "get_pretrained_cfg",
    "list_models",
    "load",
    "load_audio",
    "load_checkpoint",
    "optimize",
    "plot_timeline",
    "save_checkpoint",
    "timeline",
]
