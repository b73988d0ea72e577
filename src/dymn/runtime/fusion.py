"""The PyTorch backend's module: an equivalent network with BatchNorm folded and batch-friendly dynamic
convolutions (:func:`fuse`).

Same call signature (spec in, ``(logits, embedding)`` out) and outputs equal to the original's within float
rounding; the original stays usable for training. Speed tricks live here; ``models/`` stays the readable reference.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..models.dy_blocks import CoordAtt, DYBlock, DynamicConv, DyReLUB
from ..models.network import is_network
from ..util.errors import UsageError
from .backends import Plan


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d):
    """Weights and bias of ``bn(conv(x))`` as a single conv; ``weight``'s first axis is out-channels."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    w = weight * scale.reshape(shape)
    b = (bias if bias is not None else torch.zeros_like(bn.running_mean)) - bn.running_mean
    return w, b * scale + bn.bias


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
    )
    w, b = fold_bn(conv.weight.detach(), None if conv.bias is None else conv.bias.detach(), bn)
    fused.weight.data.copy_(w)
    fused.bias.data.copy_(b)
    return fused


class FusedDynamicConv(nn.Module):
    """A DynamicConv with its BatchNorm folded in (scale into the K kernels, shift as a bias).

    Pointwise convs run as one batched matmul in the input's memory layout (NCHW or channels-last).
    Depthwise convs run each example's kernel as an ordinary depthwise conv (fast in both layouts);
    with ``static=True`` they instead run all K kernels as one static grouped conv and mix the K
    outputs per example (conv is linear in the kernel): slower, but free of batch-dependent shapes,
    which is what ONNX export with a dynamic batch axis needs.
    """

    def __init__(self, dconv: DynamicConv, bn: nn.BatchNorm2d | None, static: bool = False):
        super().__init__()
        self.k, self.out_ch, self.in_ch = dconv.k, dconv.out_ch, dconv.in_ch
        self.kernel_size, self.stride, self.padding = dconv.kernel_size, dconv.stride, dconv.padding
        self.dilation, self.groups = dconv.dilation, dconv.groups
        self.temperature = dconv.temperature
        self.static = static
        self.grouped_batches = False  # set by optimize() for GPUs
        self.residuals = copy.deepcopy(dconv.residuals)
        kernels = dconv.weight.detach().reshape(self.k, self.out_ch, -1)  # (K, out, in/g*kh*kw)
        if bn is not None:
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            kernels = kernels * scale.reshape(1, -1, 1)
            bias = bn.bias - bn.running_mean * scale
        else:
            bias = torch.zeros(self.out_ch)
        self.pointwise = self.kernel_size == 1 and self.groups == 1 and self.padding == 0
        self.register_buffer("weight", kernels.reshape(self.k, -1).contiguous())  # (K, out*in/g*kh*kw)
        self.register_buffer("bias", bias.detach().clone())
        if static and not self.pointwise:
            # (out*K, in/g, kh, kw): each group's K kernels adjacent, so output channel = c*K + k
            w = kernels.transpose(0, 1).reshape(self.out_ch * self.k, self.in_ch // self.groups, self.kernel_size, -1)
            self.register_buffer("static_weight", w.contiguous())

    def attention(self, h_c: torch.Tensor) -> torch.Tensor:
        logits = self.residuals(h_c.reshape(h_c.shape[0], -1))
        return torch.softmax(logits / self.temperature, dim=-1)

    def forward(self, x: torch.Tensor, g) -> torch.Tensor:
        att = self.attention(g[0])  # (B, K)
        b = x.shape[0]
        w = att @ self.weight  # per-example kernels, flat
        if b == 1 and not self.static:
            # one example: its mixed kernel is an ordinary conv kernel (oneDNN, any layout, bias fused)
            w = w.reshape(self.out_ch, self.in_ch // self.groups, self.kernel_size, self.kernel_size)
            return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.pointwise:
            if self.stride > 1:
                x = x[:, :, :: self.stride, :: self.stride]
            f, t = x.shape[2], x.shape[3]
            w = w.reshape(b, self.out_ch, self.in_ch)
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
                xt = x.permute(0, 2, 3, 1).reshape(b, f * t, self.in_ch)
                out = torch.baddbmm(self.bias.reshape(1, 1, -1), xt, w.transpose(1, 2))
                return out.reshape(b, f, t, self.out_ch).permute(0, 3, 1, 2)
            out = torch.baddbmm(self.bias.reshape(1, -1, 1), w, x.reshape(b, self.in_ch, f * t))
            return out.reshape(b, self.out_ch, f, t)
        if self.static:
            y = F.conv2d(x, self.static_weight, None, self.stride, self.padding, self.dilation, self.groups)
            y = y.reshape(b, self.out_ch, self.k, y.shape[2], y.shape[3])
            out = (y * att.reshape(b, 1, self.k, 1, 1)).sum(dim=2)
            return out + self.bias.reshape(1, -1, 1, 1)
        if self.grouped_batches:  # GPUs run the reference's B-group convolution well
            out = F.conv2d(
                x.reshape(1, -1, x.shape[2], x.shape[3]),
                w.reshape(b * self.out_ch, self.in_ch // self.groups, self.kernel_size, self.kernel_size),
                self.bias.repeat(b),
                self.stride,
                self.padding,
                self.dilation,
                self.groups * b,
            )
            return out.reshape(b, self.out_ch, out.shape[2], out.shape[3])
        w = w.reshape(b, self.out_ch, self.in_ch // self.groups, self.kernel_size, self.kernel_size)
        outs = [
            F.conv2d(x[i : i + 1], w[i], self.bias, self.stride, self.padding, self.dilation, self.groups)
            for i in range(b)
        ]
        return outs[0] if b == 1 else torch.cat(outs)


def _nhwc(x: torch.Tensor) -> torch.Tensor | None:
    """The (B, F, T, C) view of a channels-last map, or None for NCHW maps.

    Elementwise ops with per-channel coefficients and reductions over F or T run several times faster
    on this view than on the channels-last NCHW tensor itself (measured, torch 2.13 CPU).
    """
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return x.permute(0, 2, 3, 1)
    return None


class FastDyReLU(nn.Module):
    """DyReLU-B with fewer passes over the feature map (addcmul + in-place maximum)."""

    def __init__(self, act):
        super().__init__()
        self.channels, self.M = act.channels, act.M
        self.coef_net = copy.deepcopy(act.coef_net)
        self.register_buffer("lambdas", act.lambdas.clone())
        self.register_buffer("init_v", act.init_v.clone())

    def forward(self, x: torch.Tensor, g) -> torch.Tensor:
        b = x.shape[0]
        theta = 2 * torch.sigmoid(self.coef_net(g[0].reshape(b, -1))) - 1
        coefs = (theta.reshape(b, self.channels, 2 * self.M) * self.lambdas + self.init_v).to(x.dtype)
        xv = _nhwc(x)
        if xv is not None:
            c = coefs.permute(2, 0, 1).reshape(2 * self.M, b, 1, 1, self.channels)
            y = torch.addcmul(c[self.M], xv, c[0])
            for m in range(1, self.M):
                torch.maximum(y, torch.addcmul(c[self.M + m], xv, c[m]), out=y)
            return y.permute(0, 3, 1, 2)
        c = coefs.reshape(b, self.channels, 1, 1, 2 * self.M)
        y = torch.addcmul(c[..., self.M], x, c[..., 0])
        for m in range(1, self.M):
            y = torch.maximum(y, torch.addcmul(c[..., self.M + m], x, c[..., m]))
        return y


class FastContextGen(nn.Module):
    """ContextGen with its 1x1 convs on the (F+T)-long profile run as matrix products.

    Returns the coordinate-attention maps channels-last: (B, F', 1, C) and (B, 1, T', C).
    """

    def __init__(self, cg):
        super().__init__()
        joint = fuse_conv_bn(cg.joint_conv, cg.joint_norm)
        self.joint = nn.Linear(joint.in_channels, joint.out_channels)
        self.joint.weight.data.copy_(joint.weight.reshape(joint.out_channels, -1))
        self.joint.bias.data.copy_(joint.bias)
        self.conv_f = nn.Linear(cg.conv_f.in_channels, cg.conv_f.out_channels)
        self.conv_t = nn.Linear(cg.conv_t.in_channels, cg.conv_t.out_channels)
        for lin, conv in ((self.conv_f, cg.conv_f), (self.conv_t, cg.conv_t)):
            lin.weight.data.copy_(conv.weight.reshape(conv.out_channels, -1))
            lin.bias.data.copy_(conv.bias)
        pool = cg.pool_f
        self.stride = pool.stride[0] if isinstance(pool, nn.AvgPool2d) else 1

    def _pool(self, h: torch.Tensor) -> torch.Tensor:  # h: (B, L, H), pool along L
        if self.stride == 1:
            return h
        return F.avg_pool1d(h.transpose(1, 2), 3, self.stride, 1).transpose(1, 2)

    def forward(self, x: torch.Tensor):
        f = x.shape[2]
        if _nhwc(x) is None:  # NCHW (the OpenVINO graph): reduce first, then move only the small profiles
            seq = torch.cat([x.mean(dim=3), x.mean(dim=2)], dim=2).transpose(1, 2)  # (B, F+T, C)
        else:
            xv = x.permute(0, 2, 3, 1)  # (B, F, T, C); a free view for channels-last input
            seq = torch.cat([xv.mean(dim=2), xv.mean(dim=1)], dim=1)  # (B, F+T, C)
        h = F.hardswish(self.joint(seq))  # (B, F+T, H)
        h_c = h.mean(dim=1)
        g_cf = self.conv_f(self._pool(h[:, :f]))  # (B, F', C)
        g_ct = self.conv_t(self._pool(h[:, f:]))  # (B, T', C)
        return h_c, g_cf.unsqueeze(2), g_ct.unsqueeze(1)


class FastCoordAtt(nn.Module):
    def forward(self, x: torch.Tensor, g) -> torch.Tensor:
        a_f, a_t = torch.sigmoid(g[1]), torch.sigmoid(g[2])  # (B, F', 1, C), (B, 1, T', C)
        xv = _nhwc(x)
        if xv is not None:
            xv.mul_(a_f).mul_(a_t)
            return x
        return x * a_f.permute(0, 3, 1, 2) * a_t.permute(0, 3, 1, 2)


def fuse_sequentials(module: nn.Module) -> None:
    """Replace every (Conv2d, BatchNorm2d) pair inside an nn.Sequential by one biased conv."""
    for child in module.children():
        fuse_sequentials(child)
    if isinstance(module, nn.Sequential):
        mods = list(module._modules.items())
        for (n1, m1), (n2, m2) in zip(mods, mods[1:]):
            if isinstance(m1, nn.Conv2d) and isinstance(m2, nn.BatchNorm2d):
                module._modules[n1] = fuse_conv_bn(m1, m2)
                module._modules[n2] = nn.Identity()


def fuse_dy_block(block: DYBlock, static: bool = False) -> None:
    for prefix in ("exp", "depth", "proj"):
        conv = getattr(block, f"{prefix}_conv", None)
        if conv is None:
            continue
        norm = getattr(block, f"{prefix}_norm")
        if isinstance(conv, DynamicConv):
            setattr(block, f"{prefix}_conv", FusedDynamicConv(conv, norm, static=static))
        else:  # no_dyconv: a static conv in a wrapper
            conv.module = fuse_conv_bn(conv.module, norm)
        setattr(block, f"{prefix}_norm", nn.Identity())
    block.context_gen = FastContextGen(block.context_gen)
    if isinstance(block.depth_act, DyReLUB):
        block.depth_act = FastDyReLU(block.depth_act)
    if isinstance(block.ca, CoordAtt):
        block.ca = FastCoordAtt()


class OptimizedModel(nn.Module):
    """Inference-only wrapper: same call signature and ``info`` as the network it came from."""

    def __init__(self, net: nn.Module, dtype: torch.dtype, channels_last: bool, micro_batch: int | None):
        super().__init__()
        self.net = net
        self.dtype = dtype
        self.channels_last = channels_last
        self.micro_batch = micro_batch
        self.arch = net.arch
        self.config = net.config
        self.info = net.info
        self.embed_dim = net.embed_dim
        self.backend = "torch"
        precision = str(dtype).replace("torch.", "").replace("float32", "fp32")
        device = str(next(net.parameters()).device)
        self.plan = Plan("torch", micro_batch=micro_batch, precision=precision, device=device)

    def _run(self, x: torch.Tensor, return_fmaps: bool):
        x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x, return_fmaps=return_fmaps)

    def forward(self, x: torch.Tensor, return_fmaps: bool = False):
        mb = self.micro_batch
        if mb is None or x.shape[0] <= mb or return_fmaps:
            out = self._run(x, return_fmaps)
        else:
            # the early feature maps of a large batch overflow the caches; per-example chunks keep
            # every block's working set cache-resident (measured faster per clip, see benchmarks/)
            parts = [self._run(x[i : i + mb], False) for i in range(0, x.shape[0], mb)]
            out = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        if self.dtype != torch.float32:
            out = tuple(o.float() if isinstance(o, torch.Tensor) else o for o in out)
        return out


def auto_micro_batch(model: nn.Module, device: str | torch.device = "cpu") -> int | None:
    """PyTorch's rule of thumb, measured on a 2-core AVX-512 CPU (benchmarks/): narrow models run fastest on whole
    batches; for width >= 1 the early maps of large batches overflow the caches, chunks of 4 win."""
    wide = model.config.width_mult >= 1.0
    return 4 if wide and torch.device(device).type == "cpu" else None


@torch.no_grad()
def fuse(
    model: nn.Module,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    channels_last: bool = True,
    static_dynamic_convs: bool = False,
    micro_batch: int | None | str = "auto",
) -> OptimizedModel:
    """The PyTorch inference module of ``model``: BatchNorm folded, dynamic convolutions batched; outputs equal
    ``model``'s within 1e-4 in fp32; ``model`` itself is not modified. ``static_dynamic_convs`` runs depthwise
    dynamic convolutions as one static conv (batch-independent shapes, what ONNX export needs)."""
    if not is_network(model):
        raise UsageError(f"optimize() takes an MN or DyMN network, not {type(model).__name__}")
    if micro_batch == "auto":
        micro_batch = auto_micro_batch(model, device)
    net = copy.deepcopy(model).eval()
    for m in list(net.modules()):
        if isinstance(m, DYBlock):
            fuse_dy_block(m, static=static_dynamic_convs)
    fuse_sequentials(net)
    net = net.to(device=device, dtype=dtype)
    if torch.device(device).type == "cuda":
        for m in net.modules():
            if isinstance(m, FusedDynamicConv):
                m.grouped_batches = True
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    return OptimizedModel(net, dtype, channels_last, micro_batch).eval()
