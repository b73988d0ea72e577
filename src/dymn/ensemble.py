"""Ensembles: several models, each with its own frontend, averaging logits on the same waveform."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .frontend import FrontendConfig, MelFrontend


class Ensemble(nn.Module):
    """Waveform (B, N) -> (mean of the members' logits, concatenated embeddings).

    Members may use different frontends (hop or mel variants); they must share sample rate and labels.
    Averaging is on logits, as in the reference's ensembles.
    """

    arch = "ensemble"
    takes_waveform = True
    pretrained_cfg = None

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        if len(models) < 1:
            raise ValueError("an ensemble needs at least one model")
        first = models[0]
        for m in models[1:]:
            if list(m.labels) != list(first.labels):
                raise ValueError(f"cannot ensemble {first.model_name} and {m.model_name}: their label sets differ")
            if m.frontend_config.sample_rate != first.frontend_config.sample_rate:
                raise ValueError(
                    f"cannot ensemble {first.model_name} and {m.model_name}: sample rates differ "
                    f"({first.frontend_config.sample_rate} vs {m.frontend_config.sample_rate} Hz)"
                )
        self.members = nn.ModuleList(models)
        self.frontends = nn.ModuleList(MelFrontend.from_config(m.frontend_config).eval() for m in models)
        self.labels = list(first.labels)
        self.model_name = "+".join(str(getattr(m, "model_name", "model")) for m in models)
        # sample rate (the only frontend field a waveform model's caller needs)
        self.frontend_config = FrontendConfig(sample_rate=first.frontend_config.sample_rate)
        self.embed_dim = sum(int(m.embed_dim) for m in models)

    def forward(self, wave: torch.Tensor):
        logits, embeddings = [], []
        for fe, m in zip(self.frontends, self.members):
            lo, emb = m(fe(wave).unsqueeze(1))
            logits.append(lo.float())
            embeddings.append(emb.float())
        return torch.stack(logits).mean(dim=0), torch.cat(embeddings, dim=1)


def create_ensemble(models: Sequence[str | nn.Module], pretrained: bool = True, fast: bool = True) -> Ensemble:
    """An :class:`Ensemble` from registry names (weights downloaded) or ready models.

    ``fast`` runs each member through :func:`dymn.optimize` (same outputs, faster inference).
    """
    from .factory import create_model
    from .optimize import optimize

    if isinstance(models, str):
        models = [m for m in models.split(",") if m]
    from .registry import get_pretrained_cfg

    for m in models:
        if isinstance(m, str):
            get_pretrained_cfg(m)  # an unknown name fails before anything is downloaded
    built = []
    for m in models:
        model = create_model(m, pretrained=pretrained) if isinstance(m, str) else m
        # plain MN / DyMN models get the fast path; optimized or exported ones are used as they are
        built.append(optimize(model) if fast and getattr(model, "arch", None) in ("mn", "dymn") else model)
    return Ensemble(built).eval()
