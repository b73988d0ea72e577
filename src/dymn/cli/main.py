"""The ``dymn`` command: parses arguments and calls the library (no logic of its own).

Exit status: 0 success, 1 a run that failed on its input, output or the network (one line on stderr
per problem), 2 a usage error, 130 interrupted. Any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from .._version import __version__
from ..util.errors import DymnError, OutputError
from . import batch, detection, hub, models, serve, tagging, train
from .common import HelpFormatter, err


def build_parser() -> argparse.ArgumentParser:
    """The ``dymn`` parser: each command group registers its commands."""
    p = argparse.ArgumentParser(prog="dymn", description="Efficient pre-trained audio taggers (MN, DyMN).",
                                formatter_class=HelpFormatter)  # fmt: skip
    p.add_argument("--version", action="version", version=f"dymn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in (tagging, batch, serve, detection, models, hub, train):
        group.register(sub)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from ..audio.io import AudioWarning

    if issubclass(category, AudioWarning):
        err(f"warning: {message}")
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


class _Stdout:
    """Standard output while a command runs: results that cannot be written to it (``> /dev/full``, a full disk)
    are an :class:`~dymn.OutputError` (one line, exit 1), not a traceback; a closed pipe stays a BrokenPipeError."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> OutputError:
        import os

        try:  # what is still buffered goes nowhere: exiting must not fail a second time on it
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        return OutputError(f"cannot write the results to standard output ({exc.strerror or exc})")

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # file names that are not UTF-8 come back as surrogates: write them back as the bytes they were
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape" if stream is sys.stdout else "backslashreplace")
    warnings.showwarning = _show_warning
    stdout, sys.stdout = sys.stdout, _Stdout(sys.stdout)
    try:
        return args.func(args)
    except DymnError as exc:
        err(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `dymn tag ... | head`
        sys.stderr.close()
        return 0
    finally:
        sys.stdout = stdout
        warnings.showwarning = _default_showwarning


def entry() -> None:
    """The `dymn` command: :func:`main` with the C allocator set for inference (:mod:`dymn.util.allocator`), then
    exit without the interpreter's last garbage collection."""
    from ..util.allocator import tune

    tune()
    status = main()
    # With PyTorch loaded, the collection at interpreter exit walks hundreds of thousands of objects: 0.3-0.4 s
    # of every command (`dymn tag one.wav`: 2.2 s -> 1.8 s). Frozen objects are skipped by it; atexit
    # handlers, flushing and closing still run. Only here: in a caller's process it would keep cycles alive.
    import gc

    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    entry()
