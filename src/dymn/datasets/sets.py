"""Training datasets: AudioSet / FSD50K / OpenMIC HDF5 (PaSST layout), ESC-50, DCASE2020 1A, your own data.

Every item is a dict ``{"wave", "target", "mask", "id", "index"}``; an item whose audio cannot be
decoded is returned as None, dropped by :func:`~dymn.datasets.common.collate` and counted.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
import torch

from ..audio.io import AUDIO_EXTENSIONS
from ..util.errors import AudioError
from .common import AudioCache, DataError, WaveAugment, decode_bytes, item_rng, pad_or_crop


class ClipDataset(torch.utils.data.Dataset):
    """Base: loading, pad/crop, waveform augmentation and waveform mixing (``wavmix``)."""

    multilabel = True
    has_mask = False

    def __init__(self, labels: list[str], clip_samples: int | None, train: bool = False, seed: int = 0,
                 augment: WaveAugment | None = None, wavmix: float = 0.0, random_crop: bool = False):  # fmt: skip
        self.labels = list(labels)
        self.clip_samples = clip_samples
        self.train, self.seed, self.epoch = train, seed, 0
        self.augment = augment if train else None
        self.wavmix = wavmix if train else 0.0
        self.random_crop = random_crop and train

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def plain(self) -> ClipDataset:
        """The same clips without augmentation, waveform mixing or random crops."""
        import copy

        out = copy.copy(self)
        out.train, out.augment, out.wavmix, out.random_crop = False, None, 0.0, False
        return out

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
        raise NotImplementedError

    def _prepared(self, i: int, rng):
        wave, target, mask, cid = self.load(i)
        wave = pad_or_crop(wave, self.clip_samples, rng if self.random_crop else None)
        if self.augment is not None:
            wave = self.augment(wave, rng)
        return wave.astype(np.float32, copy=False), target.astype(np.float32), mask, cid

    def __getitem__(self, i: int):
        rng = item_rng(self.seed, self.epoch, int(i)) if self.train else None
        try:
            wave, target, mask, cid = self._prepared(int(i), rng)
            if self.wavmix and rng.random() < self.wavmix:
                # the recipes' waveform mix: lambda ~ Beta(2, 2) folded to >= 0.5, zero-mean signals
                j = int(rng.integers(len(self)))
                w2, t2, m2, _ = self._prepared(j, rng)
                lam = rng.beta(2, 2)
                lam = max(lam, 1 - lam)
                wave = wave - wave.mean()
                w2 = w2 - w2.mean()
                wave = (lam * wave + (1 - lam) * w2).astype(np.float32)
                wave -= wave.mean()
                target = (lam * target + (1 - lam) * t2).astype(np.float32)
                if mask is not None:
                    mask = np.maximum(mask, m2)
        except AudioError as exc:  # a corrupt clip must not stop an epoch: it is skipped, named and counted
            print(f"dymn: skipped clip {i} ({exc})", file=sys.stderr, flush=True)
            return None
        item = {"wave": wave, "target": target, "id": cid, "index": int(i)}
        if self.has_mask:
            item["mask"] = mask.astype(np.float32)
        return item


# --- HDF5 (PaSST layout) ------------------------------------------------------------------------------
_H5_KEYS = ("audio_name", "mp3", "target")


def check_hdf5(path: Path) -> int:
    """Number of clips in a PaSST-layout HDF5 file; DataError naming what is missing."""
    import h5py

    if not path.is_file():
        raise DataError(f"{path}: no such HDF5 file")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in _H5_KEYS if k not in f]
            if missing:
                raise DataError(f"{path}: missing dataset(s) {', '.join(missing)} "
                                f"(expected audio_name, mp3, target: the PaSST HDF5 layout)")  # fmt: skip
            n = len(f["audio_name"])
            if len(f["mp3"]) != n or len(f["target"]) != n:
                raise DataError(f"{path}: audio_name, mp3 and target have different lengths")
            return n
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None


def youtube_id(audio_name: bytes | str) -> str:
    """'Y--PJHxphWEs.mp3' or '00/Y--PJHxphWEs.mp3' -> '--PJHxphWEs' (the teacher-table key)."""
    name = audio_name.decode() if isinstance(audio_name, bytes) else audio_name
    name = name.rsplit("/", 1)[-1]
    if name.endswith(".mp3"):
        name = name[:-4]
    return name.split("Y", 1)[1] if "Y" in name else name


class HDF5Dataset(ClipDataset):
    """Clips stored as encoded bytes in HDF5 files (AudioSet, FSD50K: packed multi-hot targets;
    OpenMIC: float targets whose second half is the label mask)."""

    def __init__(self, files: list[Path], labels: list[str], packed: bool = True, openmic: bool = False,
                 sample_rate: int = 32000, clip_seconds: float | None = 10.0, **kw):  # fmt: skip
        super().__init__(labels, None if clip_seconds is None else int(clip_seconds * sample_rate), **kw)
        self.files = [Path(f) for f in files]
        self.sizes = [check_hdf5(f) for f in self.files]
        self.offsets = np.cumsum([0] + self.sizes)
        self.packed, self.has_mask = packed, openmic
        self.sample_rate = sample_rate
        self._handles: dict = {}
        self._pid = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self):
        # open HDF5 handles cannot travel to DataLoader workers started by spawn; each reopens its own
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, None
        return state

    def _h5(self, k: int):
        import h5py

        if self._pid != os.getpid():  # one set of handles per worker process
            self._handles, self._pid = {}, os.getpid()
        if k not in self._handles:
            self._handles[k] = h5py.File(self.files[k], "r")
        return self._handles[k]

    def _locate(self, i: int) -> tuple[int, int]:
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return k, i - int(self.offsets[k])

    def targets(self) -> np.ndarray:
        """All targets (N, C) without decoding audio (for sampling weights)."""
        import h5py

        out = []
        for f in self.files:
            with h5py.File(f, "r") as h:
                out.append(self._decode_target(h["target"][:]))
        return np.concatenate(out)[:, : len(self.labels)]

    def _decode_target(self, t: np.ndarray) -> np.ndarray:
        if self.packed:
            return np.unpackbits(t, axis=-1, count=len(self.labels)).astype(np.float32)
        return t.astype(np.float32)

    def load(self, i: int):
        k, j = self._locate(i)
        h = self._h5(k)
        cid = youtube_id(h["audio_name"][j])
        wave = decode_bytes(h["mp3"][j], self.sample_rate)
        target = self._decode_target(h["target"][j])
        mask = None
        if self.has_mask:  # OpenMIC: 20 confidences then 20 "was annotated" flags
            c = len(self.labels)
            target, mask = (target[:c] > 0.5).astype(np.float32), (target[c : 2 * c] > 0.5).astype(np.float32)
        return wave, target, mask, cid


# --- ESC-50 and DCASE2020 -------------------------------------------------------------------------------
class FileListDataset(ClipDataset):
    """Clips from audio files with single-label class indices (``multilabel=False``) or multi-hot targets."""

    def __init__(self, paths: list[Path], targets: np.ndarray, labels: list[str], multilabel: bool,
                 sample_rate: int = 32000, clip_seconds: float | None = None,
                 cache_dir: str | os.PathLike | None = None, **kw):  # fmt: skip
        super().__init__(labels, None if clip_seconds is None else int(clip_seconds * sample_rate), **kw)
        self.paths = [Path(p) for p in paths]
        self.targets_ = np.asarray(targets, dtype=np.float32)
        self.multilabel = multilabel
        self.cache = AudioCache(cache_dir, sample_rate)

    def __len__(self) -> int:
        return len(self.paths)

    def targets(self) -> np.ndarray:
        return self.targets_

    def load(self, i: int):
        return self.cache.load(self.paths[i]), self.targets_[i], None, self.paths[i].name


def _one_hot(idx: list[int], n: int) -> np.ndarray:
    out = np.zeros((len(idx), n), np.float32)
    out[np.arange(len(idx)), idx] = 1.0
    return out


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{path}: {what} not found")
    return path


def check_files_exist(paths: list[Path], source: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise DataError(f"{source} names {len(missing)} missing audio file(s), e.g. {shown}")


def esc50_split(root: Path, fold: int) -> tuple[dict, dict, list[str]]:
    """ESC-50 (meta/esc50.csv + audio_32k/ or audio/): train = other folds, test = ``fold``."""
    meta = _require(root / "meta" / "esc50.csv", "ESC-50 metadata (meta/esc50.csv)")
    audio = root / "audio_32k" if (root / "audio_32k").is_dir() else _require(root / "audio", "ESC-50 audio folder")
    rows = list(csv.DictReader(open(meta, newline="")))
    if not 1 <= fold <= 5:
        raise DataError(f"ESC-50 fold must be 1..5, got {fold}")
    names = {int(r["target"]): r["category"] for r in rows}
    labels = [names[i] for i in sorted(names)]
    split = {"train": ([], []), "test": ([], [])}
    for r in rows:
        part = "test" if int(r["fold"]) == fold else "train"
        split[part][0].append(audio / r["filename"])
        split[part][1].append(int(r["target"]))
    for part in split.values():
        check_files_exist(part[0], str(meta))
    train, test = ({"paths": p, "targets": _one_hot(t, len(labels))} for p, t in split.values())
    return train, test, labels


def dcase20_split(root: Path) -> tuple[dict, dict, list[str]]:
    """DCASE2020 task 1A development set: meta.csv + evaluation_setup/fold1_{train,evaluate}.csv."""
    meta = _require(root / "meta.csv", "DCASE2020 metadata (meta.csv)")
    rows = list(csv.DictReader(open(meta, newline=""), delimiter="\t"))
    labels = sorted({r["scene_label"] for r in rows})
    scene = {r["filename"]: labels.index(r["scene_label"]) for r in rows}
    parts = []
    for name in ("fold1_train.csv", "fold1_evaluate.csv"):
        setup = _require(root / "evaluation_setup" / name, f"DCASE2020 split file ({name})")
        files = [r["filename"] for r in csv.DictReader(open(setup, newline=""), delimiter="\t")]
        paths = [root / f for f in files]
        check_files_exist(paths, str(setup))
        parts.append({"paths": paths, "targets": _one_hot([scene[f] for f in files], len(labels))})
    return parts[0], parts[1], labels


# --- your own data ------------------------------------------------------------------------------------
def folder_split(root: Path, val_fraction: float = 0.2, seed: int = 0) -> tuple[dict, dict, list[str]]:
    """One sub-folder per class (single-label). ``train/`` and ``test/`` (or ``val/``) sub-trees are used
    as given; otherwise a stratified split of ``val_fraction`` is drawn (seeded); ``val_fraction`` 1: every clip
    is held out (evaluating a whole folder). A folder holding only ``test/`` is that held-out tree, not a class."""
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    held = next((root / d for d in ("test", "val", "valid") if (root / d).is_dir()), None)
    if held is not None and ((root / "train").is_dir() or val_fraction >= 1):
        if not (root / "train").is_dir():  # evaluation: the held-out tree is the whole selection
            te_p, te_y, labels = _scan_classes(held)
            return ({"paths": [], "targets": _one_hot([], len(labels))},
                    {"paths": te_p, "targets": _one_hot(te_y, len(labels))}, labels)  # fmt: skip
        tr_p, tr_y, labels = _scan_classes(root / "train")
        te_p, te_y, te_labels = _scan_classes(held, labels)
        return ({"paths": tr_p, "targets": _one_hot(tr_y, len(labels))},
                {"paths": te_p, "targets": _one_hot(te_y, len(labels))}, labels)  # fmt: skip
    if held is not None and not any(d.is_dir() and d != held and not d.name.startswith(".") for d in root.iterdir()):
        raise DataError(f"{root}: holds only {held.name}/ (held-out clips, not a class); add train/ beside it with "
                        "the class folders to learn from")  # fmt: skip
    paths, ys, labels = _scan_classes(root)
    if val_fraction >= 1:
        return ({"paths": [], "targets": _one_hot([], len(labels))},
                {"paths": paths, "targets": _one_hot(ys, len(labels))}, labels)  # fmt: skip
    counts = np.bincount(np.asarray(ys), minlength=len(labels))
    few = [f"{labels[c]} ({counts[c]})" for c in range(len(labels)) if counts[c] < 2]
    if few:
        raise DataError(f"{root}: every class needs at least 2 clips (one to learn from, one to check); too few: "
                        f"{', '.join(few[:10])}{' ...' if len(few) > 10 else ''}")  # fmt: skip
    rng = np.random.default_rng(seed)
    test = np.zeros(len(paths), bool)
    for c in range(len(labels)):
        idx = np.nonzero(np.asarray(ys) == c)[0]
        k = int(round(len(idx) * val_fraction))
        test[rng.permutation(idx)[:k]] = True
    pick = lambda m: [p for p, t in zip(paths, test) if t == m]  # noqa: E731
    ys_arr = np.asarray(ys)
    return ({"paths": pick(False), "targets": _one_hot(list(ys_arr[~test]), len(labels))},
            {"paths": pick(True), "targets": _one_hot(list(ys_arr[test]), len(labels))}, labels)  # fmt: skip


def _scan_classes(root: Path, labels: list[str] | None = None):
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if labels is None:
        labels = classes
        if len(labels) < 2:
            raise DataError(f"{root}: need at least two class sub-folders, found {len(labels)}")
    paths, ys = [], []
    for c in classes:
        if c not in labels:
            raise DataError(f"{root / c}: class {c!r} is not among the training classes")
        files = sorted(p for p in (root / c).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files and labels is classes:
            raise DataError(f"{root / c}: class folder without audio files; add clips or remove the folder")
        paths += files
        ys += [labels.index(c)] * len(files)
    if not paths:
        raise DataError(f"{root}: no audio files in the class folders")
    return paths, ys, labels


def csv_split(csv_path: Path, val_csv: Path | None = None, val_fraction: float = 0.2, seed: int = 0,
              labels: list[str] | None = None) -> tuple[dict, dict, list[str]]:  # fmt: skip
    """``filename,labels`` CSV (multi-label, labels separated by ';', paths relative to the CSV)."""
    rows = _read_label_csv(csv_path)
    if labels is None:
        labels = sorted({lab for _, labs in rows for lab in labs})
    if val_csv is not None:
        val_rows = _read_label_csv(val_csv)
    else:
        perm = np.random.default_rng(seed).permutation(len(rows))
        k = int(round(len(rows) * val_fraction))
        val_rows = [rows[i] for i in perm[:k]]
        rows = [rows[i] for i in perm[k:]]

    def part(rs, source):
        unknown = sorted({lab for _, labs in rs for lab in labs} - set(labels))
        if unknown:
            raise DataError(f"{source}: label(s) not in the training set: {', '.join(unknown[:5])}")
        t = np.zeros((len(rs), len(labels)), np.float32)
        for i, (_, labs) in enumerate(rs):
            t[i, [labels.index(lab) for lab in labs]] = 1
        return {"paths": [p for p, _ in rs], "targets": t}

    return part(rows, csv_path), part(val_rows, val_csv or csv_path), labels


def _read_label_csv(path: Path) -> list[tuple[Path, list[str]]]:
    if not path.is_file():
        raise DataError(f"{path}: no such CSV file")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"filename", "labels"} <= set(reader.fieldnames):
            raise DataError(f"{path}: needs the columns filename,labels (labels separated by ';')")
        rows = [(path.parent / r["filename"], [x.strip() for x in (r["labels"] or "").split(";") if x.strip()])
                for r in reader]  # fmt: skip
    if not rows:
        raise DataError(f"{path}: no rows")
    check_files_exist([p for p, _ in rows], str(path))
    return rows
