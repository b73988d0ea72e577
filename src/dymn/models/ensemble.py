"""Ensembles: several models, each with its own frontend, averaging logits on the same waveform."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..audio.frontend import MelFrontend
from ..util.errors import UsageError
from .info import ModelInfo


class Ensemble(nn.Module):
    """Waveform (B, N) -> (mean of the members' logits, concatenated embeddings).

    Members may use different frontends (hop or mel variants); they must share sample rate, labels and
    task. Averaging is on logits, as in the reference's ensembles. Members run as given: :func:`dymn.load`
    ("a,b,c") optimizes networks for inference first.
    """

    arch = "ensemble"

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        if len(models) < 1:
            raise UsageError("an ensemble needs at least one model")
        first = models[0].info
        for m in models[1:]:
            info = m.info
            if info.labels != first.labels:
                raise UsageError(f"cannot ensemble {first.name} and {info.name}: their label sets differ")
            if info.sample_rate != first.sample_rate:
                raise UsageError(f"cannot ensemble {first.name} and {info.name}: sample rates differ "
                                 f"({first.sample_rate} vs {info.sample_rate} Hz)")  # fmt: skip
            if info.task != first.task:
                raise UsageError(f"cannot ensemble {first.name} ({first.task}) and {info.name} ({info.task})")
            if info.input != "spectrogram":
                raise UsageError(f"{info.name} takes waveforms (an ensemble or an export with its frontend) "
                                 "and cannot be an ensemble member")  # fmt: skip
        self.members = nn.ModuleList(models)
        self.frontends = nn.ModuleList(MelFrontend.from_config(m.info.frontend).eval() for m in models)
        self.info = ModelInfo(
            name="+".join(m.info.name for m in models), arch="ensemble", labels=first.labels,
            frontend=first.frontend, task=first.task, config={"members": [m.info.name for m in models]},
            embed_dim=sum(m.info.embed_dim for m in models), input="waveform",
            source="; ".join(m.info.source for m in models),
        )  # fmt: skip

    def forward(self, wave: torch.Tensor):
        logits, embeddings = [], []
        for fe, m in zip(self.frontends, self.members):
            lo, emb = m(fe(wave).unsqueeze(1))
            logits.append(lo.float())
            embeddings.append(emb.float())
        return torch.stack(logits).mean(dim=0), torch.cat(embeddings, dim=1)
