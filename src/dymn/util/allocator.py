"""The C allocator's settings for CPU inference, in dymn's own processes (the `dymn` command, its Ray workers).

glibc returns a large freed block to the system, and PyTorch then page-faults it back on the next call: its
feature maps are allocated and freed on every forward. A whole batch in PyTorch paid for that (mn10 at batch 8,
2 threads: 12.0 ms per clip, 5.3 ms with the thresholds raised; benchmarks/results/inference-cpu.md). The
setting is process-wide, so a library call never makes it: a program that uses dymn can call :func:`tune`
itself, or start with ``MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=536870912`` in its environment.
"""

from __future__ import annotations

import ctypes
import os

MMAP_THRESHOLD = 256 << 20  # blocks up to this size come from the heap, which keeps them when freed
TRIM_THRESHOLD = 512 << 20  # free memory at the heap's top is returned only beyond this
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_tuned = False


def tune() -> bool:
    """Keep large freed blocks in the process's heap (glibc's ``mallopt``); False where the C library is not
    glibc (nothing changes there). Costs memory only as high as the largest batch's peak, kept once reached."""
    global _tuned
    if _tuned:
        return True
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it: other C libraries' mallopt differ)
    except (OSError, AttributeError):
        return False
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned


def state() -> str:
    """``"tuned"`` when :func:`tune` ran in this process or the environment set glibc's thresholds, else
    ``"default"``: the speed of PyTorch's ways to run a batch depends on it, so the backend choice is measured
    per state."""
    if (
        _tuned
        or os.environ.get("MALLOC_MMAP_THRESHOLD_")
        or "malloc.mmap_threshold" in os.environ.get("GLIBC_TUNABLES", "")
    ):
        return "tuned"
    return "default"
