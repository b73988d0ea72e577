"""dymn: efficient pre-trained audio taggers (MN and Dynamic MobileNets) as a library and a CLI."""

from .audio import AudioError, load_audio
from .embed import Embeddings, embed
from .ensemble import Ensemble, create_ensemble
from .factory import create_model
from .frontend import FrontendConfig, MelFrontend
from .hub import WeightsError, load_checkpoint, save_checkpoint
from .inference import Tag, Tagger, TagResult
from .labels import audioset_labels
from .models.dymn import DyMN, DyMNConfig
from .models.mn import MN, MNConfig
from .optimize import optimize
from .registry import PretrainedCfg, get_pretrained_cfg, list_models
from .timeline import Event, EventConfig, Timeline, detect_events, plot_timeline, timeline

__version__ = "0.1.0"

__all__ = [
    "Embeddings",
    "Ensemble",
    "Event",
    "EventConfig",
    "Timeline",
    "create_ensemble",
    "detect_events",
    "embed",
    "optimize",
    "plot_timeline",
    "timeline",
    "AudioError",
    "DyMN",
    "DyMNConfig",
    "FrontendConfig",
    "MN",
    "MNConfig",
    "MelFrontend",
    "PretrainedCfg",
    "Tag",
    "TagResult",
    "Tagger",
    "WeightsError",
    "audioset_labels",
    "create_model",
    "get_pretrained_cfg",
    "list_models",
    "load_audio",
    "load_checkpoint",
    "save_checkpoint",
]
