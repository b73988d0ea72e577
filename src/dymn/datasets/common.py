"""Pieces every training dataset shares: decoding, pad/crop, waveform augmentation, samplers, collation."""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..audio.io import load_audio, resample, to_mono
from ..util.errors import AudioError, DataError  # noqa: F401 (DataError is re-exported)


def decode_bytes(data: bytes, sample_rate: int = 32000) -> np.ndarray:
    """Decode an encoded clip (mp3, flac, ...) held in memory to mono float32 at ``sample_rate``."""
    try:
        with sf.SoundFile(io.BytesIO(bytes(data))) as f:
            sr = f.samplerate
            x = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"undecodable clip ({exc})") from None
    if len(x) == 0 or not np.isfinite(x).all():
        raise AudioError("empty or non-finite audio")
    return resample(to_mono(x), sr, sample_rate)


def pad_or_crop(x: np.ndarray, length: int | None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Zero-pad or cut to ``length`` samples: the first samples, or a random crop when ``rng`` is given."""
    if length is None:
        return x
    if len(x) < length:
        return np.pad(x, (0, length - len(x)))
    if len(x) > length:
        start = int(rng.integers(0, len(x) - length + 1)) if rng is not None else 0
        return x[start : start + length]
    return x


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Randomness for one item in one epoch: the same on resume, in any worker, on any rank."""
    return np.random.default_rng([seed, epoch, index])


@dataclass
class WaveAugment:
    """Waveform augmentations of the recipes: gain (+-dB), roll (+-samples)."""

    gain_db: int = 0
    roll: int = 0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.gain_db:
            g = int(rng.integers(-self.gain_db, self.gain_db))
            x = x * np.float32(10 ** (g / 20))
        if self.roll:
            x = np.roll(x, int(rng.integers(-self.roll, self.roll + 1)))
        return x


class AudioCache:
    """Decoded, resampled audio cached on disk (one .npy per file), so every epoch skips decoding."""

    def __init__(self, root: str | os.PathLike | None, sample_rate: int):
        self.root = Path(root) / f"sr{sample_rate}" if root else None
        self.sample_rate = sample_rate

    def load(self, path: str | os.PathLike) -> np.ndarray:
        if self.root is None:
            return load_audio(path, self.sample_rate)
        p = Path(path)
        st = p.stat()
        key = hashlib.sha1(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
        cached = self.root / key[:2] / f"{key}.npy"
        if cached.is_file():
            try:
                return np.load(cached)
            except (OSError, ValueError):
                pass  # a damaged cache entry is rebuilt
        x = load_audio(p, self.sample_rate)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, x)
        os.replace(tmp, cached)
        return x


class EpochSampler(torch.utils.data.Sampler[int]):
    """Indices for one epoch, deterministic in (seed, epoch), split across DDP ranks.

    ``weights`` given: ``num_samples`` indices drawn without replacement with probability proportional
    to the weights (the reference's balanced AudioSet sampling); otherwise a (shuffled) pass over all.
    """

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0, weights: np.ndarray | None = None,
                 num_samples: int | None = None, rank: int = 0, world_size: int = 1):  # fmt: skip
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.num_samples = min(num_samples or n, n)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        if self.weights is not None:
            # weighted sampling without replacement (Efraimidis-Spirakis keys)
            keys = np.log(rng.random(self.n)) / np.maximum(self.weights, 1e-12)
            return np.argsort(-keys, kind="stable")[: self.num_samples]
        return rng.permutation(self.n)[: self.num_samples] if self.shuffle else np.arange(self.num_samples)

    def __iter__(self) -> Iterator[int]:
        idx = self._indices()
        per_rank = math.ceil(len(idx) / self.world_size)
        idx = np.resize(idx, per_rank * self.world_size)  # pad by wrapping so every rank gets as many
        return iter(idx[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.world_size)


def collate(batch: list) -> dict | None:
    """Stack items (dicts); items that failed to decode (None) are dropped and counted."""
    good = [b for b in batch if b is not None]
    skipped = len(batch) - len(good)
    if not good:
        return {"skipped": skipped, "empty": True}
    out: dict = {"skipped": skipped, "empty": False}
    for key in good[0]:
        vals = [b[key] for b in good]
        if isinstance(vals[0], np.ndarray):
            out[key] = torch.from_numpy(np.stack(vals))
        elif isinstance(vals[0], (int, float, np.integer, np.floating)):
            out[key] = torch.tensor(vals)
        else:
            out[key] = vals
    return out


def class_weights_from_targets(targets: np.ndarray) -> np.ndarray:
    """The reference's balanced-sampling weights: clip weight = sum over its classes of 1000 / (100 + n_c)."""
    n_c = targets.sum(axis=0)
    w_c = 1000.0 / (100.0 + n_c)
    return (targets * w_c[None, :]).sum(axis=1)
