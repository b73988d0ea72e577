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
    windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=0)
    return np.median(windows, axis=-1)


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
    probs: np.ndarray  # (frames, classes), sigmoid, before median filtering
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

    def _chunks(self, path) -> tuple[np.ndarray, float]:
        """Stream the file in 10 s chunks (the last zero-padded), ``batch_size`` chunks per model call."""
        from .audio import stream_audio

        sr = self.info.sample_rate
        n = int(round(CHUNK_SECONDS * sr))
        buf, total, pending, out = np.zeros(0, np.float32), 0, [], []

        def run(chunks):
            out.append(frame_probabilities(self.model, self.frontend, np.stack(chunks), self.device))

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
        return np.concatenate(out), total / sr

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
               median: int = 9) -> Detection:  # fmt: skip
        thresholds = class_thresholds(self.info.labels, self.mids, threshold, per_class)
        probs, duration = self._chunks(path)
        filtered = median_filter(probs, median)
        times = frame_times(len(probs), duration)
        events = find_events(filtered > thresholds, times, list(self.info.labels), filtered)
        return Detection(os.fspath(path), duration, list(self.info.labels), self.mids, probs, times, events,
                         self.info.name, median, {"default": threshold, **dict(per_class or {})})  # fmt: skip


def scorer(model=None, device: str = "cpu", batch_size: int = 8):
    """What turns a model's audio into scores over time: a :class:`~dymn.inference.Tagger` for a clip-level
    model, a :class:`Detector` for a frame-level one (``model``: anything :func:`dymn.load` takes)."""
    from .inference import Tagger
    from .loader import load

    if model is None or isinstance(model, (str, os.PathLike, list, tuple)):
        model = load(model)
    if getattr(model.info, "level", "clip") == "frame":
        return Detector(model, device, batch_size)
    return Tagger(model, device=device, batch_size=batch_size)


def detect(path: str | os.PathLike, model=None, threshold: float = 0.5, per_class: Mapping[str, float] | None = None,
           median: int = 9, device: str = "cpu", batch_size: int = 8) -> Detection:  # fmt: skip
    """Sound events of an audio file of any length with a frame-level detector (default fmn10_tf256):
    frame probabilities every 40 ms, a ``median``-frame median filter, events where a class is above its
    threshold (``per_class`` by name or MID). See :class:`Detection` for the outputs."""
    return Detector(model, device, batch_size).detect(path, threshold, per_class, median)


def _strong():
    from .labels import audioset_strong_labels

    return audioset_strong_labels()
