"""dymn: efficient pre-trained audio taggers (MN and Dynamic MobileNets) as a library and a CLI."""

from .audio import AudioError, load_audio
from .factory import create_model
from .frontend import FrontendConfig, MelFrontend
from .hub import WeightsError, load_checkpoint, save_checkpoint
from .inference import Tag, Tagger, TagResult
from .labels import audioset_labels
from .models.dymn import DyMN, DyMNConfig
from .models.mn import MN, MNConfig
from .registry import PretrainedCfg, get_pretrained_cfg, list_models

__version__ = "0.1.0"

__all__ = [
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
