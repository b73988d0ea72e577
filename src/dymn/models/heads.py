"""Classification heads shared by MN and DyMN (state-dict names follow the released checkpoints)."""

from __future__ import annotations

import torch
from torch import nn

from .configs import HEAD_TYPES


class MultiHeadAttentionPooling(nn.Module):
    """PSLA-style attention pooling over time: sigmoid attention, identity values, weighted heads."""

    def __init__(self, in_dim: int, out_dim: int, num_heads: int = 4, epsilon: float = 1e-7):
        super().__init__()
        self.out_dim = out_dim
        self.num_heads = num_heads
        self.epsilon = epsilon
        self.subspace_proj = nn.Linear(in_dim, out_dim * 2 * num_heads)
        self.head_weight = nn.Parameter(torch.full((1, num_heads, 1), 1.0 / num_heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=2).transpose(1, 2)  # (B, T, C): frequency averaged away
        b, n, _ = x.shape
        x = self.subspace_proj(x).reshape(b, n, 2, self.num_heads, self.out_dim)
        x = x.permute(2, 0, 3, 1, 4)  # (2, B, heads, T, classes)
        att, val = x[0], x[1]
        att = torch.sigmoid(att).clamp(self.epsilon, 1.0 - self.epsilon)
        att = att / att.sum(dim=2, keepdim=True)
        out = (att * val).sum(dim=2) * self.head_weight
        return out.sum(dim=1)


def make_head(head_type: str, in_ch: int, hidden: int, num_classes: int, heads: int = 4) -> nn.Module:
    """Build a classifier head; ``in_ch`` is the channel count of the last feature map."""
    if head_type == "mlp":
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(in_ch, hidden),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=0.2),
            nn.Linear(hidden, num_classes),
        )
    if head_type == "fully_convolutional":
        # torch's default BatchNorm settings here, unlike the feature extractor (as released)
        return nn.Sequential(
            nn.Conv2d(in_ch, num_classes, 1, bias=False),
            nn.BatchNorm2d(num_classes),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
    if head_type == "multihead_attention_pooling":
        return MultiHeadAttentionPooling(in_ch, num_classes, num_heads=heads)
    raise ValueError(f"unknown head_type {head_type!r}; choose one of {', '.join(HEAD_TYPES)}")


def last_layer_keys(head_type: str) -> tuple[str, ...]:
    """State-dict key prefixes of the layer that maps to classes (dropped when num_classes changes)."""
    return {
        "mlp": ("classifier.5.",),
        "fully_convolutional": ("classifier.0.", "classifier.1."),
        "multihead_attention_pooling": ("classifier.subspace_proj.",),
    }[head_type]


def reset_last_layer(model: nn.Module, head_type: str) -> None:
    """Re-initialise the class layer the way a fresh model would be."""
    head = model.classifier
    if head_type == "mlp":
        nn.init.normal_(head[5].weight, 0, 0.01)
        nn.init.zeros_(head[5].bias)
    elif head_type == "fully_convolutional":
        nn.init.kaiming_normal_(head[0].weight, mode="fan_out")
        head[1].reset_parameters()
    else:
        nn.init.normal_(head.subspace_proj.weight, 0, 0.01)
        nn.init.zeros_(head.subspace_proj.bias)
