"""The recipes' learning-rate schedule: exponential warm-up, plateau, linear ramp-down."""

from __future__ import annotations

import math


def exp_warmup_linear_down(warm_up_len: float, ramp_down_start: float, ramp_down_len: float,
                           last_lr_value: float):  # fmt: skip
    """Multiplier of the peak learning rate at (fractional) epoch e, as in the reference."""

    def rampup(e: float) -> float:
        if e >= warm_up_len or warm_up_len <= 0:
            return 1.0
        e = min(max(e, 0.5), warm_up_len)
        phase = 1.0 - e / warm_up_len
        return math.exp(-5.0 * phase * phase)

    def rampdown(e: float) -> float:
        if e <= ramp_down_start:
            return 1.0
        if e >= ramp_down_start + ramp_down_len:
            return last_lr_value
        return last_lr_value + (1.0 - last_lr_value) * (ramp_down_len - e + ramp_down_start) / ramp_down_len

    return lambda e: rampup(e) * rampdown(e)
