"""Frame-level detection with the SED models: audio of any length in 10 s chunks, frame probabilities, median
filtering along time and events, exactly as the reference inference and decoding do (SED spec section 9).

The reference cuts audio into consecutive 10 s chunks (the last one zero-padded), runs each through the model
(250 frames of 40 ms), concatenates the frames, median-filters each class over 9 frames with reflected edges,
and turns each threshold's runs of frames above it into events. Frames in the padding get zero-length time
spans at the end of the audio, as in the reference.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import UsageError
from .timelines import Event

CHUNK_SECONDS = 10.0
FRAME_SECONDS = 0.04  # 4 STFT hops of 10 ms per backbone frame, for a 10 s chunk
DEFAULT_DETECTOR = "fmn10_tf256"


def median_filter(scores: np.ndarray, size: int = 9) -> np.ndarray:
    """Median over ``size`` frames along axis 0 for each column, with reflected edges (``d c b a | a b c d``,
    scipy.ndimage's default ``reflect`` mode)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the median window must be a positive odd number of frames, got {size}")
    if size == 1 or len(scores) == 0:
        return np.asarray(scores, dtype=np.float64).copy()
    half = size // 2
    padded = np.pad(np.asarray(scores, dtype=np.float64), ((half, half), (0, 0)), mode="symmetric")
    return _running_median(padded, size)


def _running_median(padded: np.ndarray, size: int, block: int = 4096) -> np.ndarray:
    """Median over each ``size`` consecutive rows (odd ``size``: the middle value itself, so exact) of a padded
    (N + size - 1, C) array -> (N, C); rows in blocks, so the temporary stack stays small."""
    n = len(padded) - size + 1
    out = np.empty((max(n, 0), padded.shape[1]), padded.dtype)
    for a in range(0, n, block):
        b = min(n, a + block)
        stack = np.stack([padded[a + i : b + i] for i in range(size)])  # (size, rows, C), contiguous
        out[a:b] = np.partition(stack, size // 2, axis=0)[size // 2]
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
        if median < 1 or median % 2 == 0:
            raise ValueError(f"the median window must be a positive odd number of frames, got {median}")
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
            filtered = _running_median(block, 2 * h + 1)
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


def chunk_probabilities(model: torch.nn.Module, frontend: torch.nn.Module, wave: np.ndarray, sample_rate: int,
                        batch_size: int = 8) -> np.ndarray:  # fmt: skip
    """Sigmoid frame probabilities (n_chunks * 250, C) of a mono waveform: consecutive 10 s chunks, the last
    zero-padded, each through ``frontend`` and ``model`` (strong logits), frames concatenated."""
    chunk = int(round(CHUNK_SECONDS * sample_rate))
    n_chunks = max(1, -(-len(wave) // chunk))
    padded = np.zeros(n_chunks * chunk, np.float32)
    padded[: len(wave)] = wave
    chunks = padded.reshape(n_chunks, chunk)
    return np.concatenate([frame_probabilities(model, frontend, chunks[s : s + batch_size])
                           for s in range(0, n_chunks, batch_size)])  # fmt: skip


@torch.inference_mode()
def frame_probabilities(model: torch.nn.Module, frontend: torch.nn.Module, chunks: np.ndarray,
                        device: torch.device | str = "cpu") -> np.ndarray:  # fmt: skip
    """(B * frames, C) sigmoid probabilities of a batch of equal-length chunks (B, N), frames in time order."""
    strong, _ = model(frontend(torch.from_numpy(np.ascontiguousarray(chunks, np.float32)).to(device)).unsqueeze(1))
    return torch.sigmoid(strong.float()).transpose(1, 2).reshape(-1, strong.shape[1]).cpu().numpy()


@dataclass
class Detection:
    """Frame probabilities and events of one file; writes itself as JSON, CSV, the TSV that sed_scores_eval
    reads, and a scores CSV (one row per frame)."""

    file: str
    duration: float
    labels: list[str]
    mids: list[str] | None
    probs: np.ndarray | None  # (frames, classes), sigmoid, before median filtering (None: not kept)
    times: np.ndarray  # (frames, 2) onset and offset of each frame, clipped to the duration
    events: list[Event]
    model: str = ""
    median: int = 9
    thresholds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        events = []
        for e in sorted(self.events, key=lambda e: (e.onset, e.index)):
            d = e.to_dict()
            d["confidence"] = d.pop("peak")
            if self.mids:
                d["mid"] = self.mids[e.index]
            events.append(d)
        return {"file": self.file, "duration": round(self.duration, 4), "model": self.model,
                "frame_seconds": FRAME_SECONDS, "median": self.median, "events": events}  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def events_rows(self, tsv: bool = False) -> list[list]:
        rows = []
        for e in sorted(self.events, key=lambda e: (e.onset, e.index)):
            if tsv:  # sed_scores_eval / DCASE: filename, onset, offset, event_label
                rows.append([os.path.basename(self.file), f"{e.onset:.3f}", f"{e.offset:.3f}", e.label])
            else:
                rows.append([self.file, e.label, self.mids[e.index] if self.mids else "", f"{e.onset:.3f}",
                             f"{e.offset:.3f}", f"{e.peak:.4f}"])  # fmt: skip
        return rows

    def scores_csv(self) -> str:
        """Every frame: onset, offset, then one column per class in label order (sed_scores_eval's layout)."""
        if self.probs is None:
            raise UsageError("the frame probabilities were not kept (detect with keep_probs=True)")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["onset", "offset", *self.labels])
        for (on, off), row in zip(self.times, self.probs):
            w.writerow([f"{on:.3f}", f"{off:.3f}", *(f"{p:.6f}" for p in row)])
        return buf.getvalue()

    def write_scores(self, path: str | os.PathLike) -> Path:
        from .atomic import write_text

        return write_text(Path(path), self.scores_csv())

    def as_timeline(self):
        """The frames as a :class:`~dymn.timelines.Timeline` (for :func:`~dymn.timelines.plot_timeline`)."""
        from .timelines import Timeline

        if self.probs is None:
            raise UsageError("the frame probabilities were not kept (detect with keep_probs=True)")
        return Timeline(list(self.labels), self.times[:, 0], self.times[:, 1], self.probs, self.duration,
                        FRAME_SECONDS, FRAME_SECONDS, self.file)  # fmt: skip

    @staticmethod
    def dumps(results: Sequence[Detection], fmt: str = "text") -> str:
        if fmt == "json":
            return json.dumps([r.to_dict() for r in results], indent=1) + "\n"
        if fmt in ("csv", "tsv"):
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n", delimiter="\t" if fmt == "tsv" else ",")
            w.writerow(["filename", "onset", "offset", "event_label"] if fmt == "tsv"
                       else ["file", "label", "mid", "onset", "offset", "confidence"])  # fmt: skip
            for r in results:
                w.writerows(r.events_rows(tsv=fmt == "tsv"))
            return buf.getvalue()
        if fmt == "text":
            from .errors import printable

            if not results:
                return ""
            lines = []
            for r in results:
                lines.append(f"{printable(r.file)} ({r.duration:.2f} s, {len(r.events)} event"
                             f"{'s' if len(r.events) != 1 else ''})")  # fmt: skip
                lines += [f"  {e.onset:8.2f} - {e.offset:8.2f} s  {printable(e.label)} ({e.peak:.2f})"
                          for e in sorted(r.events, key=lambda e: (e.onset, e.index))]  # fmt: skip
            return "\n".join(lines) + "\n"
        raise UsageError(f"unknown format {fmt!r}; choose text, json, csv or tsv")


def class_thresholds(labels: Sequence[str], mids: Sequence[str] | None, default: float,
                     per_class: Mapping[str, float] | None = None) -> np.ndarray:  # fmt: skip
    """One threshold per class: ``default``, and ``per_class`` by label name or MID."""
    out = np.full(len(labels), float(default))
    index = {name: i for i, name in enumerate(labels)}
    if mids:
        index.update({m: i for i, m in enumerate(mids)})
    for key, value in (per_class or {}).items():
        if key not in index:
            import difflib

            close = difflib.get_close_matches(key, list(labels), n=3)
            raise UsageError(f"unknown class {key!r} for a threshold" + (f"; did you mean {', '.join(close)}?"
                                                                          if close else ""))  # fmt: skip
        if not 0.0 <= float(value) <= 1.0:
            raise UsageError(f"the threshold of {key!r} must be between 0 and 1, got {value}")
        out[index[key]] = float(value)
    return out


class Detector:
    """A frame-level model with its frontend: audio files of any length -> :class:`Detection`."""

    def __init__(self, model=None, device: str = "cpu", batch_size: int = 8):
        from .inference import resolve_device
        from .loader import load

        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        net = model if model is not None and not isinstance(model, (str, os.PathLike)) else load(
            model or DEFAULT_DETECTOR)  # fmt: skip
        if net.info.level != "frame":
            raise UsageError(f"{net.info.name} is a clip-level tagger: `dymn detect` needs a frame-level detector "
                             f"such as {DEFAULT_DETECTOR} (`dymn models fmn` lists them)")  # fmt: skip
        if not net.info.trained:
            raise UsageError(f"{net.info.name} has random weights; use a released detector such as {DEFAULT_DETECTOR}")
        from .frontend import MelFrontend

        self.model = net.to(self.device).eval()
        self.info = net.info
        self.frontend = MelFrontend.from_config(net.info.frontend).to(self.device).eval()
        self.batch_size = batch_size
        self.mids = None
        if list(net.info.labels) == [lab.name for lab in _strong()]:
            self.mids = [lab.mid for lab in _strong()]

    def _chunks(self, path, sink=None) -> tuple[np.ndarray | None, float]:
        """Stream the file in 10 s chunks (the last zero-padded), ``batch_size`` chunks per model call; each
        call's frame probabilities go to ``sink`` (then none are kept) or are returned, with the duration."""
        from .audio import stream_audio

        sr = self.info.sample_rate
        n = int(round(CHUNK_SECONDS * sr))
        buf, total, pending, out = np.zeros(0, np.float32), 0, [], []
        sink = sink or out.append

        def run(chunks):
            sink(frame_probabilities(self.model, self.frontend, np.stack(chunks), self.device))

        for block in stream_audio(path, sr, block_seconds=CHUNK_SECONDS):
            total += len(block)
            buf = np.concatenate([buf, block.astype(np.float32)])
            while len(buf) >= n:
                pending.append(buf[:n])
                buf = buf[n:]
                if len(pending) == self.batch_size:
                    run(pending)
                    pending = []
        if len(buf) or total == 0:
            pending.append(np.pad(buf, (0, n - len(buf))))
        if pending:
            run(pending)
        return (np.concatenate(out) if out else None), total / sr

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def labels(self) -> list[str]:
        return list(self.info.labels)

    def probabilities(self, audio: str | os.PathLike | np.ndarray) -> tuple[np.ndarray, float]:
        """Frame probabilities (n_chunks * 250, C) of a file (streamed) or a waveform at the model's rate, and
        the audio's duration in seconds."""
        if isinstance(audio, np.ndarray):
            if audio.ndim != 1 or audio.size == 0:
                raise ValueError("a waveform must be a non-empty 1-D array at the model's sample rate")
            probs = chunk_probabilities(self.model, self.frontend, np.asarray(audio, np.float32), self.sample_rate,
                                        self.batch_size)  # fmt: skip
            return probs, len(audio) / self.sample_rate
        return self._chunks(audio)

    def timeline(self, audio: str | os.PathLike | np.ndarray, window: float | None = None,
                 hop: float | None = None):  # fmt: skip
        """The frames as a :class:`~dymn.timelines.Timeline` (40 ms windows, the zero-padding's frames left
        out); with ``window`` and ``hop`` (seconds), each window's probability is the peak of its frames."""
        from .timelines import Timeline, check_window_hop, window_starts

        probs, duration = self.probabilities(audio)
        times = frame_times(len(probs), duration)
        keep = max(1, int(np.count_nonzero(times[:, 0] < duration)))
        probs, times = probs[:keep], times[:keep]
        source = "<array>" if isinstance(audio, np.ndarray) else os.fspath(audio)
        if window is None and hop is None:
            return Timeline(self.labels, times[:, 0], times[:, 1], probs, duration, FRAME_SECONDS, FRAME_SECONDS,
                            source)  # fmt: skip
        window = window or CHUNK_SECONDS
        hop = hop or window
        check_window_hop(window, hop)
        ms = int(round(duration * 1000))  # window starts on a 1 ms grid
        starts = np.asarray(window_starts(ms, max(1, round(window * 1000)), max(1, round(hop * 1000)))) / 1000
        ends = np.minimum(starts + window, duration)
        lo = np.floor(np.round(starts / FRAME_SECONDS, 6)).astype(int)
        hi = np.maximum(lo + 1, np.ceil(np.round(ends / FRAME_SECONDS, 6)).astype(int))
        pooled = np.stack([probs[a:b].max(axis=0) for a, b in zip(lo, hi)])
        return Timeline(self.labels, starts, ends, pooled, duration, window, hop, source)

    def detect(self, path: str | os.PathLike, threshold: float = 0.5, per_class: Mapping[str, float] | None = None,
               median: int = 9, keep_probs: bool = True) -> Detection:  # fmt: skip
        """Events of a file, decoded while it streams; ``keep_probs=False`` keeps no frame probabilities
        (memory then does not grow with the audio's length: ``probs`` is None)."""
        thresholds = class_thresholds(self.info.labels, self.mids, threshold, per_class)
        decoder = StreamingDecoder(thresholds, median)
        kept: list[np.ndarray] = []

        def sink(probs: np.ndarray) -> None:
            decoder.push(probs)
            if keep_probs:
                kept.append(probs)

        _, duration = self._chunks(path, sink)
        runs = decoder.finish()
        times = frame_times(decoder.n_done, duration)
        edges = np.concatenate([times[:, 0], times[-1:, 1]])
        labels = list(self.info.labels)
        events = [Event(labels[c], c, float(edges[a]), float(edges[b]), peak) for c, a, b, peak in runs]
        probs = np.concatenate(kept) if keep_probs else None
        return Detection(os.fspath(path), duration, labels, self.mids, probs, times, events, self.info.name, median,
                         {"default": threshold, **dict(per_class or {})})  # fmt: skip


def scorer(model=None, device: str = "cpu", batch_size: int = 8, backend: str | None = None):
    """What turns a model's audio into scores over time: a :class:`~dymn.inference.Tagger` for a clip-level
    model, a :class:`Detector` for a frame-level one (``model``: anything :func:`dymn.load` takes; ``backend``:
    where a tagger's network runs, see :func:`dymn.optimize`)."""
    from .inference import Tagger
    from .loader import load

    if model is None or isinstance(model, (str, os.PathLike, list, tuple)):
        model = load(model)
    if getattr(model.info, "level", "clip") == "frame":
        return Detector(model, device, batch_size)
    return Tagger(model, device=device, batch_size=batch_size, backend=backend)


def detect(path: str | os.PathLike, model=None, threshold: float = 0.5, per_class: Mapping[str, float] | None = None,
           median: int = 9, device: str = "cpu", batch_size: int = 8,
           keep_probs: bool = True) -> Detection:  # fmt: skip
    """Sound events of an audio file of any length with a frame-level detector (default fmn10_tf256):
    frame probabilities every 40 ms, a ``median``-frame median filter, events where a class is above its
    threshold (``per_class`` by name or MID). See :class:`Detection` for the outputs; ``keep_probs=False`` for
    hours of audio (memory then stays bounded)."""
    return Detector(model, device, batch_size).detect(path, threshold, per_class, median, keep_probs)


def _strong():
    from .labels import audioset_strong_labels

    return audioset_strong_labels()
