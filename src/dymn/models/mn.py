"""MN: the MobileNetV3-based audio tagger (EfficientAT ``models/mn``), checkpoint-compatible."""

from __future__ import annotations

import torch
from torch import nn

from .configs import SE_AXES, MNConfig
from .heads import make_head
from .layers import BlockSpec, ConvNormAct, block_table, conv_out_size, flatten_outputs, init_weights, make_divisible
from .network import NetworkMixin


class SqueezeExcitation(nn.Module):
    """SE along one axis (channel, frequency or time): mean-pool the others, MLP, sigmoid gate."""

    def __init__(self, input_dim: int, squeeze_dim: int, axis: int):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, squeeze_dim)
        self.fc2 = nn.Linear(squeeze_dim, input_dim)
        self.axis = axis
        self.input_dim = input_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[self.axis] != self.input_dim:
            name = "frequency" if self.axis == 2 else "time"
            raise ValueError(
                f"this model's {name} squeeze-excitation was built for size {self.input_dim} at this "
                f"layer but got {x.shape[self.axis]}; build it with input_dim_f/input_dim_t matching "
                "the input"
            )
        others = [d for d in (1, 2, 3) if d != self.axis]
        # the squeezed axis last, by explicit permutations (movedim's -1 became an invalid ONNX Transpose)
        perm = [0, *others, self.axis]
        s = x.mean(dim=others, keepdim=True).permute(perm)
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * s.permute([perm.index(i) for i in range(4)])


class ConcurrentSEBlock(nn.Module):
    """One SE per selected axis, outputs aggregated elementwise (key ``conc_se_layers.*``)."""

    def __init__(self, dims: dict[str, int], se_dims: str, se_r: int, agg: str):
        super().__init__()
        self.conc_se_layers = nn.ModuleList(
            SqueezeExcitation(dims[d], make_divisible(dims[d] // se_r, 8), SE_AXES[d]) for d in se_dims
        )
        self.agg = agg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.conc_se_layers) == 1:
            return self.conc_se_layers[0](x)
        outs = torch.stack([se(x) for se in self.conc_se_layers], dim=0)
        if self.agg == "max":
            return outs.max(dim=0).values
        if self.agg == "min":
            return outs.min(dim=0).values
        if self.agg == "avg":
            return outs.mean(dim=0)
        return outs.sum(dim=0)


class InvertedResidual(nn.Module):
    """MobileNetV3 inverted residual; its only child is ``block`` (expand, depthwise, SE, project)."""

    def __init__(
        self,
        spec: BlockSpec,
        se_dims: str = "none",
        se_r: int = 4,
        se_agg: str = "max",
        fdim: int = 0,
        tdim: int = 0,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        if spec.exp_ch != spec.in_ch:
            layers.append(ConvNormAct(spec.in_ch, spec.exp_ch, 1, act=spec.act))
        stride = 1 if spec.dilation > 1 else spec.stride
        layers.append(
            ConvNormAct(
                spec.exp_ch,
                spec.exp_ch,
                spec.kernel,
                stride,
                groups=spec.exp_ch,
                dilation=spec.dilation,
                act=spec.act,
            )
        )
        if spec.use_se and se_dims != "none":
            dims = {"c": spec.exp_ch, "f": fdim, "t": tdim}
            layers.append(ConcurrentSEBlock(dims, se_dims, se_r, se_agg))
        layers.append(ConvNormAct(spec.exp_ch, spec.out_ch, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = spec.stride == 1 and spec.in_ch == spec.out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = out + x
        return out


class MN(NetworkMixin, nn.Module):
    """MobileNetV3 audio tagger: (B, 1, n_mels, T) -> (logits (B, C), embedding (B, D))."""

    arch = "mn"

    def __init__(self, config: MNConfig | None = None, **kwargs):
        super().__init__()
        config = config or MNConfig(**kwargs)
        self.config = config
        blocks, last_channel = block_table(config.width_mult, config.strides, config.reduced_tail, config.dilated)
        c0 = blocks[0].in_ch
        layers: list[nn.Module] = [ConvNormAct(1, c0, 3, stride=2, act="HS")]
        # SE on the frequency / time axis needs the map size at each block: follow it from the input size
        f = conv_out_size(config.input_dim_f, 3, 2, 1)
        t = conv_out_size(config.input_dim_t, 3, 2, 1)
        for spec in blocks:
            s = 1 if spec.dilation > 1 else spec.stride
            pad = (spec.kernel - 1) // 2 * spec.dilation
            f = conv_out_size(f, spec.kernel, s, pad, spec.dilation)
            t = conv_out_size(t, spec.kernel, s, pad, spec.dilation)
            layers.append(InvertedResidual(spec, config.se_dims, config.se_r, config.se_agg, f, t))
        c_last = blocks[-1].out_ch
        self.embed_dim = 6 * c_last
        layers.append(ConvNormAct(c_last, self.embed_dim, 1, act="HS"))
        self.features = nn.Sequential(*layers)
        self.classifier = make_head(
            config.head_type,
            self.embed_dim,
            last_channel,
            config.num_classes,
            config.multihead_attention_heads,
        )
        init_weights(self)
        self._init_info()

    def forward(self, x: torch.Tensor, return_fmaps: bool = False):
        """Return ``(logits, embedding)``; with ``return_fmaps`` also the 17 intermediate maps."""
        fmaps = []
        for layer in self.features:
            x = layer(x)
            if return_fmaps:
                fmaps.append(x)
        b = x.shape[0]
        embedding = x.mean(dim=(2, 3))
        logits = flatten_outputs(self.classifier(x), b)
        if return_fmaps:
            return logits, embedding, fmaps
        return logits, embedding
