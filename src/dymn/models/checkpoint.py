"""Self-describing checkpoints: reading any weights file dymn accepts, and writing our own.

A dymn checkpoint holds the state dict and what it takes to use it: architecture and config, frontend,
labels, task (multi- or single-label) and, for DyMN, the dynamic-conv temperature. Official EfficientAT
files are plain state dicts and need an architecture name. Files are untrusted: pickles are read with
``torch.load(weights_only=True)`` and metadata is checked before anything is built from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..audio.frontend import FrontendConfig
from ..util.atomic import atomic_write
from ..util.errors import WeightsError, first_line
from .configs import DyMNConfig, FrameMNConfig, MNConfig
from .info import TASKS

CHECKPOINT_FORMAT = "dymn-checkpoint"
CHECKPOINT_VERSION = 2
WHAT_A_CHECKPOINT_IS = (
    "a weights file is a PyTorch state dict (.pt/.pth, e.g. an EfficientAT release), a dymn checkpoint "
    "(`dymn finetune` or dymn.save_checkpoint), a .safetensors file or an .onnx export"
)


@dataclass
class Checkpoint:
    """Weights read from a file: the state dict and, for dymn checkpoints, what describes them."""

    state_dict: dict[str, torch.Tensor]
    meta: dict | None = None  # arch, arch_config, frontend, labels, task, temperature, name
    path: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def self_describing(self) -> bool:
        return self.meta is not None


def _is_state_dict(obj) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def sniff(path: Path) -> str:
    """What a file looks like from its first bytes (for error messages)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive"
    if head[:1] == b"\x80":
        return "a pickle"
    if head.startswith((b"RIFF", b"fLaC", b"OggS", b"ID3")):
        return "an audio file"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "an HTML page (a download that returned a web page?)"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "a binary file of unknown format"


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read an official plain state dict or a dymn checkpoint (``.pt`` or ``.safetensors``)."""
    p = Path(path)
    if p.is_dir():
        raise WeightsError(f"{p}: is a directory, not a weights file ({WHAT_A_CHECKPOINT_IS})")
    if not p.is_file():
        raise WeightsError(f"{p}: no such weights file")
    if p.stat().st_size == 0:
        raise WeightsError(f"{p}: empty file, not weights")
    if p.suffix == ".safetensors":
        return _load_safetensors(p)
    if p.suffix == ".onnx":
        raise WeightsError(f"{p}: an ONNX export, not a PyTorch checkpoint; load it with dymn.load({str(p)!r})")
    kind = sniff(p)
    if kind not in ("a zip archive", "a pickle"):
        raise WeightsError(f"{p}: not a checkpoint: it is {kind}; {WHAT_A_CHECKPOINT_IS}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise WeightsError(
                f"{p}: refused: the file holds pickled Python objects besides tensors, which could run code "
                "when loaded; save the model's state_dict() instead"
            ) from None
        raise WeightsError(f"{p}: not a readable PyTorch checkpoint ({first_line(exc)})") from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        if not _is_state_dict(obj.get("state_dict")):
            raise WeightsError(f"{p}: dymn checkpoint without a valid state_dict")
        meta = {k: v for k, v in obj.items() if k not in ("state_dict", "format")}
        return Checkpoint(obj["state_dict"], validate_meta(meta, p), str(p))
    if _is_state_dict(obj):
        return Checkpoint(obj, None, str(p))
    if isinstance(obj, dict) and _is_state_dict(obj.get("state_dict")):  # e.g. {"state_dict": ..., "epoch": ...}
        return Checkpoint(obj["state_dict"], None, str(p))
    raise WeightsError(f"{p}: holds no model state dict (a {type(obj).__name__}); {WHAT_A_CHECKPOINT_IS}")


def _load_safetensors(p: Path) -> Checkpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta_text = (f.metadata() or {}).get(CHECKPOINT_FORMAT)
            sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as exc:
        raise WeightsError(f"{p}: not a valid safetensors file ({first_line(exc)})") from None
    if not sd:
        raise WeightsError(f"{p}: holds no tensors")
    if not meta_text:
        return Checkpoint(sd, None, str(p))
    try:
        meta = json.loads(meta_text)
    except ValueError:
        raise WeightsError(f"{p}: its dymn metadata is not valid JSON") from None
    return Checkpoint(sd, validate_meta(meta, p), str(p))


# sane ranges for what a file may ask us to build (a hostile file must not make us allocate terabytes)
_ARCH_RANGES = {"width_mult": (0.05, 8.0), "num_classes": (1, 100_000), "seq_model_dim": (1, 8192),
                "seq_model_layers": (1, 32), "seq_len": (1, 100_000), "dyconv_k": (1, 16), "dyrelu_k": (1, 16),
                "context_ratio": (1, 64), "max_context_size": (1, 4096), "min_context_size": (1, 4096),
                "se_r": (1, 1024), "input_dim_f": (1, 4096), "input_dim_t": (1, 100_000),
                "multihead_attention_heads": (1, 64)}  # fmt: skip


def _number(value, lo: float, hi: float, what: str, where: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise WeightsError(f"{where}: {what} must be a number, got {value!r:.60}")
    if not lo <= value <= hi:
        raise WeightsError(f"{where}: {what} = {value} is outside the sane range {lo}..{hi}")
    return value


_OPTIONAL = ("seq_model_dim",)  # a detector without a sequence model has none


def validate_meta(meta, where: str | os.PathLike) -> dict:
    """Check a checkpoint's metadata (types and sane ranges) before anything is built from it."""
    where = Path(where)
    if not isinstance(meta, dict):
        raise WeightsError(f"{where}: dymn metadata must be a mapping")
    configs = {"mn": MNConfig, "dymn": DyMNConfig, "fmn": FrameMNConfig}
    arch = meta.get("arch")
    if not isinstance(arch, str) or arch not in configs:
        raise WeightsError(f"{where}: unknown architecture {arch!r:.60} in the metadata (expected mn, dymn or fmn)")
    arch_config = meta.get("arch_config")
    if not isinstance(arch_config, dict):
        raise WeightsError(f"{where}: the metadata has no architecture config")
    valid = {f.name for f in dataclasses.fields(configs[arch])}
    unknown = sorted(str(k) for k in arch_config if k not in valid)
    if unknown:
        raise WeightsError(f"{where}: unknown {arch} option(s) in the metadata: {', '.join(unknown)[:200]}")
    for key, (lo, hi) in _ARCH_RANGES.items():
        if key in arch_config and not (key in _OPTIONAL and arch_config[key] is None):
            _number(arch_config[key], lo, hi, key, where)
    strides = arch_config.get("strides", (2, 2, 2, 2))
    if not isinstance(strides, (list, tuple)) or len(strides) != 4 or not all(s in (1, 2) for s in strides):
        raise WeightsError(f"{where}: strides must be four values of 1 or 2, got {strides!r:.60}")
    try:
        FrontendConfig.from_dict(meta.get("frontend", {}))
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{where}: frontend in the metadata: {first_line(exc)}") from None
    labels = meta.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        raise WeightsError(f"{where}: labels in the metadata must be a list of strings")
    if meta.get("task", "multilabel") not in TASKS:
        raise WeightsError(f"{where}: task must be one of {', '.join(TASKS)}, got {meta.get('task')!r:.60}")
    if meta.get("clip_seconds") is not None:
        _number(meta["clip_seconds"], 0.01, 3600, "clip_seconds", where)
    if "temperature" in meta:
        _number(meta["temperature"], 1e-3, 1e4, "temperature", where)
    for key in ("name", "base_model"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise WeightsError(f"{where}: {key} in the metadata must be a string")
    results = meta.get("results", {})
    if not isinstance(results, dict) or not all(isinstance(k, str) and isinstance(v, (int, float, str))
                                                and not isinstance(v, bool) for k, v in results.items()):  # fmt: skip
        raise WeightsError(f"{where}: results in the metadata must map names to numbers")
    try:
        configs[arch](**arch_config)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{where}: invalid metadata ({first_line(exc)})") from None
    return meta


def checkpoint_meta(model: torch.nn.Module, name: str | None = None) -> dict:
    """What makes a checkpoint self-describing, from the model's :class:`~dymn.models.info.ModelInfo`."""
    info = model.info
    meta = {
        "version": CHECKPOINT_VERSION,
        "arch": model.arch,
        "arch_config": model.config.to_dict(),
        "frontend": info.frontend.to_dict(),
        "labels": list(info.labels),
        "task": info.task,
        "clip_seconds": None if info.clip_seconds is None else float(info.clip_seconds),
        "name": name or info.name,
    }
    if model.arch == "dymn":
        meta["temperature"] = float(model.temperature)
    if info.results:
        meta["results"] = dict(info.results)
    if info.base_model:
        meta["base_model"] = info.base_model
    return meta


def write_checkpoint(state_dict: dict, meta: dict, path: str | os.PathLike, *, plain: bool = False) -> Path:
    """Write ``state_dict`` atomically: with ``meta`` (a self-describing checkpoint), or with ``plain`` as a
    reference-style state dict. A ``.safetensors`` suffix writes safetensors (metadata in its header)."""
    path = Path(path)
    sd = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        metadata = None if plain else {CHECKPOINT_FORMAT: json.dumps(meta)}
        return atomic_write(path, lambda t: save_file(sd, t, metadata=metadata))
    meta = json.loads(json.dumps(meta))  # plain types only
    obj = sd if plain else {"format": CHECKPOINT_FORMAT, **meta, "state_dict": sd}
    return atomic_write(path, lambda t: torch.save(obj, t))
