"""The cache folder (``$DYMN_CACHE``) and its size limit for converted graphs (``$DYMN_CACHE_MAX_GB``)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import UsageError

DEFAULT_MAX_GB = 2.0


def cache_dir() -> Path:
    """Where downloaded weights live: ``$DYMN_CACHE``, else ``~/.cache/dymn``."""
    env = os.environ.get("DYMN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dymn"


def max_bytes() -> int:
    """The size limit: ``$DYMN_CACHE_MAX_GB`` gigabytes (default 2)."""
    value = os.environ.get("DYMN_CACHE_MAX_GB") or str(DEFAULT_MAX_GB)
    try:
        gb = float(value)
    except ValueError:
        gb = -1.0
    if not (gb >= 0 and math.isfinite(gb * 1e9)):  # also NaN, and sizes that overflow (1e400)
        raise UsageError(f"DYMN_CACHE_MAX_GB={value!r}: give a size in gigabytes, such as 2 or 0.5")
    return int(gb * 1e9)
