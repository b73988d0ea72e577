"""One error hierarchy: every mistake a user can make, or input that cannot be used, is a DymnError.

The CLI prints a DymnError as one line and exits with its ``exit_code`` (2 for usage errors, 1 for a run
that failed on its input, its output or the network). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


class DymnError(Exception):
    """Base of every user-facing error; the message says what was wrong and what to do."""

    exit_code = 1


class UsageError(DymnError, ValueError):
    """A wrong argument, option or combination of options."""

    exit_code = 2


class UnknownModelError(UsageError, KeyError):
    """A model name that is not in the registry (the message suggests close names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AudioError(DymnError, ValueError):
    """A file that cannot be used as audio; the message names the file and the reason."""


class WeightsError(DymnError, RuntimeError):
    """Weights that cannot be fetched, read or fitted to a model."""


class DownloadError(WeightsError):
    """A download that failed (network, server, cut-off or corrupt file); nothing was kept."""


class DataError(DymnError, ValueError):
    """A dataset that cannot be used for training or evaluation."""


class ExportError(DymnError, RuntimeError):
    """An export, or an exported file, that cannot be used."""


class ScoresError(DymnError, ValueError):
    """A model whose outputs are not finite numbers for an input (weights that overflow): never shown as scores."""


class OutputError(DymnError, OSError):
    """A result that cannot be written where it was asked to go."""


class MissingDependencyError(DymnError, ImportError):
    """An optional feature whose extra is not installed; the message names the pip command."""


class BatchError(DymnError):
    """A batch job cannot start or go on (bad input list, output folder of another job, no cluster)."""


def require(module: str, extra: str, feature: str):
    """Import an optional dependency, or fail with the install command for its extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"{feature} needs {module}: pip install 'dymn[{extra}]'") from None


def first_line(exc: BaseException, limit: int = 200) -> str:
    """A short, printable reason from a third-party exception (no ANSI codes, one line)."""
    text = _ANSI.sub("", str(exc)).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def printable(text: str) -> str:
    """``text`` with control characters escaped, for human-readable output (labels come from files)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
