"""Knowledge-distillation teachers: a precomputed logits table, or registry models run online."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..datasets.common import DataError
from ..util.errors import UsageError


class _SafeUnpickler(pickle.Unpickler):
    """Only plain containers, strings and numbers: the official fname_to_index.pkl is a dict."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a teacher index")


def load_index(path: str | Path) -> dict[str, int]:
    """Clip id -> row of the teacher table, from .json, .csv (id,index) or the official .pkl."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such teacher index file")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        elif path.suffix == ".csv":
            with open(path, newline="") as f:
                data = {row[0]: int(row[1]) for row in csv.reader(f) if row and row[0] != "id"}
        else:
            with open(path, "rb") as f:
                data = _SafeUnpickler(f).load()
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise DataError(f"{path}: not a readable teacher index ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: a teacher index must map clip ids to row numbers")
    return {str(k): int(v) for k, v in data.items()}


class LogitsTable(nn.Module):
    """Teacher probabilities sigmoid(logits / T) looked up by clip id; unknown ids are marked invalid."""

    def __init__(self, logits_path: str | Path, index_path: str | Path, temperature: float = 1.0):
        super().__init__()
        logits_path = Path(logits_path)
        if not logits_path.is_file():
            raise DataError(f"{logits_path}: no such teacher logits file")
        try:
            logits = np.load(logits_path, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{logits_path}: not a numeric .npy array ({exc})") from None
        if logits.ndim != 2:
            raise DataError(f"{logits_path}: teacher logits must be (clips, classes), got {logits.shape}")
        self.index = load_index(index_path)
        bad = [v for v in self.index.values() if not 0 <= v < len(logits)]
        if bad:
            raise DataError(f"{index_path}: row {bad[0]} is outside the teacher table ({len(logits)} rows)")
        probs = torch.sigmoid(torch.from_numpy(logits.astype(np.float32)) / temperature)
        self.register_buffer("probs", probs, persistent=False)

    def forward(self, ids: list[str], wave=None) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.index.get(i, -1) for i in ids]
        valid = torch.tensor([r >= 0 for r in rows], device=self.probs.device)
        rows_t = torch.tensor([max(r, 0) for r in rows], device=self.probs.device)
        return self.probs[rows_t], valid


class OnlineTeacher(nn.Module):
    """Registry models (one or an ensemble) run in eval mode on the same waveforms."""

    def __init__(self, models: list | str, temperature: float = 1.0):
        """``models``: registry names ("a,b" or a list; released weights) or ready models."""
        super().__init__()
        from ..hub.loader import load
        from ..models.ensemble import Ensemble
        from ..models.network import is_network
        from ..runtime.api import optimize

        model = load(models) if isinstance(models, str) or all(isinstance(m, str) for m in models) else None
        if model is None:
            model = Ensemble([optimize(m) if is_network(m) else m for m in models])
        # a single network becomes a one-member ensemble: the teacher takes waveforms, with its own frontend
        if model.info.input != "waveform":
            model = Ensemble([optimize(model) if is_network(model) else model])
        self.ensemble = model.eval()
        for p in self.ensemble.parameters():
            p.requires_grad_(False)
        self.temperature = temperature

    def train(self, mode: bool = True):
        return super().train(False)  # always in eval mode

    @torch.no_grad()
    def forward(self, ids, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _ = self.ensemble(wave)
        return torch.sigmoid(logits / self.temperature), torch.ones(len(wave), dtype=torch.bool, device=wave.device)


def make_teacher(logits: str | None, index: str | None, names: str | None, temperature: float) -> nn.Module | None:
    """The knowledge-distillation teacher a run asks for: a logits table (``logits`` with its clip ``index``), an
    online ensemble of registry models (``names``), or None."""
    if bool(logits) != bool(index):
        raise UsageError("--teacher-logits and --teacher-index go together")
    if logits:
        return LogitsTable(logits, index, temperature)
    return OnlineTeacher(names, temperature) if names else None
