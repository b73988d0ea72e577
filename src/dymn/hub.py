"""Weights on disk and on the network: cache, verified atomic downloads, checkpoint reading and writing."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .registry import PretrainedCfg

CHECKPOINT_FORMAT = "dymn-checkpoint"
CHECKPOINT_VERSION = 1
_CHUNK = 1 << 16


class WeightsError(RuntimeError):
    """Weights that cannot be fetched or read; the message says what to do."""


def cache_dir() -> Path:
    """Where downloaded weights live: ``$DYMN_CACHE``, else ``~/.cache/dymn``."""
    env = os.environ.get("DYMN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dymn"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not enabled)


def download(
    url: str, dest: str | os.PathLike, sha256: str | None = None, progress: bool = True, timeout: float = 60
) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file + rename), checking ``sha256`` when given.

    A failed, cut-off or corrupt download leaves nothing at ``dest``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        h = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _progress(total, dest.name, progress) as bar:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise WeightsError(f"download of {url} was cut off after {received} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        if sha256 and h.hexdigest() != sha256.lower():
            raise WeightsError(
                f"download of {url} is corrupt: sha256 {h.hexdigest()} does not match the expected {sha256}"
            )
        os.replace(tmp, dest)
        return dest
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_pretrained(cfg: PretrainedCfg, progress: bool = True) -> Path:
    """Path of the cached weights of a registry entry, downloading them on first use."""
    path = cache_dir() / cfg.filename
    if path.is_file():
        return path
    url = cfg.url
    try:
        return download(url, path, cfg.sha256, progress=progress)
    except http.client.HTTPException as exc:  # e.g. IncompleteRead: the connection dropped mid-file
        raise WeightsError(f"download of {url} failed ({type(exc).__name__}); nothing was kept, try again") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(
            f"could not download the weights of {cfg.name} from {url} ({reason}). Without network access, "
            f"fetch that file elsewhere and put it at {path}, or pass it with weights=PATH / --weights PATH"
        ) from None


@dataclass
class Checkpoint:
    """Weights read from a file: the state dict and, for our own checkpoints, what describes them."""

    state_dict: dict[str, torch.Tensor]
    meta: dict | None = None  # arch, arch_config, frontend, labels, temperature, name
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


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read an official plain state dict or a dymn checkpoint (``.pt`` or ``.safetensors``).

    Files are untrusted: ``torch.load(weights_only=True)`` never runs pickled code.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: no such weights file")
    if p.suffix == ".safetensors":
        return _load_safetensors(p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise WeightsError(
                f"{p}: refusing to load: the file holds pickled objects other than tensors ({first[:200]})"
            ) from None
        raise WeightsError(f"{p}: not a PyTorch checkpoint ({first[:200]})") from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        if not _is_state_dict(obj.get("state_dict")):
            raise WeightsError(f"{p}: dymn checkpoint without a valid state_dict")
        meta = {k: v for k, v in obj.items() if k not in ("state_dict", "format")}
        return Checkpoint(obj["state_dict"], meta, str(p))
    if _is_state_dict(obj):
        return Checkpoint(obj, None, str(p))
    if isinstance(obj, dict) and _is_state_dict(obj.get("state_dict")):  # e.g. {"state_dict": ..., "epoch": ...}
        return Checkpoint(obj["state_dict"], None, str(p))
    raise WeightsError(f"{p}: does not contain a model state dict")


def _load_safetensors(p: Path) -> Checkpoint:
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta_text = (f.metadata() or {}).get(CHECKPOINT_FORMAT)
            sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as exc:
        raise WeightsError(f"{p}: not a valid safetensors file ({exc})") from None
    meta = json.loads(meta_text) if meta_text else None
    return Checkpoint(sd, meta, str(p))


def checkpoint_meta(model: torch.nn.Module, name: str | None = None) -> dict:
    """What makes a checkpoint self-describing: architecture, config, frontend, labels, temperature."""
    meta = {
        "version": CHECKPOINT_VERSION,
        "arch": model.arch,
        "arch_config": model.config.to_dict(),
        "frontend": model.frontend_config.to_dict(),
        "labels": list(getattr(model, "labels", None) or []),
        "name": name or getattr(model, "model_name", None),
    }
    if model.arch == "dymn":
        meta["temperature"] = float(model.temperature)
    return meta


def atomic_write(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(
    model: torch.nn.Module, path: str | os.PathLike, *, name: str | None = None, plain: bool = False
) -> Path:
    """Write ``model`` atomically: a self-describing checkpoint, or with ``plain`` a reference-style
    state dict. A ``.safetensors`` suffix writes safetensors (metadata in its header)."""
    path = Path(path)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        metadata = None if plain else {CHECKPOINT_FORMAT: json.dumps(checkpoint_meta(model, name))}
        return atomic_write(path, lambda t: save_file(sd, t, metadata=metadata))
    obj = sd if plain else {"format": CHECKPOINT_FORMAT, **checkpoint_meta(model, name), "state_dict": sd}
    return atomic_write(path, lambda t: torch.save(obj, t))
