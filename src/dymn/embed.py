"""Embeddings: one vector per clip (the pooled last feature map) and, optionally, one per window."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .inference import Tagger, _decode
from .timeline import timeline


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
        from .hub import atomic_write

        path = Path(path)
        if not path.parent.is_dir():
            raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")
        arrays = {"files": np.asarray(self.files, dtype=str), "durations": self.durations,
                  "embeddings": self.clip, "model": np.asarray(self.model)}  # fmt: skip
        if self.window is not None:
            arrays.update(window_file=self.window_file, window_start=self.window_start,
                          window_end=self.window_end, window_embeddings=self.window)  # fmt: skip

        def write(tmp: str) -> None:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            Path(tmp).write_bytes(buf.getvalue())

        return atomic_write(path, write)


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
    also per-window embeddings with their start and end times. Unreadable files go to ``on_error``."""
    from .timeline import _resolve_model

    tagger = Tagger(_resolve_model(model), device=device, batch_size=batch_size)
    files, durations, clips = [], [], []
    w_file, w_start, w_end, w_emb = [], [], [], []
    for p in paths:
        wave = _decode(str(p), tagger.sample_rate)
        if isinstance(wave, str):
            if on_error:
                on_error(str(p), wave)
            continue
        _, emb = tagger.run_batch(wave[None])
        if timestamps:
            tl = timeline(wave, window=window, hop=hop, tagger=tagger, embeddings=True)
            w_file.append(np.full(len(tl.starts), len(files)))
            w_start.append(tl.starts)
            w_end.append(tl.ends)
            w_emb.append(tl.embeddings)
        files.append(str(p))
        durations.append(len(wave) / tagger.sample_rate)
        clips.append(emb[0])
    dim = int(getattr(tagger.model, "embed_dim", 0) or (clips[0].shape[0] if clips else 0))
    result = Embeddings(
        files,
        np.asarray(durations, dtype=np.float64),
        np.stack(clips) if clips else np.zeros((0, dim), np.float32),
        str(getattr(tagger.model, "model_name", "")),
    )
    if timestamps:
        result.window_file = np.concatenate(w_file) if w_file else np.zeros(0, int)
        result.window_start = np.concatenate(w_start) if w_start else np.zeros(0)
        result.window_end = np.concatenate(w_end) if w_end else np.zeros(0)
        result.window = np.concatenate(w_emb) if w_emb else np.zeros((0, dim), np.float32)
    return result
