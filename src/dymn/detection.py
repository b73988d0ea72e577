"""Frame-level detection with the SED models: audio of any length in 10 s chunks, frame probabilities, median
filtering along time and events, exactly as the reference inference and decoding do (SED spec section 9).

The reference cuts audio into consecutive 10 s chunks (the last one zero-padded), runs each through the model
(250 frames of 40 ms), concatenates the frames, median-filters each class over 9 frames with reflected edges,
and turns each threshold's runs of frames above it into events. Frames in the padding get zero-length time
spans at the end of the audio, as in the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

CHUNK_SECONDS = 10.0
FRAME_SECONDS = 0.04  # 4 STFT hops of 10 ms per backbone frame, for a 10 s chunk


@dataclass(frozen=True)
class DetectedEvent:
    label: str
    onset: float
    offset: float

    def to_dict(self) -> dict:
        return {"label": self.label, "onset": round(self.onset, 6), "offset": round(self.offset, 6)}


def median_filter(scores: np.ndarray, size: int = 9) -> np.ndarray:
    """Median over ``size`` frames along axis 0 for each column, with reflected edges (``d c b a | a b c d``,
    scipy.ndimage's default ``reflect`` mode)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the median window must be a positive odd number of frames, got {size}")
    if size == 1 or len(scores) == 0:
        return np.asarray(scores, dtype=np.float64).copy()
    half = size // 2
    padded = np.pad(np.asarray(scores, dtype=np.float64), ((half, half), (0, 0)), mode="symmetric")
    windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=0)
    return np.median(windows, axis=-1)


def frame_times(n_frames: int, duration: float, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """(n_frames, 2) onset and offset of each frame, clipped to the audio's duration."""
    edges = np.clip(np.arange(n_frames + 1) * frame_seconds, 0.0, duration)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def find_events(active: np.ndarray, times: np.ndarray, labels: Sequence[str]) -> list[DetectedEvent]:
    """Each run of active frames of a class (``active`` (N, C) bool) as an event, in class then time order."""
    events = []
    edges = np.concatenate([times[:, 0], times[-1:, 1]]) if len(times) else np.zeros(1)
    for c in range(active.shape[1]):
        col = np.concatenate([[False], active[:, c], [False]]).astype(np.int8)
        changes = np.flatnonzero(np.diff(col))
        for start, stop in zip(changes[::2], changes[1::2]):
            events.append(DetectedEvent(labels[c], float(edges[start]), float(edges[stop])))
    return events


def decode(probs: np.ndarray, labels: Sequence[str], duration: float, thresholds: Sequence[float] = (0.5,),
           median: int = 9) -> tuple[np.ndarray, dict[float, list[DetectedEvent]]]:  # fmt: skip
    """Frame probabilities (N, C) -> (median-filtered scores, {threshold: events}); a frame is active where its
    filtered score is strictly above the threshold."""
    filtered = median_filter(probs, median)
    times = frame_times(len(probs), duration)
    return filtered, {float(t): find_events(filtered > t, times, labels) for t in thresholds}


def chunk_probabilities(model: torch.nn.Module, frontend: torch.nn.Module, wave: np.ndarray, sample_rate: int,
                        batch_size: int = 8) -> np.ndarray:  # fmt: skip
    """Sigmoid frame probabilities (n_chunks * 250, C) of a mono waveform: consecutive 10 s chunks, the last
    zero-padded, each through ``frontend`` and ``model`` (strong logits), frames concatenated."""
    chunk = int(round(CHUNK_SECONDS * sample_rate))
    n_chunks = max(1, -(-len(wave) // chunk))
    padded = np.zeros(n_chunks * chunk, np.float32)
    padded[: len(wave)] = wave
    chunks = torch.from_numpy(padded.reshape(n_chunks, chunk))
    out = []
    with torch.inference_mode():
        for s in range(0, n_chunks, batch_size):
            strong, _ = model(frontend(chunks[s : s + batch_size]).unsqueeze(1))
            out.append(torch.sigmoid(strong).transpose(1, 2).reshape(-1, strong.shape[1]))
    return torch.cat(out).numpy()
