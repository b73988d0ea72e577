"""Strongly labelled data for frame-level detectors: audio files with each event's onset and offset, in the TSV
layout of DCASE and sed_scores_eval (``filename onset offset event_label``, tab-separated, paths relative to the
TSV; a row with an empty label lists a file without events).

Each file is cut into consecutive 10 s chunks (the last zero-padded), the length the detectors work on; a
chunk's target is (frames, classes): frame ``i`` spans ``[i, i + 1) * clip / frames`` seconds, active from
``floor(onset / frame)`` to ``ceil(offset / frame)`` (exclusive), as the reference encodes its labels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..util.eventtables import event_rows
from .common import AudioCache, DataError
from .sets import ClipDataset

Events = list[tuple[float, float, int]]  # (onset, offset, class index)


def read_strong_tsv(path: Path, max_missing: int = 10) -> list[tuple[Path, list[tuple[float, float, str]]]]:
    """``[(audio path, [(onset, offset, label), ...]), ...]`` in file order of first appearance. The table is
    streamed (:func:`~dymn.util.eventtables.event_rows`) and each file checked when it first appears: reading
    stops at ``max_missing`` missing files, so a huge table of wrong names fails fast and small."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such TSV file")
    files: dict[str, list] = {}
    missing: list[Path] = []
    for name, event in event_rows(path):
        events = files.get(name)
        if events is None:
            events = files[name] = []
            if not (path.parent / name).is_file():
                missing.append(path.parent / name)
                if len(missing) >= max_missing:
                    break
        if event is not None:
            events.append(event)
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        more = f"{len(missing)} (stopped there)" if len(missing) >= max_missing else str(len(missing))
        raise DataError(f"{path} names {more} missing audio file(s), e.g. {shown}")
    if not files:
        raise DataError(f"{path}: no rows (expected filename, onset, offset, event_label)")
    return [(path.parent / name, evs) for name, evs in files.items()]


def strong_split(tsv: Path, val_tsv: Path | None = None, val_fraction: float = 0.2, seed: int = 0,
                 labels: list[str] | None = None) -> tuple[dict, dict, list[str]]:  # fmt: skip
    """Training and validation files with their events (class indices); a seeded split of the files by
    ``val_fraction`` unless ``val_tsv`` is given. Classes: ``labels`` or the training TSV's, sorted."""
    rows = read_strong_tsv(tsv)
    if val_tsv is not None:
        val_rows = read_strong_tsv(val_tsv)
    else:
        perm = np.random.default_rng(seed).permutation(len(rows))
        k = int(round(len(rows) * val_fraction))
        val_rows, rows = [rows[i] for i in perm[:k]], [rows[i] for i in perm[k:]]
    if labels is None:
        labels = sorted({lab for _, evs in rows for *_, lab in evs})
    if not labels:
        raise DataError(f"{tsv}: no events in the training files")

    def part(rs, source) -> dict:
        unknown = sorted({lab for _, evs in rs for *_, lab in evs} - set(labels))
        if unknown:
            raise DataError(f"{source}: event label(s) not in the training set: {', '.join(unknown[:5])}")
        index = {lab: i for i, lab in enumerate(labels)}
        events = [[(on, off, index[lab]) for on, off, lab in evs] for _, evs in rs]
        targets = np.zeros((len(rs), len(labels)), np.float32)  # which classes each file holds (for reports)
        for i, evs in enumerate(events):
            targets[i, [c for *_, c in evs]] = 1
        return {"paths": [p for p, _ in rs], "events": events, "targets": targets}

    return part(rows, tsv), part(val_rows, val_tsv or tsv), labels


def frame_targets(events: Events, start: float, n_frames: int, frame_seconds: float, n_classes: int) -> np.ndarray:
    """(n_frames, n_classes) 0/1 targets of the excerpt from ``start`` seconds, ``n_frames`` of ``frame_seconds``."""
    y = np.zeros((n_frames, n_classes), np.float32)
    for onset, offset, c in events:
        on = math.floor(round((onset - start) / frame_seconds, 6))
        off = math.ceil(round((offset - start) / frame_seconds, 6))
        on, off = max(on, 0), min(off, n_frames)
        if off > on:
            y[on:off, c] = 1
    return y


class StrongDataset(ClipDataset):
    """10 s chunks of strongly labelled files: ``wave`` (samples,) and ``target`` (frames, classes).

    Training augmentation: random gain, and a random shift of waveform and targets together by whole frames
    (up to ``roll`` samples), so that the labels stay aligned with the sound.
    """

    level = "frame"

    def __init__(self, paths: list[Path], events: list[Events], seconds: list[float], labels: list[str],
                 sample_rate: int = 16000, clip_seconds: float = 10.0, n_frames: int = 250,
                 cache_dir=None, **kw):  # fmt: skip
        roll = kw["augment"].roll if kw.get("augment") is not None else 0
        super().__init__(labels, int(round(clip_seconds * sample_rate)), **kw)
        self.paths = [Path(p) for p in paths]
        self.events = events
        self.n_frames = n_frames
        self.frame_seconds = clip_seconds / n_frames
        self.frame_samples = int(round(self.frame_seconds * sample_rate))
        self.max_shift = int(roll) // self.frame_samples if self.train else 0
        self.sample_rate = sample_rate
        self.clip_seconds = clip_seconds
        self.cache = AudioCache(cache_dir, sample_rate)
        # every 10 s of every file is an item: (file index, start in seconds)
        self.items = [(i, k * clip_seconds) for i, s in enumerate(seconds)
                      for k in range(max(1, math.ceil(round(s / clip_seconds, 6))))]  # fmt: skip

    def __len__(self) -> int:
        return len(self.items)

    def targets(self) -> np.ndarray:
        """(chunks, classes): whether each chunk holds an event of the class (for reports)."""
        return np.stack([self._target(i).max(axis=0) for i in range(len(self.items))]) if self.items else (
            np.zeros((0, len(self.labels)), np.float32))  # fmt: skip

    def _target(self, i: int) -> np.ndarray:
        f, start = self.items[i]
        return frame_targets(self.events[f], start, self.n_frames, self.frame_seconds, len(self.labels))

    def load(self, i: int):
        f, start = self.items[i]
        wave = self.cache.load(self.paths[f])
        a = int(round(start * self.sample_rate))
        chunk = wave[a : a + self.clip_samples]
        wave = np.pad(chunk, (0, self.clip_samples - len(chunk)))
        return wave, self._target(i), None, f"{self.paths[f].name}@{start:g}"

    def _prepared(self, i: int, rng):
        wave, target, mask, cid = self.load(i)
        if rng is not None and self.max_shift:
            k = int(rng.integers(-self.max_shift, self.max_shift + 1))
            wave, target = np.roll(wave, k * self.frame_samples), np.roll(target, k, axis=0)
        if self.augment is not None and self.augment.gain_db:
            g = int(rng.integers(-self.augment.gain_db, self.augment.gain_db))
            wave = wave * np.float32(10 ** (g / 20))
        return wave.astype(np.float32, copy=False), target, mask, cid
