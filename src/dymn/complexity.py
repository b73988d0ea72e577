"""Model complexity: parameters, multiply-accumulates (including dynamic convolutions), receptive field."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .models.dy_blocks import DynamicConv


def count_params(model: nn.Module) -> int:
    """Learnable parameters (the way the MN README counts them)."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class MacReport:
    total: int
    conv: int
    dynamic_conv: int  # per-example convolutions of DynamicConv layers (the reference counter misses these)
    kernel_mixing: int  # forming each example's kernel from the K stored kernels
    linear: int

    @property
    def gmacs(self) -> float:
        return self.total / 1e9


def count_macs(model: nn.Module, spec_shape: tuple[int, int, int, int] = (1, 1, 128, 1000)) -> MacReport:
    """MACs of one forward pass on a (1, 1, n_mels, T) input.

    Rules of the reference counter (conv: out * (k*k*in/groups + bias) * H*W; linear: weight + bias
    per application) plus what it misses: DynamicConv convolutions and kernel mixing.
    """
    counts = {"conv": 0, "dynamic_conv": 0, "kernel_mixing": 0, "linear": 0}

    def conv_hook(m: nn.Conv2d, inp, out):
        kh, kw = m.kernel_size
        per_pos = m.out_channels * (kh * kw * m.in_channels // m.groups + (1 if m.bias is not None else 0))
        counts["conv"] += per_pos * out.shape[2] * out.shape[3]

    def dyn_hook(m: DynamicConv, inp, out):
        k = m.kernel_size
        counts["dynamic_conv"] += m.out_ch * k * k * (m.in_ch // m.groups) * out.shape[2] * out.shape[3]
        counts["kernel_mixing"] += m.weight.shape[-1] * m.k

    def linear_hook(m: nn.Linear, inp, out):
        positions = out.numel() // (out.shape[0] * m.out_features)  # >1 for per-frame linears
        counts["linear"] += (m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)) * positions

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, DynamicConv):
            handles.append(m.register_forward_hook(dyn_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(spec_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return MacReport(sum(counts.values()), **counts)


def receptive_field(model: nn.Module, spec_shape: tuple[int, int, int, int] = (1, 1, 128, 1000)) -> tuple[int, int]:
    """Receptive field (frequency bins, time frames) of the final feature map, from every spatial conv."""
    layers: list[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = []

    def hook(m, inp, out):
        if isinstance(m, DynamicConv):
            k, s, d = (m.kernel_size,) * 2, (m.stride,) * 2, (m.dilation,) * 2
        else:
            k, s, d = m.kernel_size, m.stride, m.dilation
        layers.append((k, s, d))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, DynamicConv))]
    was_training = model.training
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(spec_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    rf = []
    for axis in (0, 1):
        r = 1
        for k, s, d in reversed(layers):
            k_eff = (k[axis] - 1) * d[axis] + 1
            r = s[axis] * r + (k_eff - s[axis])
        rf.append(r)
    return rf[0], rf[1]
