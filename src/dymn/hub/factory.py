"""Building networks: an architecture (or registry entry) with weights, loaded strictly into the contract.

Use :func:`dymn.load`; this module is its engine for MN and DyMN networks.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..audio.frontend import FrontendConfig
from ..models.checkpoint import Checkpoint
from ..models.configs import DyMNConfig, FrameMNConfig, MNConfig
from ..models.dymn import DyMN
from ..models.heads import last_layer_keys, reset_last_layer
from ..models.info import check_labels, default_labels
from ..models.layers import make_divisible
from ..models.mn import MN
from ..models.pretrained import PretrainedCfg
from ..models.sed import FrameMN, remap_keys
from ..util.errors import UsageError, WeightsError
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


def _file_hints(model: nn.Module, sd: dict[str, torch.Tensor]) -> str:
    """What the file seems to hold, where it differs from the model (width, head)."""
    if model.arch == "fmn":
        kind = None  # the file's sequence model, told by a key only that kind has
        for name, marker in (("tf", ".pos_encoding."), ("gru", ".gru."), ("hybrid", ".rnn.")):
            if any(k.startswith("seq_model.") and marker in k for k in sd):
                kind = name
        if kind == model.config.seq_model_type:
            return ""
        return f"; the file has {f'a {kind}' if kind else 'no'} sequence model"
    hints = []
    stem = sd.get("features.0.0.weight", sd.get("in_c.0.weight"))
    last = sd.get("features.16.0.weight", sd.get("out_c.0.weight"))
    if stem is not None and last is not None:
        for w in (0.1, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 2.0, 3.0, 4.0):
            if make_divisible(16 * w) == stem.shape[0] and 6 * make_divisible(160 * w) == last.shape[0]:
                if w != model.config.width_mult:
                    hints.append(f"width_mult={w}")
                break
    head = (
        "mlp" if "classifier.5.weight" in sd
        else "fully_convolutional" if "classifier.1.running_mean" in sd
        else "multihead_attention_pooling" if "classifier.subspace_proj.weight" in sd
        else None
    )  # fmt: skip
    if head and head != model.config.head_type:
        hints.append(f"head_type={head}")
    if any(k.startswith("layers.") for k in sd) and model.arch == "mn":
        hints.append("a DyMN")
    if any(k.startswith("features.") for k in sd) and model.arch == "dymn":
        hints.append("an MN")
    return f"; the file looks like {', '.join(hints)}" if hints else ""


def _shape(t) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def load_weights_strict(model: nn.Module, sd: dict[str, torch.Tensor], source: str = "weights") -> None:
    """``load_state_dict(strict=True)`` with an error that names the mismatch in plain words."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and own[k].shape != sd[k].shape]
    kinds = [k for k in own if k in sd and own[k].is_floating_point() != sd[k].is_floating_point()]
    if kinds and not (missing or unexpected or wrong):
        k = kinds[0]
        raise WeightsError(f"{source}: {len(kinds)} tensor(s) have the wrong type (e.g. {k}: {sd[k].dtype} "
                           f"in the file, {own[k].dtype} in the model)")  # fmt: skip
    if missing or unexpected or wrong:
        cfg = model.config
        if model.arch == "fmn":
            desc = f"fmn (width_mult={cfg.width_mult}, seq_model={cfg.seq_model_type} {cfg.seq_model_dim or ''})"
        else:
            desc = f"{model.arch} (width_mult={cfg.width_mult}, head_type={cfg.head_type}"
            desc += f", se_dims={cfg.se_dims})" if model.arch == "mn" else f", use_dy_blocks={cfg.use_dy_blocks})"
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} tensor(s) differ in shape (e.g. {k}: {_shape(sd[k])} in the file, "
                f"{_shape(own[k])} in the model)"
            )
        if missing:
            parts.append(f"{len(missing)} missing from the file (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} not in the model (e.g. {unexpected[0]})")
        raise WeightsError(f"{source} do not fit {desc}: " + "; ".join(parts) + _file_hints(model, sd))
    model.load_state_dict(sd, strict=True)


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
    model = _build(arch, options)
    num_classes = model.config.num_classes
    if ckpt is not None:
        sd = dict(state)
        replace_head = file_classes is not None and file_classes != num_classes
        last = _SED_HEADS if arch == "fmn" else last_layer_keys(head_type)
        if replace_head:
            sd = {k: v for k, v in sd.items() if not k.startswith(last)}
            for k, v in model.state_dict().items():
                if k.startswith(last):
                    sd[k] = v
        load_weights_strict(model, sd, source=source)
        bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise WeightsError(f"{source}: {len(bad)} tensor(s) hold NaN or infinite values (e.g. {bad[0]})")
        if replace_head:
            if arch == "fmn":
                for head in (model.strong_head, model.weak_head):
                    head.reset_parameters()
            else:
                reset_last_layer(model, head_type)
            label_spec = None
        if arch == "dymn":
            model.set_temperature(model.config.T_max if temperature is None else temperature)
    if isinstance(label_spec, (list, tuple)) and label_spec:
        labels = check_labels(label_spec, num_classes, source)
    else:  # "audioset" or none recorded: AudioSet names for 527 (447: AudioSet-Strong) outputs, else class_i
        labels = default_labels(num_classes)
    model.info = model.info.replace(labels=labels, frontend=frontend, task=task, config=model.config.to_dict())
    return model.eval()
