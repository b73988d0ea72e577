"""HEAR 2021 API (``load_model``, ``get_scene_embeddings``, ``get_timestamp_embeddings``).

Conventions follow the EfficientAT HEAR wrapper: timestamp embeddings from 160 ms windows every 50 ms
(audio reflect-padded by half a window, so timestamp k*50 ms is the centre of its window); scene
embeddings from the whole clip, or for clips over 10 s the mean of 10 s windows every 2.5 s.
The embedding is the model's pooled last feature map (960-d for width 1.0).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..util.errors import UsageError
from .tagging import Tagger

TIMESTAMP_WINDOW_S = 0.16
TIMESTAMP_HOP_S = 0.05
SCENE_WINDOW_S = 10.0
SCENE_HOP_S = 2.5


class HearModel:
    """A model with its frontend, as the HEAR tools expect (``sample_rate`` and embedding sizes).

    Windows are embedded as they are (no padding to the training length), as in the EfficientAT
    HEAR wrapper.
    """

    def __init__(self, model, batch_size: int = 64):
        self.tagger = Tagger(model, batch_size=batch_size, pad=False)
        self.info = self.tagger.info
        self.sample_rate = self.info.sample_rate
        self.scene_embedding_size = self.info.embed_dim
        self.timestamp_embedding_size = self.info.embed_dim
        self.batch_size = batch_size

    def embed_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, samples) equal-length windows -> (N, D) embeddings, in batches."""
        out = [torch.from_numpy(self.tagger.run_batch(windows[i : i + self.batch_size])[1])
               for i in range(0, windows.shape[0], self.batch_size)]  # fmt: skip
        return torch.cat(out)


def load_model(model_file_path: str = "", model_name: str = "dymn10_as") -> HearModel:
    """Load a HEAR model: a weights file (a dymn checkpoint, or a plain state dict of ``model_name``'s
    architecture), a registry name, or ``model_name``'s released weights when ``model_file_path`` is empty."""
    from ..hub.loader import load
    from ..models.checkpoint import load_checkpoint

    if model_file_path and Path(model_file_path).is_file() and not model_file_path.endswith(".onnx"):
        ckpt = load_checkpoint(model_file_path)
        return HearModel(load(None if ckpt.self_describing else model_name, weights=ckpt))
    return HearModel(load(model_file_path or model_name))


def _check_audio(audio: torch.Tensor) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
        raise UsageError("audio must be a tensor of shape (n_sounds, n_samples)")
    return audio.detach().float().cpu()


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sounds, n_timestamps, D) embeddings and (n_sounds, n_timestamps) timestamps in ms."""
    audio = _check_audio(audio)
    n, samples = audio.shape
    win = round(TIMESTAMP_WINDOW_S * model.sample_rate)
    hop = round(TIMESTAMP_HOP_S * model.sample_rate)
    half = win // 2
    mode = "reflect" if samples > half else "constant"
    padded = F.pad(audio.unsqueeze(1), (half, half), mode=mode).squeeze(1)
    count = samples // hop + 1
    idx = torch.arange(count)[:, None] * hop + torch.arange(win)[None, :]
    padded = F.pad(padded, (0, max(0, int(idx.max()) + 1 - padded.shape[1])))
    windows = padded[:, idx]  # (n, count, win)
    emb = model.embed_windows(windows.reshape(n * count, win)).reshape(n, count, -1)
    timestamps = (torch.arange(count, dtype=torch.float32) * hop / model.sample_rate * 1000).expand(n, count)
    return emb, timestamps.contiguous()


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """(n_sounds, D): the whole clip's embedding, or the mean over 10 s windows for longer clips."""
    audio = _check_audio(audio)
    n, samples = audio.shape
    win = round(SCENE_WINDOW_S * model.sample_rate)
    if samples <= win:
        return model.embed_windows(audio)
    from .timelines import window_starts

    starts = window_starts(samples, win, round(SCENE_HOP_S * model.sample_rate))
    windows = torch.stack([audio[:, s : s + win] for s in starts], dim=1)  # (n, W, win)
    emb = model.embed_windows(windows.reshape(-1, win)).reshape(n, len(starts), -1)
    return emb.mean(dim=1)
