"""Long audio: windowed class probabilities over time, streamed from disk with bounded memory, and events.

Windows start every ``hop`` seconds; the last window is aligned to the end of the audio so the tail is
covered by a full window. Audio shorter than one window is scored as a single window over the whole
clip (exactly what ``dymn tag`` gives for it). Each window is scored exactly as ``dymn tag`` scores that
excerpt: its own mel spectrogram, no padding.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write, write_text
from .audio import audio_info, stream_audio
from .errors import UsageError, printable


def window_starts(n_samples: int, win: int, hop: int) -> list[int]:
    """Window start samples: every ``hop``, the last one aligned to the end; one window if shorter."""
    if n_samples <= win:
        return [0]
    starts = list(range(0, n_samples - win + 1, hop))
    if starts[-1] + win < n_samples:
        starts.append(n_samples - win)
    return starts


@dataclass
class Timeline:
    """Class probabilities per window: ``probs[i]`` covers ``starts[i] .. ends[i]`` seconds."""

    labels: list[str]
    starts: np.ndarray
    ends: np.ndarray
    probs: np.ndarray  # (n_windows, n_classes)
    duration: float
    window: float
    hop: float
    source: str = ""
    embeddings: np.ndarray | None = None  # (n_windows, D) when requested

    @property
    def centers(self) -> np.ndarray:
        return (self.starts + self.ends) / 2

    @property
    def edges(self) -> np.ndarray:
        """Boundaries of the time span each window speaks for: halfway between neighbouring window
        centres, the first from the start of the audio, the last to its end. (n_windows + 1,)"""
        c = self.centers
        if len(c) == 0:
            return np.zeros(0)
        return np.concatenate([[self.starts[0]], (c[1:] + c[:-1]) / 2, [self.ends[-1]]])

    def top_classes(self, k: int = 8) -> list[int]:
        """Indices of the k classes with the highest peak probability over the whole timeline."""
        if len(self.probs) == 0:
            return []
        return [int(i) for i in np.argsort(-self.probs.max(axis=0), kind="stable")[:k]]

    def window_top(self, i: int, k: int) -> list[int]:
        """Indices of window ``i``'s ``k`` most probable classes (all with k <= 0)."""
        order = np.argsort(-self.probs[i], kind="stable")
        return [int(c) for c in (order if k <= 0 else order[:k])]

    def to_dict(self, events: list[Event] | None = None, top_k: int = 10, model: str | None = None) -> dict:
        """JSON-ready: events and, per window, its own ``top_k`` classes (0 = all classes)."""
        return {
            "file": self.source, "duration": round(self.duration, 4), "window": self.window, "hop": self.hop,
            "model": model,
            "events": [e.to_dict() for e in events or []],
            "windows": [
                {"start": round(float(s), 4), "end": round(float(e), 4),
                 "scores": {self.labels[c]: round(float(self.probs[i, c]), 4) for c in self.window_top(i, top_k)}}
                for i, (s, e) in enumerate(zip(self.starts, self.ends))
            ],
        }  # fmt: skip

    def to_json(self, events: list[Event] | None = None, top_k: int = 10, model: str | None = None) -> str:
        return json.dumps(self.to_dict(events, top_k, model), indent=1) + "\n"

    def to_text(self, events: list[Event] | None = None) -> str:
        """A header line and one line per event (labels with control characters escaped)."""
        n = len(self.starts)
        windows = f"{n} window{'s' if n != 1 else ''}"
        lines = [
            f"{printable(self.source)} ({self.duration:.2f} s, {windows} of {self.window:g} s every {self.hop:g} s)"
        ]
        for e in events or []:
            lines.append(f"  {e.onset:9.2f} - {e.offset:9.2f} s  {printable(e.label)} (peak {e.peak:.2f})")
        if not events:
            lines.append("  no events above the threshold")
        return "\n".join(lines) + "\n"

    @staticmethod
    def events_csv(events: list[Event], source: str = "") -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "label", "index", "onset", "offset", "peak"])
        for e in events:
            w.writerow([source, e.label, e.index, f"{e.onset:.3f}", f"{e.offset:.3f}", f"{e.peak:.4f}"])
        return buf.getvalue()

    def scores_csv(self) -> str:
        """Every window's probabilities: start, end, then one column per class in label order."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["start", "end", *self.labels])
        for s, e, p in zip(self.starts, self.ends, self.probs):
            w.writerow([f"{s:.3f}", f"{e:.3f}", *(f"{v:.4f}" for v in p)])
        return buf.getvalue()

    def write_scores(self, path: str | os.PathLike) -> Path:
        return write_text(path, self.scores_csv())


def check_window_hop(window: float, hop: float) -> None:
    """Window and hop in seconds: positive, finite, and the hop no larger than the window."""
    if not (window > 0 and math.isfinite(window)):
        raise UsageError(f"window must be a positive number of seconds, got {window}")
    if not (hop > 0 and math.isfinite(hop)):
        raise UsageError(f"hop must be a positive number of seconds, got {hop}")
    if hop > window:
        raise UsageError(f"hop ({hop} s) must not be larger than the window ({window} s): audio would be skipped")


def timeline(
    audio: str | os.PathLike | np.ndarray,
    model=None,
    window: float | None = None,
    hop: float | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    embeddings: bool = False,
    tagger=None,
    block_seconds: float = 60.0,
    progress: bool = False,
) -> Timeline:
    """Score ``audio`` (a path, streamed from disk, or a waveform at the model's rate) window by window.

    ``model`` is anything :func:`dymn.load` takes (default ``dymn10_as``); windows are batched
    ``batch_size`` at a time. ``progress`` shows a bar (seconds of audio) on stderr. A clip tagger scores
    windows of ``window`` seconds (default 10) every ``hop`` (default 1). A frame-level detector (``fmn...``)
    gives its 40 ms frames; with ``window``/``hop`` the peak of the frames in each window.
    ``tagger``: a :class:`~dymn.inference.Tagger` or :class:`~dymn.detection.Detector` to use instead of ``model``.
    """
    if tagger is None:
        from .detection import scorer

        tagger = scorer(model, device=device, batch_size=batch_size)
    if getattr(tagger.info, "level", "clip") == "frame":
        if embeddings:
            raise UsageError(f"{tagger.info.name} is a frame-level detector: it gives no window embeddings")
        return tagger.timeline(audio, window, hop)
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
        batch = np.stack([w for _, w in pending])
        lo, emb = tagger.run_batch(batch)
        probs.append(tagger.probabilities(lo))
        if embeddings:
            embs.append(emb)
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


@dataclass
class Event:
    label: str
    index: int
    onset: float
    offset: float
    peak: float

    def to_dict(self) -> dict:
        return {"label": self.label, "index": self.index, "onset": round(self.onset, 3),
                "offset": round(self.offset, 3), "peak": round(self.peak, 4)}  # fmt: skip


@dataclass
class EventConfig:
    """How window scores become events.

    A class is active where its (median-smoothed) score reaches ``threshold`` (a number or a
    per-label dict) and stays active while above ``low`` (hysteresis; default = threshold). Each
    window speaks for the span around its centre up to halfway to its neighbours (``Timeline.edges``);
    events closer than ``merge_gap`` merge, events shorter than ``min_duration`` are dropped.
    """

    threshold: float | dict[str, float] = 0.5
    low: float | dict[str, float] | None = None
    median: int = 3
    merge_gap: float = 0.0
    min_duration: float = 0.0
    classes: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("threshold", "low"):
            value = getattr(self, name)
            values = value.values() if isinstance(value, dict) else [] if value is None else [value]
            if any(not (isinstance(v, (int, float)) and 0 <= v <= 1) for v in values):
                raise UsageError(f"{name} must be between 0 and 1")
        if not isinstance(self.median, int) or self.median < 1 or self.median % 2 == 0:
            raise UsageError("median must be an odd number of windows (1 = no smoothing)")
        if not (self.merge_gap >= 0 and self.min_duration >= 0):
            raise UsageError("merge_gap and min_duration must not be negative")


def _per_class(value, labels: list[str], default: float) -> np.ndarray:
    if value is None:
        return np.full(len(labels), default)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(labels))
        if unknown:
            raise UsageError(f"threshold for unknown label(s): {', '.join(unknown)}")
        return np.array([value.get(lab, default) for lab in labels], dtype=np.float64)
    return np.full(len(labels), float(value))


def median_filter(x: np.ndarray, k: int) -> np.ndarray:
    """Median over ``k`` neighbouring windows (odd k; edges use the available neighbours)."""
    if k <= 1 or len(x) == 0:
        return x
    if k % 2 == 0:
        raise UsageError("median filter length must be odd")
    half = k // 2
    padded = np.pad(x, ((half, half), (0, 0)), mode="edge")
    stacked = np.stack([padded[i : i + len(x)] for i in range(k)])
    return np.median(stacked, axis=0)


def detect_events(tl: Timeline, cfg: EventConfig | None = None) -> list[Event]:
    """Events (label, onset, offset, peak probability) from a timeline, sorted by onset."""
    cfg = cfg or EventConfig()
    if len(tl.probs) == 0:
        return []
    high = _per_class(cfg.threshold, tl.labels, 0.5)
    low = _per_class(cfg.low, tl.labels, np.nan)
    low = np.where(np.isnan(low), high, low)
    if np.any(low > high):
        raise UsageError("the low (hysteresis) threshold must not exceed the threshold")
    scores = median_filter(tl.probs, cfg.median)
    edges = tl.edges
    wanted = None if cfg.classes is None else set(cfg.classes)
    events = []
    for c, label in enumerate(tl.labels):
        if wanted is not None and label not in wanted:
            continue
        col = scores[:, c]
        if col.max() < high[c]:
            continue
        i, n = 0, len(col)
        while i < n:
            if col[i] < high[c]:
                i += 1
                continue
            s = i
            while s > 0 and col[s - 1] >= low[c]:  # hysteresis: extend backwards too
                s -= 1
            e = i
            while e + 1 < n and col[e + 1] >= low[c]:
                e += 1
            onset, offset = edges[s], edges[e + 1]
            peak = float(tl.probs[s : e + 1, c].max())
            events.append(Event(label, c, float(onset), float(offset), peak))
            i = e + 1
    events = _merge(events, cfg.merge_gap)
    events = [e for e in events if e.offset - e.onset >= cfg.min_duration]
    return sorted(events, key=lambda e: (e.onset, e.index))


def _merge(events: list[Event], gap: float) -> list[Event]:
    out: list[Event] = []
    for ev in sorted(events, key=lambda e: (e.index, e.onset)):
        if out and out[-1].index == ev.index and ev.onset - out[-1].offset <= gap:
            last = out[-1]
            out[-1] = Event(last.label, last.index, last.onset, max(last.offset, ev.offset), max(last.peak, ev.peak))
        else:
            out.append(ev)
    return out


def plot_timeline(
    tl: Timeline,
    path: str | os.PathLike,
    top: int = 8,
    events: list[Event] | None = None,
    title: str | None = None,
) -> Path:
    """Draw classes over time (probability heat map, events outlined) to an image, atomically.

    The rows are the classes that have events (strongest first), then the classes with the highest peak
    probability, ``top`` rows in all (more if more classes have events).
    """
    from .errors import require

    matplotlib = require("matplotlib", "plot", "plotting")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    with_events = sorted({e.index for e in events or []}, key=lambda c: -float(tl.probs[:, c].max()))
    idx = with_events + [c for c in tl.top_classes(len(tl.labels)) if c not in with_events]
    idx = idx[: max(top, len(with_events))]
    fig_h = 1.2 + 0.38 * len(idx)
    fig, ax = plt.subplots(figsize=(12, fig_h), dpi=110)
    rows = np.arange(len(idx) + 1) - 0.5
    im = ax.pcolormesh(tl.edges, rows, tl.probs[:, idx].T, cmap="magma", vmin=0, vmax=1, shading="flat")
    ax.invert_yaxis()
    ax.set_xlim(0, tl.duration)
    ax.set_yticks(range(len(idx)))
    ax.set_yticklabels([printable(tl.labels[i]) for i in idx], fontsize=9)
    ax.set_xlabel(f"time (s); windows of {tl.window:g} s every {tl.hop:g} s")
    for ev in events or []:
        if ev.index in idx:
            row = idx.index(ev.index)
            ax.add_patch(plt.Rectangle((ev.onset, row - 0.45), ev.offset - ev.onset, 0.9, fill=False,
                                       edgecolor="#39d353", linewidth=1.5))  # fmt: skip
    ax.set_title(title or f"{printable(Path(tl.source).name)}: {len(idx)} classes", fontsize=11)
    fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01, label="probability")
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png"))
    finally:
        plt.close(fig)
    return path
