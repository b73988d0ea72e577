"""Stopping long work that nobody waits for any more (a service client that went away): the work runs inside
:func:`cancel_on` in its own thread and calls :func:`check` between steps (batches of windows or chunks)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from .errors import DymnError

_local = threading.local()


class CancelledWorkError(DymnError):
    """The work was stopped because its result is no longer wanted."""


@contextlib.contextmanager
def cancel_on(event: threading.Event | None) -> Iterator[None]:
    """Within the block, :func:`check` in this thread raises :class:`CancelledWorkError` once ``event`` is set."""
    before = getattr(_local, "event", None)
    _local.event = event
    try:
        yield
    finally:
        _local.event = before


def check() -> None:
    """Raise :class:`CancelledWorkError` if this thread's work was cancelled (see :func:`cancel_on`)."""
    event = getattr(_local, "event", None)
    if event is not None and event.is_set():
        raise CancelledWorkError("stopped: the result is no longer wanted")
