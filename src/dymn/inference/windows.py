"""The window loop: audio of any length (a path, streamed from disk with bounded memory, or a waveform) scored
window by window by anything that scores batches of clips (:class:`WindowScorer`, e.g. a Tagger).

Windows start every ``hop`` seconds; the last window is aligned to the end of the audio so the tail is covered by a
full window. Audio shorter than one window is scored as a single window over the whole clip (exactly what
``dymn tag`` gives for it). Each window is scored exactly as ``dymn tag`` scores that excerpt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from ..audio.io import audio_info, stream_audio
from ..models.info import check_scores
from ..util import cancel
from .timelines import Timeline, check_window_hop


class WindowScorer(Protocol):
    """What the window loop needs of a model (a :class:`~dymn.inference.tagging.Tagger` offers it)."""

    sample_rate: int
    batch_size: int
    labels: Sequence[str]

    def run_batch(self, waves: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def probabilities(self, logits: np.ndarray) -> np.ndarray: ...


def window_timeline(
    tagger: WindowScorer,
    audio: str | os.PathLike | np.ndarray,
    window: float | None = None,
    hop: float | None = None,
    embeddings: bool = False,
    block_seconds: float = 60.0,
    progress: bool = False,
) -> Timeline:
    """Score ``audio`` with ``tagger`` in windows of ``window`` seconds (default 10) every ``hop`` (default 1),
    ``tagger.batch_size`` windows at a time; ``embeddings`` keeps each window's embedding; ``progress`` shows a
    bar (seconds of audio) on stderr."""
    window = 10.0 if window is None else window
    hop = 1.0 if hop is None else hop
    check_window_hop(window, hop)
    sr = tagger.sample_rate
    win, hop_n = max(1, round(window * sr)), max(1, round(hop * sr))

    if isinstance(audio, np.ndarray):
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError("a waveform must be a non-empty 1-D array at the model's sample rate")
        blocks: Iterator[np.ndarray] = iter([np.asarray(audio, dtype=np.float32)])
        source = "<array>"
    else:
        blocks = stream_audio(audio, sr, block_seconds)
        source = os.fspath(audio)
    from tqdm.auto import tqdm

    expected = None
    if progress and not isinstance(audio, np.ndarray):
        info = audio_info(audio)
        expected = info.frames / info.samplerate
    bar = tqdm(
        total=expected and round(expected, 1),
        unit="s",
        desc="timeline",
        disable=not progress,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]" if expected else None,
    )

    buf = np.zeros(0, np.float32)  # samples from buf_start on
    buf_start = 0
    total = 0
    next_start = 0
    pending: list[tuple[int, np.ndarray]] = []
    starts, probs, embs = [], [], []

    def flush():
        if not pending:
            return
        cancel.check()  # a service client that went away stops the work here
        batch = np.stack([w for _, w in pending])
        lo, emb = tagger.run_batch(batch)
        probs.append(check_scores(tagger.probabilities(lo), source))
        if embeddings:
            embs.append(check_scores(emb, source))
        starts.extend(s for s, _ in pending)
        pending.clear()

    for block in blocks:
        buf = np.concatenate([buf, block]) if len(buf) else block
        total += len(block)
        bar.update(len(block) / sr)
        while next_start + win <= total:  # a full window is available
            off = next_start - buf_start
            pending.append((next_start, buf[off : off + win].copy()))
            next_start += hop_n
            if len(pending) >= tagger.batch_size:
                flush()
        # drop what no later window needs, but keep one window's worth for an end-aligned last window
        drop = min(next_start, total - win) - buf_start
        if drop > 0:
            buf = buf[drop:]
            buf_start += drop
    # tail: audio shorter than a window, or a last partial hop -> one end-aligned window
    if total <= win:
        if not starts and not pending:
            pending.append((0, buf[:total].copy()))
    elif next_start - hop_n + win < total:
        start = total - win
        pending.append((start, buf[start - buf_start :].copy()))
    flush()
    bar.close()
    starts_s = np.asarray(starts, dtype=np.float64) / sr
    lengths = np.asarray([min(win, total) for _ in starts], dtype=np.float64) / sr
    return Timeline(
        labels=list(tagger.labels),
        starts=starts_s,
        ends=starts_s + lengths,
        probs=np.concatenate(probs) if probs else np.zeros((0, len(tagger.labels)), np.float32),
        duration=total / sr,
        window=window,
        hop=hop,
        source=source,
        embeddings=np.concatenate(embs) if embs else None,
    )
