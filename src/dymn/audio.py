"""Audio input: decode any soundfile-readable file to mono float32 at the model's sample rate."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

# Extensions picked up when a directory is searched for audio (files named explicitly are always tried).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"}
)


def _reason(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    # libsndfile prefixes its messages with the path, which we already print
    return re.sub(r"^Error opening '.*?':\s*", "", msg).rstrip(".")


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Sample rate, channels and frames of a file without decoding it (raises AudioError)."""
    path = _check_path(path)
    try:
        return sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for undecodable input
        raise AudioError(f"{path}: not a readable audio file ({_reason(exc)})") from None


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not os.path.exists(p):
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: empty file")
    return p


_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _check_truncated(p: Path, f: sf.SoundFile) -> None:
    # libsndfile silently reads what is there; its header log tells a cut-off download or copy
    m = _TRUNCATED.search(f.extra_info or "")
    if m and int(m.group(2)) < int(m.group(1)):
        raise AudioError(
            f"{p}: truncated file (header declares {m.group(1)} bytes of audio, only {m.group(2)} present)"
        )


def to_mono(data: np.ndarray) -> np.ndarray:
    """(frames, channels) or (frames,) -> (frames,) by averaging channels."""
    if data.ndim == 2:
        data = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(data, dtype=np.float32)


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality resampling (soxr HQ); a no-op when the rates are equal."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(x, dtype=np.float32)
    return soxr.resample(x, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | os.PathLike, sample_rate: int = 32000) -> np.ndarray:
    """Decode wav/flac/ogg/mp3/... to a mono float32 array at ``sample_rate``.

    Raises :class:`AudioError` naming the file for missing, unreadable, empty or non-finite audio.
    """
    p = _check_path(path)
    try:
        with sf.SoundFile(str(p)) as f:
            _check_truncated(p, f)
            sr = f.samplerate
            data = f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"{p}: not a readable audio file ({_reason(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{p}: contains no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{p}: contains NaN or infinite samples")
    try:
        return resample(to_mono(data), int(sr), int(sample_rate))
    except Exception as exc:  # e.g. a sample rate soxr cannot convert from
        raise AudioError(f"{p}: cannot resample from {sr} Hz ({_reason(exc)})") from None


def stream_audio(
    path: str | os.PathLike, sample_rate: int = 32000, block_seconds: float = 30.0
) -> Iterator[np.ndarray]:
    """Decode a file block by block as mono float32 at ``sample_rate`` (bounded memory, streaming soxr)."""
    p = _check_path(path)
    try:
        f = sf.SoundFile(str(p))
    except Exception as exc:
        raise AudioError(f"{p}: not a readable audio file ({_reason(exc)})") from None
    with f:
        _check_truncated(p, f)
        sr = f.samplerate
        resampler = (
            soxr.ResampleStream(sr, sample_rate, 1, dtype="float32", quality="HQ") if sr != sample_rate else None
        )
        block = max(1, int(block_seconds * sr))
        any_audio = False
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(f"{p}: decoding failed ({_reason(exc)})") from None
            last = len(data) < block
            if len(data):
                any_audio = True
                if not np.isfinite(data).all():
                    raise AudioError(f"{p}: contains NaN or infinite samples")
            mono = to_mono(data) if len(data) else np.zeros(0, np.float32)
            out = resampler.resample_chunk(mono, last=last) if resampler is not None else mono
            if len(out):
                yield out
            if last:
                break
        if not any_audio:
            raise AudioError(f"{p}: contains no audio samples")


def find_audio_files(paths, extensions=AUDIO_EXTENSIONS) -> tuple[list[Path], list[str]]:
    """Expand files and directories (recursively, sorted) into audio files.

    Returns ``(files, problems)``: a missing path is a problem, not an exception, so a batch goes on.
    """
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in extensions)
            if not found:
                problems.append(f"{p}: directory contains no audio files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or directory")
    return files, problems
