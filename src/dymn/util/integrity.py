"""What a cache wrote, recorded beside it (``NAME.sha256``: the digest with the size and modification time it
had), so that a file changed, cut or replaced afterwards is known as such when it is read back."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from .atomic import write_text


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in blocks."""
    return sha256_files([path])


def sha256_files(paths: Sequence[str | os.PathLike]) -> str:
    """One sha256 over several files in order (an OpenVINO model is its .xml and its .bin)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def record_path(path: Path) -> Path:
    """Where the record of ``path`` lives."""
    return path.with_name(path.name + ".sha256")


def write_record(path: Path, digest: str) -> None:
    """Remember ``path``'s digest (with its size and mtime); a read-only cache goes on without the record."""
    st = path.stat()
    try:
        write_text(record_path(path), json.dumps({"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    except OSError:
        pass


def read_record(path: Path) -> dict | None:
    """The record of ``path`` (None when there is none or it cannot be read as one)."""
    try:
        rec = json.loads(record_path(path).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("sha256"), str) else None
