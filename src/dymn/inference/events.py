"""What detection and timelines share: :class:`Event`, :class:`EventConfig`, the one median filter, the one
per-class threshold resolver, and the decoders that turn scores over time into events (windows of a timeline, or a
detector's 40 ms frames, also streamed block by block)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..models.configs import FRAME_SECONDS
from ..util.errors import UsageError

EDGES = {"reflect": "symmetric", "nearest": "edge"}


# the longest median filter (frames or windows): 101 of a detector's frames are 4 s, 101 windows at the default hop
# 101 s; longer ones only blur events away, and their temporary arrays grow with the size
MAX_MEDIAN = 101


def check_median(size, unit: str = "rows") -> None:
    """A median filter's size: an odd whole number from 1 (no smoothing) to :data:`MAX_MEDIAN`."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not (1 <= size <= MAX_MEDIAN) or (
            size % 2 == 0):  # fmt: skip
        raise UsageError(
            f"the median filter must be an odd number of {unit} from 1 (no smoothing) to {MAX_MEDIAN}, got {size}"
        )


def median_filter(scores: np.ndarray, size: int = 9, edges: str = "reflect") -> np.ndarray:
    """Median over ``size`` (odd) rows along axis 0 for each column. ``edges``: "reflect" (``d c b a | a b c d``,
    scipy.ndimage's default, as the SED reference decodes frames; float64) or "nearest" (the edge row repeated, as
    timelines smooth windows; the input's dtype)."""
    check_median(size)
    scores = np.asarray(scores, dtype=np.float64) if edges == "reflect" else np.asarray(scores)
    if size == 1 or len(scores) == 0:
        return scores.copy()
    half = size // 2
    return running_median(np.pad(scores, ((half, half), (0, 0)), mode=EDGES[edges]), size)


