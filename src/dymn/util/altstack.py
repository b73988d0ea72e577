"""Keeping a thread's alternate signal stack across calls into native code that replaces it.

OpenVINO sets the calling thread's alternate signal stack (``sigaltstack``) to a small buffer of its own and does
not always put the previous one back before freeing that buffer. Python installs its signal handlers (SIGINT,
SIGTERM, a DataLoader's SIGCHLD, faulthandler's) to run on the alternate stack, so the next such signal then
killed the process with SIGSEGV, with no traceback (measured: the test suite died in an unrelated test when a
child process exited). :func:`preserved` puts the thread's own stack back after the call.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.sigaltstack  # noqa: B018 (present in every glibc and musl)
    except (OSError, AttributeError):
        _libc = None


def current() -> tuple[int, int, int] | None:
    """This thread's alternate signal stack as (address, size, flags); None where it cannot be read."""
    if _libc is None:
        return None
    st = _StackT()
    if _libc.sigaltstack(None, ctypes.byref(st)) != 0:
        return None
    return (st.ss_sp or 0, st.ss_size, st.ss_flags)


@contextlib.contextmanager
def preserved() -> Iterator[None]:
    """Run the block, then give this thread back the alternate signal stack it had before."""
    before = current()
    try:
        yield
    finally:
        if before is not None and current() != before:
            addr, size, flags = before
            st = _StackT(addr or None, flags & 2 if not addr else 0, size)  # SS_DISABLE (2) when there was none
            _libc.sigaltstack(ctypes.byref(st), None)
