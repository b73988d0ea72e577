"""A task's data: its splits read from disk (class folders, CSV, ESC-50, DCASE20, AudioSet-style HDF5) into
datasets, with unreadable files named once before training. Free of Lightning (``dymn evaluate`` uses it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..datasets.common import DataError, WaveAugment, class_weights_from_targets
from ..datasets.sets import FileListDataset, HDF5Dataset, csv_split, dcase20_split, esc50_split, folder_split
from ..datasets.strong import strong_split
from .config import DataConfig
from .recipes import TASKS


@dataclass
class TaskData:
    """A task's datasets, its classes, and the data settings as resolved (clip length, workers, cache)."""

    train: torch.utils.data.Dataset | None
    val: torch.utils.data.Dataset | None
    labels: list[str]
    multilabel: bool
    cfg: DataConfig
    has_mask: bool = False
    level: str = "clip"  # "frame": strongly labelled chunks for frame-level detectors (targets per frame)
    skipped: list[str] = field(default_factory=list)  # files left out before training: why each

    @property
    def clip_seconds(self) -> float | None:
        return self.cfg.clip_seconds


# decoding is cached after the first epoch: background workers pay off only for larger sets
WORKERS_ABOVE_SECONDS = 1800


def _auto_clip_seconds(seconds: list[float]) -> float:
    """Longest training clip, capped at 10 s, rounded up to 0.1 s (padding short clips is cheap)."""
    longest = max(seconds, default=0.0)
    return float(min(10.0, max(0.1, np.ceil(longest * 10) / 10)))


def read_task(task: str, data: str | os.PathLike, cfg: DataConfig, seed: int = 0, train: bool = True) -> TaskData:
    """Read a task's splits into datasets; "auto" settings of ``cfg`` are resolved from the data."""
    import dataclasses

    root = Path(data)
    if not root.exists():
        raise DataError(f"{root}: no such data path")
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if cfg.cache_dir is None:
        from ..util.cache import cache_dir

        cfg = dataclasses.replace(cfg, cache_dir=str(cache_dir() / "audio"))
    if task in ("audioset", "fsd50k", "openmic"):
        td = _hdf5_task(task, root, cfg, seed, train)
    else:
        td = _file_task(task, root, cfg, seed, train)
    if td.cfg.num_workers is None:
        clip = td.cfg.clip_seconds or 10.0
        audio_seconds = (len(td.train) if td.train is not None else 0) * clip
        workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if audio_seconds > WORKERS_ABOVE_SECONDS else 0
        td.cfg = dataclasses.replace(td.cfg, num_workers=workers)
    return td


def _file_task(task: str, root: Path, cfg: DataConfig, seed: int, train: bool) -> TaskData:
    import dataclasses

    if task == "esc50":
        tr, te, labels = esc50_split(root, int(cfg.fold))
        multilabel = False
    elif task == "dcase20":
        tr, te, labels = dcase20_split(root)
        multilabel = False
    elif task == "folder":
        tr, te, labels = folder_split(root, float(cfg.val_fraction), seed)
        multilabel = False
    elif task == "strong":
        if root.is_dir():
            raise DataError(f"{root}: the strong task reads a TSV of events (filename, onset, offset, event_label)")
        val_tsv = Path(cfg.val_csv) if cfg.val_csv else None
        tr, te, labels = strong_split(root, val_tsv, float(cfg.val_fraction), seed, cfg.labels)
        multilabel = True
    else:
        val_csv = Path(cfg.val_csv) if cfg.val_csv else None
        tr, te, labels = csv_split(root, val_csv, float(cfg.val_fraction), seed, cfg.labels)
        multilabel = True
    skipped: list[str] = []
    if train:  # an unreadable file is named once, before training, not skipped silently every epoch
        tr, te = _readable(tr, skipped), _readable(te, skipped)
        if not len(tr["paths"]):
            raise DataError(f"{root}: none of the training files can be read ({skipped[0] if skipped else ''})")
    clip = cfg.clip_seconds
    if task == "strong":
        return _strong_task(tr, te, labels, cfg, seed, train, skipped)
    if clip == "auto":  # the headers were read once already when training; evaluating a whole folder: its clips
        basis = tr if len(tr["paths"]) else te
        clip = _auto_clip_seconds(basis["seconds"] if "seconds" in basis else _readable(basis, [])["seconds"])
    cfg = dataclasses.replace(cfg, clip_seconds=clip)
    aug = WaveAugment(gain_db=int(cfg.gain), roll=int(cfg.roll))
    common = dict(labels=labels, multilabel=multilabel, clip_seconds=clip, cache_dir=cfg.cache_dir)
    train_ds = None
    if train:
        train_ds = FileListDataset(tr["paths"], tr["targets"], train=True, seed=seed, augment=aug,
                                   wavmix=float(cfg.wavmix), **common)  # fmt: skip
    val_ds = FileListDataset(te["paths"], te["targets"], train=False, **common, seed=seed)
    return TaskData(train_ds, val_ds, labels, multilabel, cfg, skipped=skipped)


