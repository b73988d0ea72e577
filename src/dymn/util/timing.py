"""Timing calls on a shared machine: interleaved rounds, minimum per function (used by auto's choice of backend
and by the benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Callable


def time_call(fn: Callable[[], object], repeats: int = 5, min_time: float = 0.5) -> float:
    """Seconds per call: the minimum over ``repeats`` rounds (after a warm-up call).

    The minimum is the least noisy estimate on a shared machine.
    """
    return time_calls({0: fn}, repeats, min_time)[0]


def time_calls(fns: dict, repeats: int = 5, min_time: float = 0.5, settle: float = 0.15) -> dict:
    """Seconds per call of each function in ``fns``, timed in interleaved rounds (one round of each, then the
    next): a slow spell of a shared machine then hits every function alike instead of one. Minimum per function.
    Before each round of a function: ``settle`` seconds idle and one untimed call."""
    for fn in fns.values():
        fn()
    best = {key: float("inf") for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            if len(fns) > 1:
                # the one before may leave threads spinning (onnxruntime's spin for tens of ms and made the next
                # candidate's calls up to 70 % slower): let them settle, then one call untimed to warm the caches
                time.sleep(settle)
                fn()
            t = time.perf_counter()
            n = 0
            while True:
                fn()
                n += 1
                if time.perf_counter() - t >= min_time / repeats or n >= 50:
                    break
            best[key] = min(best[key], (time.perf_counter() - t) / n)
    return best
