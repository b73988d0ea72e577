"""A :class:`Timeline`: class probabilities per window over time, written as text, CSV, JSON or a picture
(:func:`plot_timeline`); how windows are laid (:func:`window_starts`, :func:`check_window_hop`)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..util.atomic import atomic_write, write_text
from ..util.errors import UsageError, printable
from .events import Event


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
        return json.dumps(self.to_dict(events, top_k, model), indent=1, allow_nan=False) + "\n"

    def dumps(self, events: list[Event], fmt: str = "text", top_k: int = 10, model: str | None = None) -> str:
        """The events as ``fmt``: "text" (:meth:`to_text`), "csv" (:meth:`events_csv`) or "json" (:meth:`to_json`,
        with each window's ``top_k`` classes)."""
        if fmt == "json":
            return self.to_json(events, top_k=top_k, model=model)
        if fmt == "csv":
            return self.events_csv(events, self.source)
        return self.to_text(events)

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


# Bounds on what one window and one hop may be (the CLI, the library and the service alike): a window is one model
# input (60 s: six times the training length, 8 per batch in memory), and 20 windows per second of audio are more
# than any model's resolution (a detector's frames are 40 ms: `dymn detect`); beyond these a typo costs hours.
MIN_WINDOW, MAX_WINDOW = 0.1, 60.0
MIN_HOP = 0.05


def check_window_hop(window: float, hop: float) -> None:
    """Window and hop in seconds: within :data:`MIN_WINDOW`..:data:`MAX_WINDOW` and :data:`MIN_HOP`..window."""
    if not (MIN_WINDOW <= window <= MAX_WINDOW):  # also NaN
        raise UsageError(f"window must be {MIN_WINDOW:g} to {MAX_WINDOW:g} seconds, got {window}")
    if not (MIN_HOP <= hop and math.isfinite(hop)):
        raise UsageError(f"hop must be at least {MIN_HOP:g} seconds (20 windows per second; a detector's 40 ms "
                         f"frames come from `dymn detect`), got {hop}")  # fmt: skip
    if hop > window:
        raise UsageError(f"hop ({hop} s) must not be larger than the window ({window} s): audio would be skipped")


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
    from ..util.errors import require

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