def running_median(padded: np.ndarray, size: int, block: int = 4096, budget: int = 64 << 20) -> np.ndarray:
    """Median over each ``size`` consecutive rows (odd ``size``: the middle value itself, so exact) of a padded
    (N + size - 1, C) array -> (N, C); rows in blocks, so the temporary stack stays within ``budget`` bytes."""
    n = len(padded) - size + 1
    block = max(1, min(block, budget // max(1, size * padded.shape[1] * padded.itemsize)))
    out = np.empty((max(n, 0), padded.shape[1]), padded.dtype)
    for a in range(0, n, block):
        b = min(n, a + block)
        stack = np.stack([padded[a + i : b + i] for i in range(size)])  # (size, rows, C), contiguous
        out[a:b] = np.partition(stack, size // 2, axis=0)[size // 2]
    return out


def class_thresholds(labels: Sequence[str], default: float, per_class: Mapping[str, float] | None = None,
                     mids: Sequence[str] | None = None) -> np.ndarray:  # fmt: skip
    """One threshold per class: ``default``, and ``per_class`` by label name (or MID, with ``mids``)."""
    out = np.full(len(labels), float(default))
    index = {name: i for i, name in enumerate(labels)}
    if mids:
        index.update({m: i for i, m in enumerate(mids)})
    for key, value in (per_class or {}).items():
        if key not in index:
            close = difflib.get_close_matches(key, list(labels), n=3)
            raise UsageError(f"unknown class {key!r} for a threshold" + (f"; did you mean {', '.join(close)}?"
                                                                          if close else ""))  # fmt: skip
        if not 0.0 <= float(value) <= 1.0:
            raise UsageError(f"the threshold of {key!r} must be between 0 and 1, got {value}")
        out[index[key]] = float(value)
    return out


def check_decoding(threshold: float, median: int) -> None:
    """Refuse a decoding threshold outside 0..1 or a median filter that is not a positive odd number of frames."""
    if not 0 <= threshold <= 1:
        raise UsageError(f"the threshold must be between 0 and 1, got {threshold}")
    check_median(median, "frames")


def _thresholds(value, labels: list[str], default: float) -> np.ndarray:
    """An :class:`EventConfig` threshold (None, a number or a per-label dict) as one value per class."""
    if isinstance(value, dict):
        return class_thresholds(labels, default, value)
    return np.full(len(labels), default if value is None else float(value))


class Scores(Protocol):
    """What :func:`detect_events` reads: class probabilities per window and the span each window speaks for."""

    labels: list[str]
    probs: np.ndarray
    edges: np.ndarray


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

    @staticmethod
    def default_median(frames: bool) -> int:
        """The median filter's default: 9 over a detector's own 40 ms frames (the reference's), else 3 windows."""
        return 9 if frames else 3

    def __post_init__(self) -> None:
        for name in ("threshold", "low"):
            value = getattr(self, name)
            values = value.values() if isinstance(value, dict) else [] if value is None else [value]
            if any(not (isinstance(v, (int, float)) and 0 <= v <= 1) for v in values):
                raise UsageError(f"{name} must be between 0 and 1")
        check_median(self.median, "windows")
        if not (self.merge_gap >= 0 and self.min_duration >= 0):
            raise UsageError("merge_gap and min_duration must not be negative")


def detect_events(tl: Scores, cfg: EventConfig | None = None) -> list[Event]:
    """Events (label, onset, offset, peak probability) from a timeline, sorted by onset."""
    cfg = cfg or EventConfig()
    if len(tl.probs) == 0:
        return []
    high = _thresholds(cfg.threshold, tl.labels, 0.5)
    low = _thresholds(cfg.low, tl.labels, np.nan)
    low = np.where(np.isnan(low), high, low)
    if np.any(low > high):
        raise UsageError("the low (hysteresis) threshold must not exceed the threshold")
    scores = median_filter(tl.probs, cfg.median, edges="nearest")
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


def frame_times(n_frames: int, duration: float, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """(n_frames, 2) onset and offset of each frame, clipped to the audio's duration."""
    edges = np.clip(np.arange(n_frames + 1) * frame_seconds, 0.0, duration)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def find_events(active: np.ndarray, times: np.ndarray, labels: Sequence[str],
                scores: np.ndarray | None = None) -> list[Event]:  # fmt: skip
    """Each run of active frames of a class (``active`` (N, C) bool) as an event, in class then time order;
    its ``peak`` is the highest of ``scores`` over the run."""
    events = []
    edges = np.concatenate([times[:, 0], times[-1:, 1]]) if len(times) else np.zeros(1)
    for c in range(active.shape[1]):
        col = np.concatenate([[False], active[:, c], [False]]).astype(np.int8)
        changes = np.flatnonzero(np.diff(col))
        for start, stop in zip(changes[::2], changes[1::2]):
            peak = float(scores[start:stop, c].max()) if scores is not None else float("nan")
            events.append(Event(labels[c], c, float(edges[start]), float(edges[stop]), peak))
    return events


def decode(probs: np.ndarray, labels: Sequence[str], duration: float, thresholds: Sequence[float] = (0.5,),
           median: int = 9) -> tuple[np.ndarray, dict[float, list[Event]]]:  # fmt: skip
    """Frame probabilities (N, C) -> (median-filtered scores, {threshold: events}); a frame is active where its
    filtered score is strictly above the threshold (as the reference decodes, for several thresholds)."""
    filtered = median_filter(probs, median)
    times = frame_times(len(probs), duration)
    return filtered, {float(t): find_events(filtered > t, times, labels, filtered) for t in thresholds}


class StreamingDecoder:
    """:func:`median_filter` and events over frames that arrive block by block, with memory bounded by the
    block and the filter's width (not by the audio's length); the result equals decoding all frames at once.
    A frame is active where its filtered score is strictly above its class's threshold."""

    def __init__(self, thresholds: np.ndarray, median: int = 9):
        check_median(median, "frames")
        self.thresholds = np.asarray(thresholds, np.float32)
        self.half = median // 2
        self.pending = np.zeros((0, len(self.thresholds)), np.float32)  # frames not yet filtered, and halos
        self.started = False
        self.n_done = 0  # frames filtered so far
        self.run_start = np.full(len(self.thresholds), -1, np.int64)  # the open event of each class
        self.run_peak = np.zeros(len(self.thresholds), np.float32)
        self.runs: list[tuple[int, int, int, float]] = []  # (class, first frame, end frame, peak)

    def push(self, probs: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, np.asarray(probs, np.float32)])
        if not self.started and len(self.pending) > self.half:  # symmetric edge: d c b a | a b c d
            self.pending = np.concatenate([self.pending[: self.half][::-1], self.pending])
            self.started = True
        if self.started:
            self._filter(len(self.pending) - 2 * self.half)

    def finish(self) -> list[tuple[int, int, int, float]]:
        """Every event as (class, first frame, end frame (exclusive), peak), in class then time order."""
        h = self.half
        if not self.started:  # fewer frames than half the filter: the whole (tiny) array at once
            self._take(median_filter(self.pending, 2 * h + 1).astype(np.float32))
        elif h:
            body = self.pending[h:]  # the unfiltered frames' own values; their right edge reflects
            self.pending = np.concatenate([self.pending, body[::-1][:h]])
            self._filter(len(self.pending) - 2 * h)
        else:
            self._filter(len(self.pending))
        for c in np.flatnonzero(self.run_start >= 0):
            self.runs.append((int(c), int(self.run_start[c]), self.n_done, float(self.run_peak[c])))
        self.run_start[:] = -1
        return sorted(self.runs)

    def _filter(self, n: int) -> None:
        if n <= 0:
            return
        h = self.half
        block = self.pending[: n + 2 * h]
        if h:
            filtered = running_median(block, 2 * h + 1)
        else:
            filtered = block.copy()
        self.pending = self.pending[n:]
        self._take(filtered)

    def _take(self, filtered: np.ndarray) -> None:
        """Extend the runs of active frames by a block of filtered frames (a loop over the classes that are
        or were active: transitions found by differences, not frame by frame)."""
        n, base = len(filtered), self.n_done
        active = filtered > self.thresholds
        for c in np.flatnonzero(active.any(axis=0) | (self.run_start >= 0)):
            was_open = bool(self.run_start[c] >= 0)
            d = np.diff(np.concatenate([[was_open], active[:, c]]).astype(np.int8))
            starts = ([0] if was_open else []) + np.flatnonzero(d == 1).tolist()
            ends = np.flatnonzero(d == -1).tolist()  # each ends the run before it
            for k, a in enumerate(starts):
                b = ends[k] if k < len(ends) else n
                peak = float(filtered[a:b, c].max()) if b > a else float("-inf")
                start = base + a
                if k == 0 and was_open:
                    start, peak = int(self.run_start[c]), max(peak, float(self.run_peak[c]))
                if k < len(ends):
                    self.runs.append((int(c), start, base + b, peak))
                    self.run_start[c] = -1
                else:
                    self.run_start[c], self.run_peak[c] = start, peak
        self.n_done += n
