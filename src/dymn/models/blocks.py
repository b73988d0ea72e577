"""The MobileNetV3 blocks that MN, DyMN and the frame-level FrameMN share (state-dict names as released):
squeeze-excitation along any axis and the inverted residual. The architectures import these, never each other."""

from __future__ import annotations

import torch
from torch import nn

from .configs import SE_AXES
from .layers import BlockSpec, ConvNormAct, make_divisible


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
