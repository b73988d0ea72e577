"""dymn: efficient pre-trained audio taggers (MN and Dynamic MobileNets) as a library and a CLI.

Start with :func:`dymn.load` (any name, file or ensemble -> a model under one contract, ``model.info``)
and :class:`dymn.Tagger` (waveforms and files -> probabilities).
"""

from importlib.metadata import PackageNotFoundError, version

from .audio import load_audio
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .detection import Detection, Detector, detect
from .embedding import Embeddings, embed
from .ensemble import Ensemble
from .errors import (
    AudioError,
    DataError,
    DownloadError,
    DymnError,
    ExportError,
    MissingDependencyError,
    OutputError,
    UnknownModelError,
    UsageError,
    WeightsError,
)
from .frontend import FrontendConfig, MelFrontend
from .inference import Tag, Tagger, TagResult
from .labels import audioset_labels, audioset_strong_labels
from .loader import DEFAULT_MODEL, load
from .model import AudioModel, ModelInfo
from .models.dymn import DyMN, DyMNConfig
from .models.mn import MN, MNConfig
from .models.sed import FrameMN, FrameMNConfig
from .optimized import optimize
from .registry import PretrainedCfg, get_pretrained_cfg, list_models
from .timelines import Event, EventConfig, Timeline, detect_events, plot_timeline, timeline

try:
    __version__ = version("dymn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

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
