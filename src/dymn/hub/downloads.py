"""Released weights on disk and on the network: the cache and verified, atomic downloads."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..models.pretrained import PretrainedCfg
from ..util.cache import cache_dir
from ..util.errors import DownloadError, WeightsError, first_line
from ..util.integrity import read_record, sha256_file, write_record

_CHUNK = 1 << 16
DOWNLOAD_DEADLINE = 3600.0  # seconds for one file, however slowly the server trickles


def _progress(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not enabled)


class _Terminated(BaseException):
    """SIGTERM during a download: unwinds like Ctrl-C so the partial file is removed."""


@contextlib.contextmanager
def _cleanup_on_sigterm():
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, old)


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60,
    deadline: float | None = DOWNLOAD_DEADLINE,
    max_bytes: int | None = None,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file + rename).

    ``sha256`` is checked when given; ``verify(tmp_path)`` may reject the content before it is kept.
    ``timeout`` bounds each network wait, ``deadline`` the whole download (seconds) and ``max_bytes`` its
    size. A failed, cut-off, oversized, rejected or interrupted (Ctrl-C, SIGTERM) download leaves nothing.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise WeightsError(f"cannot write to the weights cache {dest.parent}: {first_line(exc)} "
                           "(set DYMN_CACHE to a writable folder)") from None  # fmt: skip
    start = time.monotonic()
    try:
        with _cleanup_on_sigterm():
            h = hashlib.sha256()
            received = 0
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                if max_bytes is not None and total is not None and total > max_bytes:
                    raise DownloadError(f"{url} is {total} bytes, more than the {max_bytes} expected; not downloaded")
                with _progress(total, dest.name, progress) as bar:
                    while chunk := resp.read1(_CHUNK):  # returns what has arrived: the deadline is checked
                        out.write(chunk)
                        h.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                        if max_bytes is not None and received > max_bytes:
                            raise DownloadError(f"download of {url} exceeded {max_bytes} bytes; stopped, nothing kept")
                        if deadline is not None and time.monotonic() - start > deadline:
                            raise DownloadError(f"download of {url} took longer than {deadline:.0f} s "
                                                f"({received} bytes received); stopped, nothing kept")  # fmt: skip
                if total is not None and received != total:
                    raise DownloadError(f"download of {url} was cut off after {received} of {total} bytes; try again")
                out.flush()
                os.fsync(out.fileno())
            if sha256 and h.hexdigest() != sha256.lower():
                raise DownloadError(
                    f"download of {url} is corrupt: sha256 {h.hexdigest()} does not match the expected {sha256}"
                )
            if verify is not None:
                verify(Path(tmp))
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
            write_record(dest, h.hexdigest())
            return dest
    finally:
        Path(tmp).unlink(missing_ok=True)


def _verified(path: Path, sha256: str | None) -> str | None:
    """Why a cached file cannot be trusted (None if it can): checked against the registry's sha256 or the
    one recorded when it was downloaded."""
    rec = read_record(path)
    expected = sha256 or (rec or {}).get("sha256")
    if expected is None:
        return None  # placed there by hand: nothing to check against
    st = path.stat()
    unchanged = rec and (rec.get("size"), rec.get("mtime_ns")) == (st.st_size, st.st_mtime_ns)
    if unchanged and rec.get("sha256") == expected.lower():
        return None  # hashed when recorded, untouched since: no need to read it all again
    actual = sha256_file(path)
    if actual != expected.lower():
        return f"its sha256 {actual} is not the {'published' if sha256 else 'downloaded'} {expected}"
    if rec is None or rec.get("sha256") != actual or rec.get("size") != st.st_size:
        write_record(path, actual)
    return None


def _expected_size(cfg: PretrainedCfg) -> int:
    # fp32 parameters plus buffers (BatchNorm statistics) and pickling overhead, generously
    return int((cfg.params or 100_000_000) * 4 * 1.3) + (8 << 20)


def _verify_download(cfg: PretrainedCfg) -> Callable[[Path], None]:
    def verify(tmp: Path) -> None:
        from ..models.checkpoint import load_checkpoint
        from .factory import layout_fits

        try:
            ckpt = load_checkpoint(tmp)
        except WeightsError as exc:
            raise DownloadError(f"the server sent no weights for {cfg.name} ({str(exc).split(': ', 1)[-1]}); "
                                "nothing was kept") from None  # fmt: skip
        if ckpt.self_describing or not layout_fits(cfg, ckpt.state_dict, any_classes=False):
            raise DownloadError(f"the server sent a file that is not the {cfg.name} weights; nothing was kept")

    return verify


def fetch_pretrained(cfg: PretrainedCfg, progress: bool = True) -> Path:
    """Path of the cached weights of a registry entry, downloading (and verifying) them on first use.

    A cached file whose sha256 no longer matches (the published one, or the one recorded at download) is
    removed and downloaded again.
    """
    path = cache_dir() / cfg.filename
    if path.is_file():
        problem = _verified(path, cfg.sha256)
        if problem is None:
            return path
        print(f"dymn: the cached {path} cannot be trusted ({problem}); downloading it again", file=sys.stderr)
        path.unlink(missing_ok=True)
    url = cfg.url
    try:
        return download(url, path, cfg.sha256, progress=progress, deadline=DOWNLOAD_DEADLINE,
                        max_bytes=_expected_size(cfg), verify=_verify_download(cfg))  # fmt: skip
    except http.client.HTTPException as exc:  # e.g. IncompleteRead: the connection dropped mid-file
        raise DownloadError(f"download of {url} failed ({type(exc).__name__}); nothing was kept, try again") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"could not download the weights of {cfg.name} from {url} ({_reason(reason)}). "
            f"Without network access, fetch that file elsewhere and put it at {path}, or pass it with --weights PATH"
        ) from None


def _reason(reason) -> str:
    return first_line(reason) if isinstance(reason, BaseException) else str(reason)
