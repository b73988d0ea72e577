"""Joining a Ray cluster (or starting Ray here) for batch jobs and the service: quietly, and failing at once
with one line when the address cannot be reached."""

from __future__ import annotations

from .errors import BatchError


def quiet() -> None:
    """Ray's start-up notes and per-dataset log lines are not the user's business; its errors still are."""
    import logging

    for name in ("ray", "ray.data", "ray._private", "ray.util"):
        logging.getLogger(name).setLevel(logging.ERROR)


def check_address(address: str | None) -> None:
    """An unreachable HOST:PORT fails at once, before anything is loaded (Ray itself would wait a minute)."""
    if address in (None, "", "local", "auto") or ":" not in address:
        return
    import socket

    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError):
        raise BatchError(f"cannot reach a Ray cluster at {address} (start one with `ray start --head`, or "
                         "leave out --address to run on this machine)") from None  # fmt: skip


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` or start Ray here; True if this call did (and so must shut it down)."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    quiet()
    kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        ray.init(address=None if address in (None, "", "local") else address, **kwargs)
    except (ConnectionError, RuntimeError) as exc:
        raise BatchError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]}") from None
    except KeyboardInterrupt:  # Ctrl-C while Ray starts: stop what it started, or the exit waits on it
        ray.shutdown()
        raise
    return True
