"""Released weights on disk and on the network: the cache and verified, atomic downloads."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .errors import DownloadError, WeightsError, first_line
from .registry import PretrainedCfg

_CHUNK = 1 << 16


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
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise WeightsError(f"cannot write to the weights cache {dest.parent}: {first_line(exc)} "
                           "(set DYMN_CACHE to a writable folder)") from None  # fmt: skip
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
                raise DownloadError(f"download of {url} was cut off after {received} of {total} bytes; try again")
            out.flush()
            os.fsync(out.fileno())
        if sha256 and h.hexdigest() != sha256.lower():
            raise DownloadError(
                f"download of {url} is corrupt: sha256 {h.hexdigest()} does not match the expected {sha256}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        return dest
    finally:
        Path(tmp).unlink(missing_ok=True)


def _reason(reason) -> str:
    return first_line(reason) if isinstance(reason, BaseException) else str(reason)


def fetch_pretrained(cfg: PretrainedCfg, progress: bool = True) -> Path:
    """Path of the cached weights of a registry entry, downloading them on first use."""
    path = cache_dir() / cfg.filename
    if path.is_file():
        return path
    url = cfg.url
    try:
        return download(url, path, cfg.sha256, progress=progress)
    except http.client.HTTPException as exc:  # e.g. IncompleteRead: the connection dropped mid-file
        raise DownloadError(f"download of {url} failed ({type(exc).__name__}); nothing was kept, try again") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"could not download the weights of {cfg.name} from {url} ({_reason(reason)}). "
            f"Without network access, fetch that file elsewhere and put it at {path}, or pass it with --weights PATH"
        ) from None
