"""A corpus for batch jobs: inputs (files, folders, globs, manifests; local or on any pyarrow filesystem)
expanded into one sorted list, cut into deterministically named shards."""

from __future__ import annotations

import glob as globlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..audio.io import AUDIO_EXTENSIONS
from ..util.errors import BatchError, UsageError

SHARD_SIZE = 1000
_REMOTE = ("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "az://", "file://")


@dataclass
class Shard:
    index: int
    name: str
    paths: list[str]


# --- inputs and shards -------------------------------------------------------------------------------
def is_remote(path: str) -> bool:
    return path.startswith(_REMOTE)


def filesystem(uri: str):
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as exc:
        raise BatchError(f"{uri}: cannot open this filesystem ({str(exc).splitlines()[0]})") from None


def _manifest(path: str) -> list[str]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fs, inner = filesystem(path) if is_remote(path) else (None, path)
    try:
        if path.lower().endswith(".parquet"):
            table = pq.read_table(inner, filesystem=fs, columns=None)
        else:
            if fs is not None:
                with fs.open_input_stream(inner) as f:
                    table = pacsv.read_csv(f)
            else:
                table = pacsv.read_csv(inner)
    except Exception as exc:
        raise BatchError(f"{path}: not a readable manifest ({str(exc).splitlines()[0]})") from None
    if "path" not in table.column_names:
        raise BatchError(f"{path}: a manifest needs a 'path' column (it has: {', '.join(table.column_names)})")
    base = os.path.dirname(path)
    out = []
    for p in table.column("path").to_pylist():
        if p is None or str(p).strip() == "":
            continue
        p = str(p)
        # relative paths in a local manifest are relative to the manifest
        out.append(p if is_remote(p) or os.path.isabs(p) or is_remote(path) else os.path.join(base, p))
    return out


def _remote_listing(uri: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, inner = filesystem(uri)
    scheme = uri.split("://", 1)[0]
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.File:
        return [uri]
    if info.type == pafs.FileType.Directory:
        found = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
        return sorted(f"{scheme}://{f.path}" for f in found
                      if f.type == pafs.FileType.File and Path(f.path).suffix.lower() in AUDIO_EXTENSIONS)  # fmt: skip
    return [uri]  # missing: a row with its error, like a missing local file


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files, folders (audio files found recursively), globs and manifests (.csv/.parquet with a ``path``
    column) as one sorted list without duplicates. A path that does not exist stays in the list: it becomes
    a row with its error, so that a manifest with missing files is reported, not silently shortened."""
    if not inputs:
        raise UsageError("give at least one input: files, folders, globs or a manifest")
    paths: list[str] = []
    for raw in inputs:
        raw = str(raw)
        low = raw.lower()
        if low.endswith((".csv", ".parquet")):
            paths += _manifest(raw)
        elif is_remote(raw):
            paths += _remote_listing(raw)
        elif any(c in raw for c in "*?[") and not os.path.exists(raw):  # a name that exists is taken literally
            found = sorted(globlib.glob(raw, recursive=True))
            if not found:
                raise BatchError(f"{raw}: the pattern matches no file")
            for f in found:
                paths += _folder(f) if os.path.isdir(f) else [f]
        elif os.path.isdir(raw):
            found = _folder(raw)
            if not found:
                raise BatchError(f"{raw}: the folder holds no audio files")
            paths += found
        else:
            paths.append(raw)
    return sorted({p if is_remote(p) else os.path.abspath(p) for p in paths})


def _folder(root: str) -> list[str]:
    return sorted(str(p) for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def plan_shards(paths: list[str], shard_size: int = SHARD_SIZE) -> list[Shard]:
    """Consecutive runs of ``shard_size`` paths; each shard's name comes from its index and its paths, so the
    same inputs always give the same shard names."""
    if shard_size < 1:
        raise UsageError("--shard-size must be at least 1")
    shards = []
    for i in range(0, len(paths), shard_size):
        part = paths[i : i + shard_size]
        digest = hashlib.sha256("\n".join(part).encode("utf-8", "surrogateescape")).hexdigest()[:12]
        shards.append(Shard(i // shard_size, f"part-{i // shard_size:06d}-{digest}.parquet", part))
    return shards


def text(message: str) -> str:
    """A path, or a message that may quote one, as UTF-8 text for Arrow: the bytes of a file name that are not
    UTF-8 are shown as ``\\xNN`` (a row's exact bytes are in its ``path_bytes`` column)."""
    return message.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def to_wire(paths: list[str]) -> list[bytes]:
    """Paths as the bytes they name, to pass through Ray and Arrow (which take only UTF-8 strings) unchanged."""
    return [os.fsencode(p) for p in paths]


def from_wire(paths) -> list[str]:
    """Inverse of :func:`to_wire`."""
    return [os.fsdecode(p) if isinstance(p, bytes) else str(p) for p in paths]


def local_copy(path: str):
    """A local file for ``path`` (a temporary copy of a remote one) and a function that removes the copy."""
    if not is_remote(path):
        return path, lambda: None
    import tempfile

    fs, inner = filesystem(path)
    fd, tmp = tempfile.mkstemp(suffix=Path(inner).suffix)
    try:
        with os.fdopen(fd, "wb") as out, fs.open_input_stream(inner) as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    except Exception as exc:
        os.unlink(tmp)
        raise OSError(f"{path}: cannot be read ({str(exc).splitlines()[0]})") from None
    return tmp, lambda: os.unlink(tmp)
