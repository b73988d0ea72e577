"""The contract of the networks themselves (MN, DyMN, FrameMN): ``info``, ``labels`` and ``save``."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..util.errors import UsageError, WeightsError
from .checkpoint import checkpoint_meta, write_checkpoint
from .heads import last_layer_keys, reset_last_layer
from .info import ModelInfo, default_labels
from .layers import make_divisible
from .repo import push_model, write_repo


def is_network(model) -> bool:
    """True for the trainable networks themselves (MN, DyMN), not wrappers, ensembles or exports."""
    return isinstance(model, NetworkMixin)


class NetworkMixin:
    """The contract for the networks themselves (MN, DyMN): ``info``, ``labels`` and ``save``."""

    info: ModelInfo
    embed_dim: int
    config: object

    def _init_info(self) -> None:
        cfg = self.config
        self.info = ModelInfo(
            name=self.arch, arch=self.arch, labels=default_labels(cfg.num_classes), config=cfg.to_dict(),
            embed_dim=int(self.embed_dim), level=getattr(self, "level", "clip"),
        )  # fmt: skip

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    def last_layer_prefixes(self) -> tuple[str, ...]:
        """State-dict key prefixes of the layer(s) that map to classes (replaced when the class count changes)."""
        return last_layer_keys(self.config.head_type)

    def reset_last_layer(self) -> None:
        """Re-initialise the class layer(s) the way a fresh model would be."""
        reset_last_layer(self, self.config.head_type)

    def check_fits(self, state_dict: dict[str, torch.Tensor], source: str = "weights",
                   new_last_layer: bool = False) -> None:  # fmt: skip
        """Load ``state_dict`` strictly, or raise the :class:`~dymn.WeightsError` that names the mismatch. On a
        network built on the meta device this checks the shapes with no memory (see :func:`load_weights`)."""
        sd = dict(state_dict)
        if new_last_layer:
            last = self.last_layer_prefixes()
            sd = {k: v for k, v in sd.items() if not k.startswith(last)}
            sd.update({k: v for k, v in self.state_dict().items() if k.startswith(last)})
        load_weights_strict(self, sd, source=source)

    def load_weights(self, state_dict: dict[str, torch.Tensor], source: str = "weights",
                     new_last_layer: bool = False) -> None:  # fmt: skip
        """Load ``state_dict`` strictly (a mismatch is a :class:`~dymn.WeightsError` that names it in plain words;
        so are NaN or infinite values). ``new_last_layer``: the file's class layer is left out and the model's
        own re-initialised (fine-tuning to other classes)."""
        self.check_fits(state_dict, source, new_last_layer)
        bad = [k for k, v in self.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise WeightsError(f"{source}: {len(bad)} tensor(s) hold NaN or infinite values (e.g. {bad[0]})")
        if new_last_layer:
            self.reset_last_layer()

    def save_pretrained(self, folder: str | os.PathLike, *, card: bool = True) -> Path:
        """Write this network as a Hugging Face Hub model repo folder (``config.json``, ``model.safetensors``,
        ``README.md``): ``dymn.load("local-dir:FOLDER")`` reads it back (:mod:`dymn.models.repo`)."""
        return write_repo(self, folder, card=card)

    def push_to_hub(self, repo_id: str, *, private: bool = False, revision: str | None = None, card: bool = False,
                    token: str | None = None) -> str:  # fmt: skip
        """Upload this network as the Hub model repo ``repo_id`` (the card only where the repo has none, unless
        ``card``); ``dymn.load("hf-hub:REPO_ID")`` loads it. Returns the commit's URL."""
        return push_model(self, repo_id, private=private, revision=revision, card=card, token=token)

    def save(self, path: str | os.PathLike, *, plain: bool = False) -> Path:
        """Write a self-describing checkpoint (``plain=True``: a reference-style state dict)."""
        return save_checkpoint(self, path, plain=plain)


def save_checkpoint(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    plain: bool = False,
    extra: dict | None = None,
) -> Path:
    """Write ``model`` atomically: a self-describing checkpoint, or with ``plain`` a reference-style
    state dict. A ``.safetensors`` suffix writes safetensors (metadata in its header). ``extra`` adds
    JSON-able entries to the metadata (e.g. the training configuration)."""
    if not is_network(model):
        raise UsageError(f"only MN and DyMN networks can be saved as checkpoints, not a {type(model).__name__} "
                         "(save the model before optimizing it; an ensemble is saved member by member)")  # fmt: skip
    return write_checkpoint(model.state_dict(), {**(extra or {}), **checkpoint_meta(model, name)}, path, plain=plain)


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
