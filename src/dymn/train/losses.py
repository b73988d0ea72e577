"""Losses and mixup of the training recipes."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mixup_lambdas(batch: int, alpha: float, generator: torch.Generator | None = None):
    """(permutation, per-example lambda folded to >= 0.5), lambda ~ Beta(alpha, alpha)."""
    perm = torch.randperm(batch, generator=generator)
    # Beta(a, a) as G1 / (G1 + G2) with Gamma(a) draws, so the generator decides everything
    g1 = torch._standard_gamma(torch.full((batch,), float(alpha)), generator=generator)
    g2 = torch._standard_gamma(torch.full((batch,), float(alpha)), generator=generator)
    lam = g1 / (g1 + g2)
    return perm, torch.maximum(lam, 1 - lam)


def mix(x: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """lam_i * x_i + (1 - lam_i) * x_perm(i), broadcast over the trailing axes."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    lam = lam.to(x.dtype).reshape(shape)
    return lam * x + (1 - lam) * x[perm]


def label_loss(logits: torch.Tensor, target: torch.Tensor, multilabel: bool,
               mask: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """BCE for multi-label (masked entries excluded from the mean), CE with soft targets otherwise."""
    if not multilabel:
        return torch.sum(-target * F.log_softmax(logits, dim=1), dim=1).mean()
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if mask is None:
        return loss.mean()
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


def kd_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """BCE of the student's logits against the teacher's probabilities, averaged over the clips
    that have a teacher prediction (the reference zeroes missing ones but still counts them)."""
    per_clip = F.binary_cross_entropy_with_logits(logits, teacher_probs, reduction="none").mean(dim=1)
    if valid is None:
        return per_clip.mean()
    valid = valid.to(per_clip.dtype)
    return (per_clip * valid).sum() / valid.sum().clamp_min(1.0)
