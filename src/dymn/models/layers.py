"""Building blocks shared by MN and DyMN: channel rounding, the block table, conv-BN-activation units."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# The feature extractor's BatchNorm settings of the released models (not torch's defaults).
BN_EPS = 0.001
BN_MOMENTUM = 0.01


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` the way MobileNetV3 does."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # never round down by more than 10 %
        new_v += divisor
    return new_v


def norm2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def activation(kind: str) -> nn.Module:
    if kind == "RE":
        return nn.ReLU(inplace=True)
    if kind == "HS":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {kind!r}")


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm + optional activation; keys ``0.*`` (conv) and ``1.*`` (norm)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        act: str | None = "RE",
    ) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_ch,
                out_ch,
                kernel_size,
                stride,
                padding,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            norm2d(out_ch),
        ]
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block after width scaling."""

    in_ch: int
    kernel: int
    exp_ch: int
    out_ch: int
    use_se: bool
    act: str  # "RE" or "HS"
    stride: int
    dilation: int = 1


# MobileNetV3-Large at width 1.0: in, kernel, expanded, out, SE, activation, stride slot (None = stride 1).
_BASE_TABLE = [
    (16, 3, 16, 16, False, "RE", None),
    (16, 3, 64, 24, False, "RE", 0),
    (24, 3, 72, 24, False, "RE", None),
    (24, 5, 72, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", None),
    (40, 5, 120, 40, True, "RE", None),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", None),
    (80, 3, 184, 80, False, "HS", None),
    (80, 3, 184, 80, False, "HS", None),
    (80, 3, 480, 112, True, "HS", None),
    (112, 3, 672, 112, True, "HS", None),
    (112, 5, 672, 160, True, "HS", 3),
    (160, 5, 960, 160, True, "HS", None),
    (160, 5, 960, 160, True, "HS", None),
]


def check_strides(strides) -> tuple[int, int, int, int]:
    strides = tuple(int(s) for s in strides)
    if len(strides) != 4 or any(s not in (1, 2) for s in strides):
        raise ValueError(f"strides must be four values of 1 or 2, got {strides}")
    return strides  # type: ignore[return-value]


def block_table(
    width_mult: float,
    strides=(2, 2, 2, 2),
    reduced_tail: bool = False,
    dilated: bool = False,
) -> tuple[list[BlockSpec], int]:
    """Block specs for a width and stride tuple, and the hidden width of the mlp head."""
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")
    strides = check_strides(strides)
    reduce_divider = 2 if reduced_tail else 1
    blocks = []
    for i, (cin, k, exp, cout, se, act, slot) in enumerate(_BASE_TABLE):
        if reduced_tail and i >= 12:  # torchvision's reduced tail: halve the last three blocks
            cout //= reduce_divider
            if i > 12:
                cin //= reduce_divider
                exp //= reduce_divider
        dilation = 2 if (dilated and i >= 12) else 1
        stride = 1 if slot is None else strides[slot]
        blocks.append(
            BlockSpec(
                make_divisible(cin * width_mult),
                k,
                make_divisible(exp * width_mult),
                make_divisible(cout * width_mult),
                se,
                act,
                stride,
                dilation,
            )
        )
    last_channel = make_divisible(1280 // reduce_divider * width_mult)
    return blocks, last_channel


def conv_out_size(n: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def init_weights(model: nn.Module) -> None:
    """The reference initialisation: kaiming (fan_out) convs, unit norms, N(0, 0.01) linears."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def flatten_outputs(logits: torch.Tensor, batch: int) -> torch.Tensor:
    """Always (B, C), also for batch 1 or a single class (the reference squeezes ambiguously)."""
    return logits.reshape(batch, -1)
