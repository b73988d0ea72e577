"""Building networks: an architecture (or registry entry) with weights, loaded strictly into the contract.

Use :func:`dymn.load`; this module is its engine for MN and DyMN networks.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch
from torch import nn

from ..audio.frontend import FrontendConfig
from ..models.checkpoint import Checkpoint
from ..models.configs import DyMNConfig, FrameMNConfig, MNConfig
from ..models.dymn import DyMN
from ..models.info import check_labels, default_labels
from ..models.mn import MN
from ..models.pretrained import PretrainedCfg
from ..models.sed import FrameMN, remap_keys
from ..util.errors import UsageError
from .registry import list_models

ARCHS = {"mn": (MN, MNConfig), "dymn": (DyMN, DyMNConfig), "fmn": (FrameMN, FrameMNConfig)}
_SED_HEADS = ("strong_head.", "weak_head.")


def _build(arch: str, options: dict) -> nn.Module:
    cls, cfg_cls = ARCHS[arch]
    valid = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)} for {arch}; valid: {', '.join(sorted(valid))}")
    try:
        return cls(cfg_cls(**options))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid {arch} options: {exc}") from None


def _num_classes_in(sd: dict[str, torch.Tensor], head_type: str) -> int | None:
    if head_type == "sed" and "strong_head.bias" in sd:
        return int(sd["strong_head.bias"].shape[0])
    if head_type == "mlp" and "classifier.5.bias" in sd:
        return int(sd["classifier.5.bias"].shape[0])
    if head_type == "fully_convolutional" and "classifier.1.bias" in sd:
        return int(sd["classifier.1.bias"].shape[0])
    if head_type == "multihead_attention_pooling" and "classifier.subspace_proj.bias" in sd:
        w = sd.get("classifier.head_weight")
        heads = int(w.shape[1]) if w is not None else 4
        return int(sd["classifier.subspace_proj.bias"].shape[0]) // (2 * heads)
    return None


_HEAD_KEYS = ("classifier.5.", "classifier.1.", "classifier.subspace_proj", "classifier.head_weight")


def layout_fits(cfg: PretrainedCfg, sd: dict[str, torch.Tensor], any_classes: bool = True) -> bool:
    """Whether a state dict has the layout of a registry entry (built on the meta device: no memory);
    ``any_classes`` ignores the class layer's size (fine-tuned files)."""
    with torch.device("meta"):
        own = {k: tuple(v.shape) for k, v in _build(cfg.arch, dict(cfg.arch_config)).state_dict().items()}
    if cfg.arch == "fmn":
        sd = remap_keys(sd)
    skip = (_HEAD_KEYS + _SED_HEADS) if any_classes else ()
    return set(own) == set(sd) and all(own[k] == tuple(sd[k].shape) for k in own if not k.startswith(skip))


def fitting_models(sd: dict[str, torch.Tensor]) -> list[str]:
    """Registry names whose architecture fits a plain state dict (class count aside)."""
    from .registry import get_pretrained_cfg

    fits, seen = [], {}
    for name in list_models():
        cfg = get_pretrained_cfg(name)
        key = (cfg.arch, tuple(sorted((k, str(v)) for k, v in cfg.arch_config.items())))
        if key not in seen:
            seen[key] = layout_fits(cfg, sd)
        if seen[key]:
            fits.append(name)
    return sorted(fits, key=lambda n: not get_pretrained_cfg(n).tagger)  # taggers first


def build_network(
    arch: str,
    options: dict,
    overrides: dict,
    ckpt: Checkpoint | None,
    source: str,
    label_spec,
    frontend: FrontendConfig,
    task: str = "multilabel",
    temperature: float | None = 1.0,
) -> nn.Module:
    """An MN or DyMN from options (+ overrides), with ``ckpt``'s weights loaded strictly, in eval mode.

    A ``num_classes`` override that differs from the file re-initialises only the last classifier layer.
    """
    options = {**options, **overrides}
    head_type = "sed" if arch == "fmn" else options.get("head_type", "mlp")
    state = (remap_keys(ckpt.state_dict) if arch == "fmn" else ckpt.state_dict) if ckpt else None
    file_classes = _num_classes_in(state, head_type) if ckpt else None
    if file_classes is not None and "num_classes" not in overrides:
        options["num_classes"] = file_classes  # a fine-tuned plain state dict keeps its class count
    if ckpt is not None:
        # the file's tensors against the network its metadata asks for, on the meta device (no memory): metadata
        # within range may still ask for a huge network (width 8 with 100,000 classes) that its weights do not fill
        with torch.device("meta"):
            probe = _build(arch, options)
        replace_head = file_classes is not None and file_classes != probe.config.num_classes
        with warnings.catch_warnings():  # "copying ... to a meta parameter is a no-op": the point here
            warnings.simplefilter("ignore")
            probe.check_fits(state, source, new_last_layer=replace_head)
    model = _build(arch, options)
    num_classes = model.config.num_classes
    if ckpt is not None:
        model.load_weights(state, source, new_last_layer=replace_head)
        if replace_head:
            label_spec = None
        if arch == "dymn":
            model.set_temperature(model.config.T_max if temperature is None else temperature)
    if isinstance(label_spec, (list, tuple)) and label_spec:
        labels = check_labels(label_spec, num_classes, source)
    else:  # "audioset" or none recorded: AudioSet names for 527 (447: AudioSet-Strong) outputs, else class_i
        labels = default_labels(num_classes)
    model.info = model.info.replace(labels=labels, frontend=frontend, task=task, config=model.config.to_dict())
    return model.eval()