def _readable(split: dict, skipped: list[str]) -> dict:
    """The split without the files whose headers cannot be read (each named in ``skipped``), with the
    duration of each file kept (``seconds``)."""
    from ..audio.io import audio_info
    from ..util.errors import AudioError

    keep, seconds = [], []
    for i, p in enumerate(split["paths"]):
        try:
            seconds.append(audio_info(p).duration)
            keep.append(i)
        except AudioError as exc:
            skipped.append(str(exc))
    out = {"paths": [split["paths"][i] for i in keep], "targets": split["targets"][keep], "seconds": seconds}
    if "events" in split:
        out["events"] = [split["events"][i] for i in keep]
    return out


def _strong_task(tr: dict, te: dict, labels: list[str], cfg: DataConfig, seed: int, train: bool,
                 skipped: list[str]) -> TaskData:  # fmt: skip
    """Strongly labelled files cut into the 10 s chunks the detectors see (16 kHz, 250 frames each)."""
    import dataclasses

    from ..datasets.strong import StrongDataset
    from ..hub.registry import SED_FRONTEND
    from ..models.configs import SEQ_LEN

    if cfg.clip_seconds not in ("auto", None, 10, 10.0):
        raise DataError(f"the strong task trains on 10 s chunks (what the detectors see); got clip_seconds "
                        f"{cfg.clip_seconds}")  # fmt: skip
    cfg = dataclasses.replace(cfg, clip_seconds=10.0)
    te = te if "seconds" in te else _readable(te, [])
    common = dict(labels=labels, sample_rate=SED_FRONTEND.sample_rate, clip_seconds=10.0, n_frames=SEQ_LEN,
                  cache_dir=cfg.cache_dir, seed=seed)  # fmt: skip
    train_ds = None
    if train:
        aug = WaveAugment(gain_db=int(cfg.gain), roll=int(cfg.roll))
        train_ds = StrongDataset(tr["paths"], tr["events"], tr["seconds"], train=True, augment=aug, **common)
    val_ds = StrongDataset(te["paths"], te["events"], te["seconds"], train=False, **common)
    return TaskData(train_ds, val_ds, labels, True, cfg, level="frame", skipped=skipped)


def _hdf5_task(task, root: Path, cfg: DataConfig, seed: int, train: bool) -> TaskData:
    from ..models.labels import audioset_names

    if cfg.clip_seconds == "auto":
        import dataclasses

        cfg = dataclasses.replace(cfg, clip_seconds=10.0)
    if task == "audioset":
        files = [root / "balanced_train_segments_mp3.hdf", root / "unbalanced_train_segments_mp3.hdf"]
        if cfg.balanced_only or not files[1].exists():
            files = files[:1]
        val_files, labels, packed, openmic = [root / "eval_segments_mp3.hdf"], audioset_names(), True, False
    elif task == "fsd50k":
        files, val_files = [root / "FSD50K.train_mp3.hdf"], [root / "FSD50K.val_mp3.hdf"]
        vocab = root / "vocabulary.csv"
        labels = ([line.split(",")[1] for line in vocab.read_text().splitlines() if line.strip()]
                  if vocab.is_file() else [f"class_{i}" for i in range(200)])  # fmt: skip
        packed, openmic = True, False
    else:
        files, val_files = [root / "openmic_train.csv_mp3.hdf"], [root / "openmic_test.csv_mp3.hdf"]
        labels = [f"instrument_{i}" for i in range(20)]
        packed, openmic = False, True
    common = dict(labels=labels, packed=packed, openmic=openmic, clip_seconds=cfg.clip_seconds)
    train_ds = None
    if train:
        aug = WaveAugment(gain_db=int(cfg.gain), roll=int(cfg.roll))
        train_ds = HDF5Dataset(files, train=True, random_crop=cfg.random_crop, seed=seed, augment=aug,
                               wavmix=float(cfg.wavmix), **common)  # fmt: skip
        if task == "audioset":
            train_ds.sample_weights = class_weights_from_targets(train_ds.targets())
            train_ds.epoch_len = int(cfg.epoch_len or len(train_ds))
    val_ds = HDF5Dataset(val_files, train=False, seed=seed, **common)
    return TaskData(train_ds, val_ds, labels, True, cfg, has_mask=openmic)
