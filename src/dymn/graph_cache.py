"""The cache of converted graphs (``$DYMN_CACHE/compiled``) and of OpenVINO's compiled models
(``$DYMN_CACHE/openvino``), kept under a size limit.

Their names hold the versions of dymn (with a digest of its graph code), PyTorch and OpenVINO, so every upgrade
or code change converts again and old files are never used here again (another environment sharing the cache
may still use them). After each new graph, the least recently used files go until both folders together fit in
``$DYMN_CACHE_MAX_GB`` (default 2). Downloaded weights are never touched.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import UsageError

DEFAULT_MAX_GB = 2.0
FOLDERS = ("compiled", "openvino")
# a file written or used this recently is never removed: another process may be converting or loading it
GRACE_SECONDS = 3600.0
# A file's last use is marked at most this often: OpenVINO compiles a model again, and rewrites its cached
# blob, whenever the .xml's modification time changes (dymn10: 0.14 s to load, 0.40 s to compile and write
# 43 MB), so marking every use would make OpenVINO's cache miss on every run.
TOUCH_SECONDS = 86400.0


def max_bytes() -> int:
    """The size limit: ``$DYMN_CACHE_MAX_GB`` gigabytes (default 2)."""
    value = os.environ.get("DYMN_CACHE_MAX_GB") or str(DEFAULT_MAX_GB)
    try:
        gb = float(value)
    except ValueError:
        gb = -1.0
    if not gb >= 0:  # also NaN
        raise UsageError(f"DYMN_CACHE_MAX_GB={value!r}: give a size in gigabytes, such as 2 or 0.5")
    return int(gb * 1e9)


def touch(path: Path) -> None:
    """Mark a cached file (and an OpenVINO model's weights beside it) as used now, at most once every
    :data:`TOUCH_SECONDS`."""
    for p in (path, path.with_suffix(".bin")) if path.suffix == ".xml" else (path,):
        try:
            if time.time() - p.stat().st_mtime > TOUCH_SECONDS:
                os.utime(p)
        except OSError:
            pass  # a read-only cache: it is not pruned from here either


@contextlib.contextmanager
def converting(root: Path) -> Iterator[None]:
    """Around writing a new file into the cache under ``root``: a bad ``$DYMN_CACHE_MAX_GB`` stops before the
    work, and the cache is pruned to the limit after it."""
    limit = max_bytes()
    yield
    prune(root, limit)


def cached(root: Path, path: Path, make: Callable[[], Path]) -> Path:
    """``path`` when the cache under ``root`` already holds it (an OpenVINO model with its weights), marked as
    used; else what ``make()`` writes, inside :func:`converting`."""
    if path.is_file() and (path.suffix != ".xml" or path.with_suffix(".bin").is_file()):
        touch(path)
        return path
    with converting(root):
        return make()


def prune(root: Path, limit: int | None = None) -> list[Path]:
    """Remove the least recently used cached graphs under ``root`` until they fit in ``limit`` bytes
    (:func:`max_bytes` by default); files used within the last hour stay. Returns what was removed."""
    limit = max_bytes() if limit is None else limit
    files = []
    for folder in FOLDERS:
        base = root / folder
        if base.is_dir():
            for dirpath, _, names in os.walk(base):
                for name in names:
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except OSError:
                        continue  # removed meanwhile by another process
                    files.append((st.st_mtime, st.st_size, Path(dirpath) / name))
    total = sum(size for _, size, _ in files)
    removed: list[Path] = []
    now = time.time()
    for mtime, size, path in sorted(files):
        if total <= limit or now - mtime < GRACE_SECONDS:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed.append(path)
    return removed
