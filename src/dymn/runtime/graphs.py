"""The cache of converted graphs (``$DYMN_CACHE/compiled``) and of OpenVINO's compiled models
(``$DYMN_CACHE/openvino``), kept under a size limit. The only module that names cache files (:func:`graph_path`).

Their names hold the versions of dymn (with a digest of its graph code), PyTorch and OpenVINO, so every upgrade
or code change converts again and old files are never used here again (another environment sharing the cache
may still use them). After each new graph, the least recently used files go until both folders together fit in
``$DYMN_CACHE_MAX_GB`` (default 2). Downloaded weights are never touched.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from .._version import __version__
from ..util.cache import cache_dir, max_bytes
from ..util.integrity import read_record, record_path, sha256_files, write_record
from .backends import BACKENDS

# The modules whose code shapes a converted graph: a change to any of them (a checkout changed between releases,
# same version number) must not reuse graphs converted before. Named as modules, so that a module that moves or
# goes away stops every conversion with an error instead of silently leaving the digest (tests/runtime).
GRAPH_SOURCES = (
    "dymn.audio.frontend",
    "dymn.models.configs",
    "dymn.models.layers",
    "dymn.models.heads",
    "dymn.models.blocks",
    "dymn.models.dy_blocks",
    "dymn.models.mn",
    "dymn.models.dymn",
    "dymn.models.sed",
    "dymn.models.ensemble",
    "dymn.runtime.fusion",
    "dymn.runtime.export",
    "dymn.runtime.engines.ort",
    "dymn.runtime.engines.ov",
)

FOLDERS = ("compiled", "openvino")
# a file written or used this recently is never removed: another process may be converting or loading it
GRACE_SECONDS = 3600.0
# A file's last use is marked at most this often: OpenVINO compiles a model again, and rewrites its cached
# blob, whenever the .xml's modification time changes (dymn10: 0.14 s to load, 0.40 s to compile and write
# 43 MB), so marking every use would make OpenVINO's cache miss on every run.
TOUCH_SECONDS = 86400.0
# a graph written this recently without its record yet is being recorded by the process that wrote it
RECORD_WAIT_SECONDS = 30.0


def touch(path: Path) -> None:
    """Mark a cached file (and an OpenVINO model's weights beside it) as used now, at most once every
    :data:`TOUCH_SECONDS`."""
    for p in [*_parts(path), record_path(path)]:
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
    """``path`` when the cache under ``root`` holds it as dymn wrote it (an OpenVINO model with its weights),
    marked as used; else what ``make()`` writes, inside :func:`converting`, recorded (:func:`intact`)."""
    if path.is_file() and (path.suffix != ".xml" or path.with_suffix(".bin").is_file()):
        if intact(path):
            touch(path)
            return path
        # converted again and replaced in one step: a process that has the old file open keeps reading it
        print(f"dymn: warning: the cached graph {path.name} is not the file dymn wrote (changed, cut or replaced "
              "since); converting it again", file=sys.stderr, flush=True)  # fmt: skip
    with converting(root):
        out = make()
        if out == path:
            write_record(path, sha256_files(_parts(path)))
        return out


def _parts(path: Path) -> list[Path]:
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def intact(path: Path) -> bool:
    """Whether the cached graph at ``path`` (an OpenVINO model: with its weights) is byte for byte what dymn wrote
    there: its digest, recorded at write time, is checked at every read (a cached graph is loaded once per
    process; hashing dymn10's 18 MB ONNX graph takes about 20 ms). A graph from other weights placed at the name,
    or a garbage or half-written file, would otherwise give wrong results or fail every run."""
    rec = read_record(path)
    deadline = time.monotonic() + RECORD_WAIT_SECONDS
    while rec is None and time.monotonic() < deadline and _age(path) < RECORD_WAIT_SECONDS:
        time.sleep(0.2)  # another process has just written the graph and is hashing it for its record
        rec = read_record(path)
    try:
        return rec is not None and rec["sha256"] == sha256_files(_parts(path))
    except OSError:
        return False


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
                    if name.endswith(".sha256"):
                        continue  # removed with its graph
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
            record_path(path).unlink(missing_ok=True)
        except OSError:
            continue
        total -= size
        removed.append(path)
    return removed


def source_files() -> list[Path]:
    """The files of :data:`GRAPH_SOURCES`."""
    out = []
    for name in GRAPH_SOURCES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise RuntimeError(f"graph source {name} not found: update dymn.runtime.graphs.GRAPH_SOURCES")
        out.append(Path(spec.origin))
    return out


@functools.cache
def source_digest() -> str:
    """A digest of the code that shapes a converted graph (:data:`GRAPH_SOURCES`)."""
    h = hashlib.sha256()
    for name, path in zip(GRAPH_SOURCES, source_files()):
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:8]


def versions() -> dict[str, str]:
    """Versions that decide a converted graph or a measured speed (from the package metadata: no imports)."""
    out = {"dymn": f"{__version__}+{source_digest()}", "torch": torch.__version__}
    for name in BACKENDS[1:]:  # the runtimes: torch's version is above
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def cache_root() -> Path:
    """The cache folder; a bad ``$DYMN_CACHE_MAX_GB`` is reported on first use, not only when a conversion
    happens."""
    max_bytes()
    return cache_dir()


def fingerprint(model: nn.Module) -> str:
    """A hash of what decides a network's graph and outputs: architecture, config and every tensor."""
    known = getattr(model, "_dymn_fingerprint", None)
    if known:
        return known
    h = hashlib.sha256()
    h.update(json.dumps([model.arch, model.config.to_dict()], sort_keys=True, default=str).encode())
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    digest = h.hexdigest()[:20]
    object.__setattr__(model, "_dymn_fingerprint", digest)
    return digest


def graph_path(model: nn.Module, kind: str, suffix: str, *, openvino: bool = False) -> Path:
    """Where the converted graph ``kind`` of ``model`` lives in the cache: named by the model, its weights
    (:func:`fingerprint`), ``kind`` and the versions of PyTorch, dymn and (with ``openvino``) OpenVINO, so every
    upgrade or code change converts again."""
    v = versions()
    parts = [model.info.name, fingerprint(model), *([kind] if kind else []), f"torch{v['torch']}"]
    if openvino:
        parts.append(f"ov{v.get('openvino', '?')}")
    return cache_root() / "compiled" / ("-".join([*parts, v["dymn"]]) + suffix)


def derived_path(path: Path, kind: str, suffix: str | None = None) -> Path:
    """A graph derived from the cached graph at ``path`` (e.g. with a static input shape), named beside it."""
    return path.with_name(f"{path.stem}-{kind}{suffix or path.suffix}")
