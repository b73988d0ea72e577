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

from ..models.info import check_scores
from ..util import cancel
from ..util.errors import UsageError
from .events import FRAME_SECONDS, Event, StreamingDecoder, check_decoding, class_thresholds, frame_times
from .timelines import Timeline, check_window_hop, window_starts

CHUNK_SECONDS = 10.0
DEFAULT_DETECTOR = "fmn10_tf256"


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
    if not torch.isfinite(strong).all():  # a sigmoid would show an overflow as a confident 1.0
        check_scores(strong.float().cpu().numpy(), "a chunk of this audio")
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
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

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
        from ..util.atomic import write_text

        return write_text(Path(path), self.scores_csv())

    def as_timeline(self):
        """The frames as a :class:`~dymn.inference.timelines.Timeline` (for :func:`dymn.plot_timeline`)."""
        if self.probs is None:
            raise UsageError("the frame probabilities were not kept (detect with keep_probs=True)")
        return Timeline(list(self.labels), self.times[:, 0], self.times[:, 1], self.probs, self.duration,
                        FRAME_SECONDS, FRAME_SECONDS, self.file)  # fmt: skip

    @staticmethod
    def dumps(results: Sequence[Detection], fmt: str = "text") -> str:
        if fmt == "json":
            return json.dumps([r.to_dict() for r in results], indent=1, allow_nan=False) + "\n"
        if fmt in ("csv", "tsv"):
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n", delimiter="\t" if fmt == "tsv" else ",")
            w.writerow(["filename", "onset", "offset", "event_label"] if fmt == "tsv"
                       else ["file", "label", "mid", "onset", "offset", "confidence"])  # fmt: skip
            for r in results:
                w.writerows(r.events_rows(tsv=fmt == "tsv"))
            return buf.getvalue()
        if fmt == "text":
            from ..util.errors import printable

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


class Detector:
    """A frame-level model with its frontend: audio files of any length -> :class:`Detection`."""

    def __init__(self, model=None, device: str = "cpu", batch_size: int = 8):
        from ..hub.loader import load
        from .tagging import resolve_device

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
        from ..audio.frontend import MelFrontend

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
        from ..audio.io import stream_audio

        sr = self.info.sample_rate
        n = int(round(CHUNK_SECONDS * sr))
        buf, total, pending, out = np.zeros(0, np.float32), 0, [], []
        sink = sink or out.append

        def run(chunks):
            cancel.check()  # a service client that went away stops the work here
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
        """The frames as a :class:`~dymn.inference.timelines.Timeline` (40 ms windows, the zero-padding's frames left
        out); with ``window`` and ``hop`` (seconds), each window's probability is the peak of its frames."""
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
        check_decoding(threshold, median)
        thresholds = class_thresholds(self.info.labels, threshold, per_class, self.mids)
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


def detect(path: str | os.PathLike, model=None, threshold: float = 0.5, per_class: Mapping[str, float] | None = None,
           median: int = 9, device: str = "cpu", batch_size: int = 8,
           keep_probs: bool = True) -> Detection:  # fmt: skip
    """Sound events of an audio file of any length with a frame-level detector (default fmn10_tf256):
    frame probabilities every 40 ms, a ``median``-frame median filter, events where a class is above its
    threshold (``per_class`` by name or MID). See :class:`Detection` for the outputs; ``keep_probs=False`` for
    hours of audio (memory then stays bounded)."""
    return Detector(model, device, batch_size).detect(path, threshold, per_class, median, keep_probs)


def _strong():
    from ..models.labels import audioset_strong_labels

    return audioset_strong_labels()
