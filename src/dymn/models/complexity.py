"""Model complexity: parameters, multiply-accumulates (including dynamic convolutions), receptive field."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..util.errors import UsageError, printable
from .dy_blocks import DynamicConv


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


def describe(model: nn.Module, seconds: float = 10.0, weights_file: bool = False) -> str:
    """What ``dymn info`` prints: parameters, MACs for a clip of ``seconds`` (dynamic convolutions included),
    receptive field, input, outputs, config and where the weights come from."""
    lines: list[str] = []
    info = model.info
    if info.arch not in ("mn", "dymn", "fmn"):
        raise UsageError(f"dymn info describes one network, not {info.arch} {info.name}")
    fe = info.frontend
    frames = fe.frames(int(seconds * fe.sample_rate))
    shape = (1, 1, fe.n_mels, frames)
    macs = count_macs(model, shape)
    rf_f, rf_t = receptive_field(model, shape)
    n = count_params(model)
    lines.append(f"model            {printable(info.name)} ({info.arch})")
    lines.append(f"parameters       {n:,} ({n / 1e6:.3f} M)")
    lines.append(
        f"MACs per {seconds:g} s    {macs.gmacs:.3f} G"
        f"  (static conv {macs.conv / 1e9:.3f}, dynamic conv {macs.dynamic_conv / 1e9:.3f}, "
        f"kernel mixing {macs.kernel_mixing / 1e9:.4f}, linear {macs.linear / 1e9:.4f})"
    )
    whole = " of the convolutions; the sequence model sees the whole input" if info.config.get("seq_model_type") else ""
    lines.append(
        f"receptive field  {rf_f} mel bins x {rf_t} frames ({rf_t * fe.hop_length / fe.sample_rate:.2f} s){whole}"
    )
    lines.append(
        f"input            {fe.sample_rate} Hz, {fe.n_mels} mels, hop {fe.hop_length}, window {fe.win_length}, "
        f"n_fft {fe.n_fft}; {frames} frames for {seconds:g} s"
    )
    if info.level == "frame":
        seq = info.config.get("seq_model_type")
        lines.append(
            f"outputs          {info.num_classes} classes per frame ({info.activation}), 250 frames per input "
            f"(40 ms each for 10 s); sequence model: {seq or 'none'}"
        )
        if seq in ("tf", "hybrid", "gru"):
            lines.append(
                "                 (MACs count convolutions and linear layers; attention scores and GRU "
                "recurrences are not counted)"
            )
    else:
        lines.append(
            f"outputs          {info.num_classes} classes ({info.task}, {info.activation}), "
            f"{info.embed_dim}-d embedding"
        )
    lines.append(f"config           {info.config}")
    cfg = info.pretrained_cfg
    if weights_file:
        lines.append(f"weights          {printable(info.source)}")
    elif cfg is not None:
        lines.append(f"weights          {cfg.url}")
        lines.append(f"sha256           {cfg.sha256 or 'not published'}")
        if info.level == "frame":
            lines.append(
                f"PSDS1            {f'{cfg.psds1} (AudioSet Strong)' if cfg.psds1 is not None else 'not published'}"
            )
        else:
            lines.append(f"AudioSet mAP     {cfg.map if cfg.map is not None else 'not published'}")
        if cfg.notes:
            lines.append(f"notes            {cfg.notes}")
    return "\n".join(lines) + "\n"
