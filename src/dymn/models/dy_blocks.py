"""DyMN building blocks: context generation, dynamic convolution, dynamic ReLU, coordinate attention.

Every dynamic layer takes ``(x, g)`` where ``g = (h_c, g_cf, g_ct)`` is the context of its block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import BlockSpec, activation, norm2d


class DynamicWrapper(nn.Module):
    """Lets a static module sit where a context-driven one is expected (key prefix ``module.``)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, g=None) -> torch.Tensor:
        return self.module(x)


class DynamicConv(nn.Module):
    """Convolution whose kernel is a per-example softmax mixture of K kernels.

    The K kernels are stored flat as ``weight`` (1, 1, K, out * in/groups * kh * kw), as released.
    ``temperature`` divides the attention logits; it is not part of the state dict.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        context_dim: int,
        kernel_size: int = 1,
        stride: int = 1,
        dilation: int = 1,
        padding: int = 0,
        groups: int = 1,
        k: int = 4,
        temperature: float = 30.0,
    ):
        super().__init__()
        if in_ch % groups:
            raise ValueError("in_ch must be divisible by groups")
        self.in_ch, self.out_ch, self.k = in_ch, out_ch, k
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.padding, self.groups = padding, groups
        self.temperature = float(temperature)
        self.residuals = nn.Sequential(nn.Linear(context_dim, k))
        shape = (out_ch, in_ch // groups, kernel_size, kernel_size)
        kernels = [nn.init.kaiming_normal_(torch.empty(shape), mode="fan_out") for _ in range(k)]
        self.weight = nn.Parameter(torch.stack(kernels).reshape(1, 1, k, -1))

    def attention(self, h_c: torch.Tensor) -> torch.Tensor:
        """Softmax weights over the K kernels, (B, K)."""
        logits = self.residuals(h_c.reshape(h_c.shape[0], -1))
        return torch.softmax(logits / self.temperature, dim=-1)

    def kernels(self, h_c: torch.Tensor) -> torch.Tensor:
        """Per-example kernels (B, out, in/groups, kh, kw)."""
        att = self.attention(h_c)
        w = att @ self.weight.reshape(self.k, -1)
        return w.reshape(-1, self.out_ch, self.in_ch // self.groups, self.kernel_size, self.kernel_size)

    def forward(self, x: torch.Tensor, g) -> torch.Tensor:
        b, c, f, t = x.shape
        w = self.kernels(g[0])
        if self.kernel_size == 1 and self.groups == 1 and self.padding == 0:
            # pointwise: one batched matmul instead of a B-group convolution
            if self.stride > 1:
                x = x[:, :, :: self.stride, :: self.stride]
                f, t = x.shape[2:]
            out = torch.bmm(w.reshape(b, self.out_ch, c), x.reshape(b, c, f * t))
            return out.reshape(b, self.out_ch, f, t)
        return self.grouped_conv(x, w)

    def grouped_conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Every example's kernel at once: the batch folded into the channels, one B-group conv
        (the reference's way; fine for depthwise convs, slow for pointwise ones on CPUs)."""
        b, c, f, t = x.shape
        out = F.conv2d(
            x.reshape(1, b * c, f, t),
            w.reshape(b * self.out_ch, c // self.groups, self.kernel_size, self.kernel_size),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups * b,
        )
        return out.reshape(b, self.out_ch, out.shape[-2], out.shape[-1])


class DyReLUB(nn.Module):
    """Dynamic ReLU, variant B: per-example, per-channel piecewise-linear activation."""

    def __init__(self, channels: int, context_dim: int, M: int = 2):
        super().__init__()
        self.channels, self.M = channels, M
        self.coef_net = nn.Sequential(nn.Linear(context_dim, 2 * M * channels))
        self.register_buffer("lambdas", torch.tensor([1.0] * M + [0.5] * M))
        self.register_buffer("init_v", torch.tensor([1.0] + [0.0] * (2 * M - 1)))

    def forward(self, x: torch.Tensor, g) -> torch.Tensor:
        h = g[0].reshape(x.shape[0], -1)
        theta = 2 * torch.sigmoid(self.coef_net(h)) - 1
        coefs = theta.reshape(-1, self.channels, 1, 1, 2 * self.M) * self.lambdas + self.init_v
        y = x * coefs[..., 0] + coefs[..., self.M]
        for m in range(1, self.M):
            y = torch.maximum(y, x * coefs[..., m] + coefs[..., self.M + m])
        return y


class CoordAtt(nn.Module):
    """Coordinate attention from the context's frequency and time maps."""

    def forward(self, x: torch.Tensor, g) -> torch.Tensor:
        return x * torch.sigmoid(g[1]) * torch.sigmoid(g[2])


class ContextGen(nn.Module):
    """Per-block context from the block input: global vector h_c and CA maps g_cf, g_ct."""

    def __init__(self, context_dim: int, in_ch: int, exp_ch: int, stride: int = 1):
        super().__init__()
        self.joint_conv = nn.Conv2d(in_ch, context_dim, 1, bias=False)
        self.joint_norm = norm2d(context_dim)
        self.joint_act = nn.Hardswish(inplace=True)
        self.conv_f = nn.Conv2d(context_dim, exp_ch, 1)
        self.conv_t = nn.Conv2d(context_dim, exp_ch, 1)
        if stride > 1:
            self.pool_f = nn.AvgPool2d((3, 1), stride=(stride, 1), padding=(1, 0))
            self.pool_t = nn.AvgPool2d((1, 3), stride=(1, stride), padding=(0, 1))
        else:
            self.pool_f = nn.Sequential()
            self.pool_t = nn.Sequential()

    def forward(self, x: torch.Tensor):
        f, t = x.shape[2], x.shape[3]
        cf = x.mean(dim=3, keepdim=True)
        ct = x.mean(dim=2, keepdim=True).transpose(2, 3)
        g = self.joint_act(self.joint_norm(self.joint_conv(torch.cat([cf, ct], dim=2))))
        h_cf, h_ct = torch.split(g, [f, t], dim=2)
        h_c = g.mean(dim=2, keepdim=True)  # length-weighted over F+T, as released
        g_cf = self.conv_f(self.pool_f(h_cf))
        g_ct = self.conv_t(self.pool_t(h_ct.transpose(2, 3)))
        return h_c, g_cf, g_ct


class DYBlock(nn.Module):
    """Dynamic inverted residual: dynamic convs, DyReLU-B and coordinate attention driven by one context."""

    def __init__(
        self,
        spec: BlockSpec,
        context_dim: int,
        dyconv_k: int = 4,
        temperature: float = 30.0,
        dyrelu_k: int = 2,
        no_dyrelu: bool = False,
        no_dyconv: bool = False,
        no_ca: bool = False,
    ):
        super().__init__()
        stride = 1 if spec.dilation > 1 else spec.stride

        def conv(cin, cout, k=1, s=1, groups=1):
            pad = (k - 1) // 2 * spec.dilation if k > 1 else 0
            dil = spec.dilation if k > 1 else 1
            if no_dyconv:
                return DynamicWrapper(nn.Conv2d(cin, cout, k, s, pad, dil, groups, bias=False))
            return DynamicConv(cin, cout, context_dim, k, s, dil, pad, groups, dyconv_k, temperature)

        self.has_expand = spec.exp_ch != spec.in_ch
        if self.has_expand:
            self.exp_conv = conv(spec.in_ch, spec.exp_ch)
            self.exp_norm = norm2d(spec.exp_ch)
            self.exp_act = DynamicWrapper(activation(spec.act))
        self.depth_conv = conv(spec.exp_ch, spec.exp_ch, spec.kernel, stride, spec.exp_ch)
        self.depth_norm = norm2d(spec.exp_ch)
        if no_dyrelu:
            self.depth_act = DynamicWrapper(activation(spec.act))
        else:
            self.depth_act = DyReLUB(spec.exp_ch, context_dim, M=dyrelu_k)
        self.ca = DynamicWrapper(nn.Identity()) if no_ca else CoordAtt()
        self.proj_conv = conv(spec.exp_ch, spec.out_ch)
        self.proj_norm = norm2d(spec.out_ch)
        self.context_gen = ContextGen(context_dim, spec.in_ch, spec.exp_ch, stride)
        self.use_res_connect = spec.stride == 1 and spec.in_ch == spec.out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.context_gen(x)
        inp = x
        if self.has_expand:
            x = self.exp_act(self.exp_norm(self.exp_conv(x, g)), g)
        x = self.depth_act(self.depth_norm(self.depth_conv(x, g)), g)
        x = self.ca(x, g)
        x = self.proj_norm(self.proj_conv(x, g))
        if self.use_res_connect:
            x = x + inp
        return x
