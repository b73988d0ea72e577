"""DyMN: Dynamic MobileNet audio tagger (EfficientAT ``models/dymn``), checkpoint-compatible."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import InvertedResidual
from .configs import DyMNConfig
from .dy_blocks import DYBlock, DynamicConv
from .heads import make_head
from .layers import ConvNormAct, block_table, flatten_outputs, init_weights, make_divisible
from .network import NetworkMixin


def context_dim(exp_ch: int, cfg: DyMNConfig) -> int:
    lo = make_divisible(cfg.min_context_size * cfg.width_mult, 8)
    hi = make_divisible(cfg.max_context_size * cfg.width_mult, 8)
    return int(min(max(make_divisible(exp_ch // cfg.context_ratio, 8), lo), hi))


class DyMN(NetworkMixin, nn.Module):
    """Dynamic MobileNet: (B, 1, n_mels, T) -> (logits (B, C), embedding (B, D)).

    The dynamic-convolution temperature starts at ``T_max``; models loaded with AudioSet weights
    are set to 1 by the factory. Use :meth:`set_temperature` / :meth:`update_temperature`.
    """

    arch = "dymn"

    def __init__(self, config: DyMNConfig | None = None, **kwargs):
        super().__init__()
        config = config or DyMNConfig(**kwargs)
        self.config = config
        blocks, last_channel = block_table(config.width_mult, config.strides)
        layers: list[nn.Module] = []
        for spec in blocks:
            if config.use_dy_blocks == "all" or spec.use_se:
                layers.append(
                    DYBlock(
                        spec,
                        context_dim(spec.exp_ch, config),
                        dyconv_k=config.dyconv_k,
                        temperature=config.T_max,
                        dyrelu_k=config.dyrelu_k,
                        no_dyrelu=config.no_dyrelu,
                        no_dyconv=config.no_dyconv,
                        no_ca=config.no_ca,
                    )
                )
            else:  # replace_se: the blocks without SE in MobileNetV3 stay static (and get no SE)
                layers.append(InvertedResidual(spec))
        # registered before the stem so that state-dict order equals the released files'
        self.layers = nn.ModuleList(layers)
        self.in_c = ConvNormAct(1, blocks[0].in_ch, 3, stride=2, act="HS")
        c_last = blocks[-1].out_ch
        self.embed_dim = 6 * c_last
        self.out_c = ConvNormAct(c_last, self.embed_dim, 1, act="HS")
        self.classifier = make_head(config.head_type, self.embed_dim, last_channel, config.num_classes)
        init_weights(self)
        self._init_info()

    def dynamic_convs(self) -> list[DynamicConv]:
        return [m for m in self.modules() if isinstance(m, DynamicConv)]

    @property
    def temperature(self) -> float:
        convs = self.dynamic_convs()
        return convs[0].temperature if convs else 1.0

    def set_temperature(self, t: float) -> None:
        """Set the softmax temperature of every dynamic convolution (1 for AudioSet checkpoints)."""
        if not t > 0:
            raise ValueError(f"temperature must be positive, got {t}")
        for m in self.dynamic_convs():
            m.temperature = float(t)

    def temperature_at(self, epoch: int) -> float:
        """The reference schedule for epoch e:
        max(T_max - T0_slope*e, 1 + T1_slope*(T_max-1)/T0_slope - T1_slope*e, T_min)."""
        c = self.config
        t0 = c.T_max - c.T0_slope * epoch
        t1 = 1 + c.T1_slope * (c.T_max - 1) / c.T0_slope - c.T1_slope * epoch
        return max(t0, t1, c.T_min)

    def update_temperature(self, epoch: int) -> float:
        """Apply the temperature schedule for ``epoch`` and return the new temperature."""
        t = self.temperature_at(epoch)
        self.set_temperature(t)
        return t

    def forward(self, x: torch.Tensor, return_fmaps: bool = False):
        """Return ``(logits, embedding)``; with ``return_fmaps`` also the 17 intermediate maps."""
        fmaps = []
        x = self.in_c(x)
        if return_fmaps:
            fmaps.append(x)
        for layer in self.layers:
            x = layer(x)
            if return_fmaps:
                fmaps.append(x)
        x = self.out_c(x)
        if return_fmaps:
            fmaps.append(x)
        b = x.shape[0]
        embedding = x.mean(dim=(2, 3))
        logits = flatten_outputs(self.classifier(x), b)
        if return_fmaps:
            return logits, embedding, fmaps
        return logits, embedding
