"""MN: the MobileNetV3-based audio tagger (EfficientAT ``models/mn``), checkpoint-compatible."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import InvertedResidual
from .configs import MNConfig
from .heads import make_head
from .layers import ConvNormAct, block_table, conv_out_size, flatten_outputs, init_weights
from .network import NetworkMixin


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
