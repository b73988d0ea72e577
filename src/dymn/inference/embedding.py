"""Embeddings: one vector per clip (the pooled last feature map) and, optionally, one per window."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.io import load_audio
from ..models.info import check_scores
from ..util.atomic import atomic_write
from ..util.errors import AudioError, ScoresError
from .scoring import timeline
from .tagging import MAX_CLIP_SECONDS, Tagger
from .timelines import check_window_hop


@dataclass
class Embeddings:
    files: list[str]
    durations: np.ndarray  # (N,) seconds
    clip: np.ndarray  # (N, D)
    model: str
    window_file: np.ndarray | None = None  # (M,) index into files
    window_start: np.ndarray | None = None  # (M,) seconds
    window_end: np.ndarray | None = None
    window: np.ndarray | None = None  # (M, D)

    def save(self, path: str | os.PathLike) -> Path:
        """Write an .npz atomically (arrays named as the attributes)."""
        arrays = {"files": np.asarray(self.files, dtype=str), "durations": self.durations,
                  "embeddings": self.clip, "model": np.asarray(self.model)}  # fmt: skip
        if self.window is not None:
            arrays.update(window_file=self.window_file, window_start=self.window_start,
                          window_end=self.window_end, window_embeddings=self.window)  # fmt: skip

        def write(tmp: str) -> None:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            Path(tmp).write_bytes(buf.getvalue())

        return atomic_write(Path(path), write)


def embed(
    paths: Sequence[str | os.PathLike],
    model=None,
    timestamps: bool = False,
    window: float = 10.0,
    hop: float = 1.0,
    batch_size: int = 8,
    device: str = "cpu",
    on_error: Callable[[str, str], None] | None = None,
) -> Embeddings:
    """Clip embeddings of audio files (each file whole, as ``dymn tag`` sees it); with ``timestamps``
    also per-window embeddings with their start and end times. Unreadable files go to ``on_error``.

    ``model`` is anything :func:`dymn.load` takes, or a ready :class:`~dymn.Tagger`."""
    if timestamps:
        check_window_hop(window, hop)  # before any model work
    tagger = model if isinstance(model, Tagger) else Tagger(model, device=device, batch_size=batch_size)
    files, durations, clips = [], [], []
    w_file, w_start, w_end, w_emb = [], [], [], []
    for p in paths:
        try:
            wave = load_audio(p, tagger.sample_rate, max_seconds=MAX_CLIP_SECONDS)
        except AudioError as exc:
            if on_error is None:
                raise
            on_error(str(p), str(exc))
            continue
        try:
            _, emb = tagger.run_batch(wave[None])
            check_scores(emb, str(p))
            tl = timeline(wave, window=window, hop=hop, tagger=tagger, embeddings=True) if timestamps else None
        except ScoresError as exc:
            if on_error is None:
                raise
            on_error(str(p), str(exc))
            continue
        if tl is not None:
            w_file.append(np.full(len(tl.starts), len(files)))
            w_start.append(tl.starts)
            w_end.append(tl.ends)
            w_emb.append(tl.embeddings)
        files.append(str(p))
        durations.append(len(wave) / tagger.sample_rate)
        clips.append(emb[0])
    dim = tagger.info.embed_dim or (clips[0].shape[0] if clips else 0)
    result = Embeddings(
        files,
        np.asarray(durations, dtype=np.float64),
        np.stack(clips) if clips else np.zeros((0, dim), np.float32),
        tagger.info.name,
    )
    if timestamps:
        result.window_file = np.concatenate(w_file) if w_file else np.zeros(0, int)
        result.window_start = np.concatenate(w_start) if w_start else np.zeros(0)
        result.window_end = np.concatenate(w_end) if w_end else np.zeros(0)
        result.window = np.concatenate(w_emb) if w_emb else np.zeros((0, dim), np.float32)
    return result
