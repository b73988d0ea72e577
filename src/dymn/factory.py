"""``create_model``: registry names or architectures, with released or local weights, loaded strictly."""

from __future__ import annotations

import dataclasses
import os

import torch
from torch import nn

from .frontend import FrontendConfig
from .hub import Checkpoint, WeightsError, fetch_pretrained, load_checkpoint
from .labels import resolve_labels
from .models.dymn import DyMN, DyMNConfig
from .models.heads import last_layer_keys, reset_last_layer
from .models.layers import make_divisible
from .models.mn import MN, MNConfig
from .registry import PretrainedCfg, get_pretrained_cfg

ARCHS = {"mn": (MN, MNConfig), "dymn": (DyMN, DyMNConfig)}


def _build(arch: str, options: dict) -> nn.Module:
    cls, cfg_cls = ARCHS[arch]
    valid = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {arch}; valid: {', '.join(sorted(valid))}")
    return cls(cfg_cls(**options))


def _num_classes_in(sd: dict[str, torch.Tensor], head_type: str) -> int | None:
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
    if missing or unexpected or wrong:
        cfg = model.config
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


def create_model(
    name: str | None = None,
    *,
    pretrained: bool = False,
    weights: str | os.PathLike | Checkpoint | None = None,
    **overrides,
) -> nn.Module:
    """Build an MN or DyMN, optionally with weights, and return it in eval mode.

    ``name`` is a registry name (``"dymn10_as"``, see :func:`dymn.list_models`) or an architecture
    (``"mn"``, ``"dymn"``); it may be omitted when ``weights`` is a self-describing dymn checkpoint.
    ``pretrained=True`` downloads the entry's released weights (cached); ``weights=PATH`` loads a local
    file (or a :class:`~dymn.hub.Checkpoint` already read). Loading is strict; a different
    ``num_classes`` re-initialises only the class layer.
    The model carries ``labels``, ``frontend_config`` and ``pretrained_cfg`` for inference.
    """
    entry: PretrainedCfg | None = None
    if name is not None and name not in ARCHS:
        entry = get_pretrained_cfg(name)
    if pretrained and weights is not None:
        raise ValueError("give either pretrained=True or weights=PATH, not both")
    if pretrained and entry is None:
        raise ValueError(f"pretrained=True needs a registry model name, not {name!r}")

    ckpt: Checkpoint | None = None
    if isinstance(weights, Checkpoint):  # already read by the caller
        ckpt, weights = weights, weights.path
    elif weights is not None:
        ckpt = load_checkpoint(weights)
    elif pretrained:
        ckpt = load_checkpoint(fetch_pretrained(entry))

    meta = ckpt.meta if ckpt is not None and ckpt.self_describing else None
    if meta is not None:
        arch = meta["arch"]
        if name is not None and (name if entry is None else entry.arch) != arch:
            raise ValueError(f"{weights} holds a {arch} model, not {name}")
        options = dict(meta["arch_config"])
        frontend = FrontendConfig(**meta["frontend"])
        label_spec = meta.get("labels") or None
    elif entry is not None:
        arch, options, frontend, label_spec = (
            entry.arch,
            dict(entry.arch_config),
            entry.frontend,
            entry.labels,
        )
    elif name in ARCHS:
        arch, options, frontend, label_spec = name, {}, FrontendConfig(), "audioset"
    else:
        raise ValueError("create_model needs a model name unless weights is a self-describing dymn checkpoint")

    options.update(overrides)
    head_type = options.get("head_type", "mlp")
    file_classes = _num_classes_in(ckpt.state_dict, head_type) if ckpt else None
    if file_classes is not None and "num_classes" not in overrides:
        options["num_classes"] = file_classes  # a fine-tuned plain state dict keeps its class count
    model = _build(arch, options)
    num_classes = model.config.num_classes

    if ckpt is not None:
        sd = dict(ckpt.state_dict)
        replace_head = file_classes is not None and file_classes != num_classes
        if replace_head:
            sd = {k: v for k, v in sd.items() if not k.startswith(last_layer_keys(head_type))}
            for k, v in model.state_dict().items():
                if k.startswith(last_layer_keys(head_type)):
                    sd[k] = v
        load_weights_strict(model, sd, source=str(weights) if weights else f"the {entry.name} weights")
        if replace_head:
            reset_last_layer(model, head_type)
            label_spec = None
        if arch == "dymn":
            if meta is not None:
                temperature = meta.get("temperature", 1.0)
            elif entry is not None and entry.temperature is None:
                temperature = model.config.T_max
            else:
                temperature = entry.temperature if entry is not None else 1.0
            model.set_temperature(temperature)

    model.model_name = name or (meta or {}).get("name") or arch
    model.pretrained_cfg = entry
    model.frontend_config = frontend
    model.labels = resolve_labels(label_spec, num_classes)
    return model.eval()
