"""Writing results so that nothing is ever half-written, with the permissions a normal file gets."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import OutputError, first_line


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` in one step.

    The file gets the mode a new file would get (0666 less the umask), or keeps the mode of the file it
    replaces. A target that exists and is not a regular file (``/dev/stdout``, a FIFO, a device) is
    written in place: renaming over it would replace the device with a file. A failed write leaves the
    old file untouched and no temp file behind; OS errors become :class:`~dymn.errors.OutputError`.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {first_line(exc)}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot write {path}: it is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            write(str(path))
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {first_line(exc)}") from None
        return path
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {first_line(exc)}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text (UTF-8; file names that were not UTF-8 go back as their bytes) atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", errors="surrogateescape"))


def atomic_folder(path: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(tmp_folder)`` and put the folder at ``path`` in one step (a rename), replacing the folder
    that was there only once the new one is complete: a failed ``fill`` leaves the old folder as it was and
    nothing behind. The folder gets a new folder's mode (0777 less the umask)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot write {path}: it is a file, not a folder")
    tmp = old = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        fill(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "folder")
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        if old is not None and (old / "folder").exists() and not path.exists():
            os.replace(old / "folder", path)  # put the old folder back
        raise OutputError(f"cannot write {path}: {first_line(exc)}") from None
    finally:
        for leftover in (tmp, old):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)
    return path
