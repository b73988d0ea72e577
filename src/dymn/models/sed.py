"""Frame-level MobileNets for sound event detection (PretrainedSED ``frame_mnXX``, EfficientSED ``fmnXX`` with
an optional sequence model), checkpoint-exact; see the SED specification (sections 3-6).

(B, 1, 128, T) log-mels at 16 kHz -> strong logits (B, 447, 250) and weak logits (B, 447). The backbone is
EfficientAT's MN with per-block (frequency, time) strides and no classifier: frequency reaches 1, time keeps a
quarter of the frame rate; the frame sequence is resampled to 250 frames, optionally passed through a rotary
Transformer, a bidirectional GRU or a minGRU/attention hybrid, and mapped to classes per frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConcurrentSEBlock
from .configs import FrameMNConfig
from .layers import ConvNormAct, block_table
from .network import NetworkMixin

# (frequency, time) stride of each of the 15 inverted-residual blocks (spec section 3)
FRAME_STRIDES = ((1, 1), (2, 2), (2, 1), (1, 1), (1, 1), (2, 1), (1, 1), (2, 1), (1, 1), (1, 1), (2, 1),
                 (1, 1), (1, 1), (1, 1), (2, 1))  # fmt: skip


class FrameInvertedResidual(nn.Module):
    """MobileNetV3 inverted residual with a (frequency, time) stride on its depthwise conv."""

    def __init__(self, in_ch: int, kernel: int, exp_ch: int, out_ch: int, use_se: bool, act: str, stride):
        super().__init__()
        layers: list[nn.Module] = []
        if exp_ch != in_ch:
            layers.append(ConvNormAct(in_ch, exp_ch, 1, act=act))
        layers.append(ConvNormAct(exp_ch, exp_ch, kernel, stride, groups=exp_ch, act=act))
        if use_se:
            layers.append(ConcurrentSEBlock({"c": exp_ch}, "c", 4, "max"))
        layers.append(ConvNormAct(exp_ch, out_ch, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = tuple(stride) == (1, 1) and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


class FrameBackbone(nn.Module):
    """``features``: (B, 1, F, T) -> (B, T/4, 6C) frame sequence (frequency strided down to 1)."""

    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        blocks, _ = block_table(width_mult)
        layers: list[nn.Module] = [ConvNormAct(1, blocks[0].in_ch, 3, stride=2, act="HS")]
        for spec, stride in zip(blocks, FRAME_STRIDES):
            layers.append(FrameInvertedResidual(spec.in_ch, spec.kernel, spec.exp_ch, spec.out_ch, spec.use_se,
                                                spec.act, stride))  # fmt: skip
        self.embed_dim = 6 * blocks[-1].out_ch
        layers.append(ConvNormAct(blocks[-1].out_ch, self.embed_dim, 1, act="HS"))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if x.shape[2] != 1:
            raise ValueError(f"the frequency axis must reach 1 (at most 128 mel bins), got {x.shape[2]}")
        return x.squeeze(2).permute(0, 2, 1)


# --- sequence models (spec section 5) ---------------------------------------------------------------
class RMSNorm(nn.Module):
    """x / max(||x||, 1e-12) * sqrt(size) * gamma over the last axis."""

    def __init__(self, size: int):
        super().__init__()
        self.scale = size**0.5
        self.gamma = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:  # (B, N, h*d) -> (B, h, N, d)
    b, n, _ = x.shape
    return x.reshape(b, n, h, -1).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:  # (B, h, N, d) -> (B, N, h*d)
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class RotaryEmbedding(nn.Module):
    """rotary-embedding-torch's defaults: theta 10000, interleaved pairs, the whole head dim rotated."""

    def __init__(self, dim: int):
        super().__init__()
        freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
        self.freqs = nn.Parameter(freqs, requires_grad=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # t: (B, H, N, d)
        pos = torch.arange(t.shape[-2], device=t.device, dtype=self.freqs.dtype)
        ang = (pos[:, None] * self.freqs[None, :]).repeat_interleave(2, dim=-1).to(t.dtype)
        pairs = t.unflatten(-1, (-1, 2))
        rot = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return t * ang.cos() + rot * ang.sin()


class Attention(nn.Module):
    """Pre-norm multi-head attention with rotary positions and per-head sigmoid gates."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.pos_encoding = RotaryEmbedding(dim // heads)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(dim, dim, bias=False), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = self.norm(x)
        q, k, v = (_heads(t, self.heads) for t in self.to_qkv(xn).chunk(3, dim=-1))
        q, k = self.pos_encoding(q), self.pos_encoding(k)
        o = F.scaled_dot_product_attention(q, k, v)
        o = o * torch.sigmoid(self.to_gates(xn)).transpose(1, 2).unsqueeze(-1)
        return self.to_out(_merge(o))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(RMSNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim * mult, dim), nn.Dropout(dropout))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dropout: float = 0.2):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, heads, dropout), FeedForward(dim, 4, dropout)]) for _ in range(depth)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


class BiGRU(nn.Module):
    def __init__(self, in_dim: int, dim: int, depth: int):
        super().__init__()
        self.gru = nn.GRU(in_dim, dim, num_layers=depth, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class MinGRU(nn.Module):
    """minGRU (no output projection), computed in log space in parallel as the reference does."""

    def __init__(self, dim: int):
        super().__init__()
        self.to_hidden_and_gate = nn.Linear(dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.to_hidden_and_gate(x).chunk(2, dim=-1)
        log_coeffs = -F.softplus(gate)  # log(1 - z)
        log_z = -F.softplus(-gate)
        log_tilde_h = torch.where(hidden >= 0, torch.log(F.relu(hidden) + 0.5), -F.softplus(-hidden))
        a_star = log_coeffs.cumsum(dim=1)
        log_h = a_star + torch.logcumsumexp(log_z + log_tilde_h - a_star, dim=1)
        return log_h.exp()


class BidirectionalMinGRU(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.forward_minGRU = MinGRU(dim)
        self.backward_minGRU = MinGRU(dim)
        self.to_out = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fwd = self.forward_minGRU(x)
        bwd = self.backward_minGRU(x.flip(1)).flip(1)
        return self.to_out(torch.cat([fwd, bwd], dim=-1))


class MinGRUAttnHybrid(nn.Module):
    """Hymba-style: a bidirectional minGRU and plain attention side by side, each head-normed, averaged."""

    def __init__(self, dim: int, heads: int = 8):
        super().__init__()
        self.heads = heads
        d = dim // heads
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.rnn = BidirectionalMinGRU(dim)
        self.rnn_out_norm = RMSNorm(d)
        self.attn_out_norm = RMSNorm(d)
        self.to_out = nn.Linear(dim, dim, bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        q, k, v = (_heads(t, self.heads) for t in self.to_qkv(u).chunk(3, dim=-1))
        o = F.scaled_dot_product_attention(q, k, v)
        r = _heads(self.rnn(u), self.heads)
        return self.to_out(_merge(0.5 * self.rnn_out_norm(r) + 0.5 * self.attn_out_norm(o)))


class HybridWrapper(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int = 8):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    RMSNorm(dim),
                    MinGRUAttnHybrid(dim, heads),
                    RMSNorm(dim),
                    nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)),
                ]
            )  # fmt: skip
            for _ in range(depth)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm0, hybrid, norm2, ff in self.layers:
            x = hybrid(norm0(x)) + x
            x = ff(norm2(x)) + x
        return self.norm(x)


def sequence_model(kind: str | None, embed_dim: int, dim: int | None, depth: int = 2) -> tuple[nn.Module, int]:
    """The sequence model and its output width (spec section 5)."""
    if kind is None:
        return nn.Identity(), embed_dim
    proj = nn.Linear(embed_dim, dim) if embed_dim != dim else nn.Identity()
    if kind == "tf":
        heads = 8 if dim >= 128 else 4  # the reference switches to 4 heads below 128
        return nn.Sequential(proj, TransformerBlock(dim, depth, heads)), dim
    if kind == "gru":
        return nn.Sequential(BiGRU(embed_dim, dim, depth)), 2 * dim
    return nn.Sequential(proj, HybridWrapper(dim, depth, 8)), dim


class _Holder(nn.Module):
    """Keeps the reference's key prefix ``model.fmn.features.*``."""

    def __init__(self, width_mult: float):
        super().__init__()
        self.fmn = FrameBackbone(width_mult)


class FrameMN(NetworkMixin, nn.Module):
    """A frame-level SED network: (B, 1, 128, T) -> (strong (B, C, 250), weak (B, C)) logits."""

    arch = "fmn"
    level = "frame"

    def __init__(self, config: FrameMNConfig | None = None, **kwargs):
        super().__init__()
        self.config = config = config or FrameMNConfig(**kwargs)
        self.model = _Holder(config.width_mult)
        self.embed_dim = self.model.fmn.embed_dim
        self.seq_model, out_dim = sequence_model(config.seq_model_type, self.embed_dim, config.seq_model_dim,
                                                 config.seq_model_layers)  # fmt: skip
        self.strong_head = nn.Linear(out_dim, config.num_classes)
        self.weak_head = nn.Linear(out_dim, config.num_classes)
        self._init_weights()
        self._init_info()

    def last_layer_prefixes(self) -> tuple[str, ...]:
        return ("strong_head.", "weak_head.")

    def reset_last_layer(self) -> None:
        for head in (self.strong_head, self.weak_head):
            head.reset_parameters()

    def _init_weights(self) -> None:
        for m in self.model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone frames resampled to ``seq_len`` and passed through the sequence model: (B, seq_len, F)."""
        s = self.model.fmn(x)
        n = self.config.seq_len
        if s.shape[1] > n:
            s = F.adaptive_avg_pool1d(s.transpose(1, 2), n).transpose(1, 2)
        elif s.shape[1] < n:
            s = F.interpolate(s.transpose(1, 2), size=n, mode="linear", align_corners=False).transpose(1, 2)
        return self.seq_model(s)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.sequence(x)
        return self.strong_head(s).transpose(1, 2), self.weak_head(s.mean(dim=1))


def remap_keys(state_dict: dict) -> dict:
    """Released files' key names -> this module's: EfficientSED's three rules (``net.`` -> ``model.``,
    ``model.model.`` -> ``model.fmn.``, other keys lose their first 6 characters) and PretrainedSED's
    ``model.frame_mn.`` -> ``model.fmn.``; keys already in the final form are kept."""
    out = {}
    finals = ("model.fmn.", "seq_model.", "strong_head.", "weak_head.")
    for key, value in state_dict.items():
        k = key
        if k.startswith("model.frame_mn."):
            k = "model.fmn." + k[len("model.frame_mn.") :]
        elif not k.startswith(finals):
            if k.startswith("net."):
                k = "model." + k[4:]
            if k.startswith("model.model."):
                k = "model.fmn." + k[len("model.model.") :]
            elif not k.startswith("model.fmn."):
                k = k[6:]
        out[k] = value
    return out
