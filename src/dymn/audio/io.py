"""Audio input: decode any soundfile-readable file to mono float32 at the model's sample rate."""

from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..util.errors import AudioError

# Extensions picked up when a directory is searched for audio (files named explicitly are always tried).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"}
)


# A decoder that reads fewer frames than the header declares by more than this is reported (corrupt middle,
# cut-off copy); compressed formats may estimate their length slightly.
_SHORT_TOLERANCE = (0.02, 0.1)  # fraction, seconds
# Sample values beyond this are not audio (float files hold about +-1); their spectra would overflow.
MAX_SAMPLE_VALUE = 1e6
SAMPLE_RATES = (1000, 768_000)
MAX_CHANNELS = 64
_BLOCK_SECONDS = 1  # small blocks: a decoder error loses at most one block of a damaged file


class AudioWarning(UserWarning):
    """Audio that was decoded, but not all of it (the message says how much)."""


@dataclass
class Decoded:
    """A decoded file: mono float32 ``wave`` at the requested rate, and ``note`` if something was off."""

    wave: np.ndarray
    note: str | None = None


def _reason(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    # libsndfile prefixes its messages with the path (or a file object), which we print ourselves
    return re.sub(r"^Error opening .*?:\s*", "", msg).rstrip(".")


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not os.path.exists(p):
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    if not p.is_file():
        raise AudioError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: empty file")
    return p


@contextlib.contextmanager
def _open(path: str | os.PathLike):
    """A SoundFile on a file object: works for any file name (libsndfile's own open needs UTF-8 names)."""
    p = _check_path(path)
    with open(p, "rb") as raw:
        try:
            f = sf.SoundFile(raw)
        except Exception as exc:  # soundfile raises several types for undecodable input
            raise AudioError(f"{p}: not a readable audio file ({_reason(exc)})") from None
        with f:
            if not SAMPLE_RATES[0] <= f.samplerate <= SAMPLE_RATES[1]:
                raise AudioError(f"{p}: declares a sample rate of {f.samplerate} Hz, not an audio rate "
                                 f"({SAMPLE_RATES[0]}-{SAMPLE_RATES[1]} Hz)")  # fmt: skip
            if not 1 <= f.channels <= MAX_CHANNELS:
                raise AudioError(f"{p}: declares {f.channels} channels")
            _check_truncated(p, f)
            yield p, f


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, channels and frames of a file without decoding it (raises AudioError)."""
    with _open(path) as (_, f):
        return AudioInfo(f.samplerate, f.channels, f.frames)


@dataclass
class AudioInfo:
    samplerate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate


_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _check_truncated(p: Path, f: sf.SoundFile) -> None:
    # libsndfile silently reads what is there; its header log tells a cut-off download or copy
    m = _TRUNCATED.search(f.extra_info or "")
    if m and int(m.group(2)) < int(m.group(1)):
        raise AudioError(
            f"{p}: truncated file (header declares {m.group(1)} bytes of audio, only {m.group(2)} present)"
        )


def _short_note(p: Path, read: int, declared: int, sr: int) -> str | None:
    missing = declared - read
    if declared > 0 and missing > max(_SHORT_TOLERANCE[0] * declared, _SHORT_TOLERANCE[1] * sr):
        return (f"decoded {read / sr:.2f} s of the {declared / sr:.2f} s its header declares "
                "(corrupt or truncated file); the rest is missing")  # fmt: skip
    return None


def _check_samples(p: Path, data: np.ndarray) -> None:
    if not data.size:
        return
    hi, lo = float(data.max()), float(data.min())  # NaN propagates through both: no temporary arrays
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise AudioError(f"{p}: contains NaN or infinite samples")
    peak = max(hi, -lo)
    if peak > MAX_SAMPLE_VALUE:
        raise AudioError(f"{p}: sample values up to {peak:.3g}: not audio (expected about -1..1)")


def to_mono(data: np.ndarray) -> np.ndarray:
    """(frames, channels) or (frames,) -> (frames,) by averaging channels."""
    if data.ndim == 2:
        if data.shape[1] > 1:
            # summed column by column: numpy's mean over a short last axis is ~10x slower
            out = np.array(data[:, 0], dtype=np.float32)
            for c in range(1, data.shape[1]):
                out += data[:, c]
            out *= np.float32(1.0 / data.shape[1])
            return out
        data = data[:, 0]
    return np.ascontiguousarray(data, dtype=np.float32)


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality resampling (soxr HQ); a no-op when the rates are equal."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(x, dtype=np.float32)
    return soxr.resample(x, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


class _Blocks:
    """An open file decoded in small reads, each downmixed and resampled (streaming soxr) before the next: memory
    depends on the target rate and the length, never on the file's own rate or channels. ``read`` counts the
    file's frames decoded, ``failure`` says why the decoder stopped early (None: it did not)."""

    def __init__(self, p: Path, f: sf.SoundFile, sample_rate: int, limit: int | None = None):
        self.p, self.f, self.limit = p, f, limit
        self.sr, self.declared = f.samplerate, f.frames
        self.read, self.failure = 0, None
        self.resampler = (soxr.ResampleStream(self.sr, sample_rate, 1, dtype="float32", quality="HQ")
                          if self.sr != sample_rate else None)  # fmt: skip

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        """Mono float32 blocks at the target rate, from about ``block_frames`` of the file's frames each."""
        step = max(1, min(block_frames, _BLOCK_SECONDS * self.sr))
        while True:
            pieces, got, last = [], 0, False
            while got < block_frames:  # small reads: a decoder error loses at most one of them
                want = min(step, block_frames - got)
                if self.limit is not None:
                    want = min(want, self.limit - self.read - got)
                try:
                    piece = self.f.read(want, dtype="float32", always_2d=True) if want > 0 else None
                except Exception as exc:  # keep what decoded; the shortfall is reported by the caller
                    if self.read + got == 0:
                        raise AudioError(f"{self.p}: decoding failed ({_reason(exc)})") from None
                    self.failure, piece = _reason(exc), None
                if piece is None:
                    last = True
                    break
                _check_samples(self.p, piece)
                pieces.append(to_mono(piece))
                got += len(piece)
                if len(piece) < want:
                    last = True
                    break
            self.read += got
            mono = np.concatenate(pieces) if len(pieces) > 1 else (pieces[0] if pieces else np.zeros(0, np.float32))
            try:
                out = self.resampler.resample_chunk(mono, last=last) if self.resampler is not None else mono
            except Exception as exc:
                raise AudioError(f"{self.p}: cannot resample from {self.sr} Hz ({_reason(exc)})") from None
            if len(out):
                yield out
            if last:
                return

    def note(self) -> str | None:
        note = _short_note(self.p, self.read, self.declared, self.sr)
        if self.failure and note:
            note = f"{note} (the decoder stopped: {self.failure})"
        return note


def read_audio(path: str | os.PathLike, sample_rate: int = 32000, max_seconds: float | None = None) -> Decoded:
    """Decode a file to mono float32 at ``sample_rate``; ``note`` says if less was decoded than declared.

    Decoded block by block, each downmixed and resampled at once: memory depends on ``sample_rate`` and the
    length, not on the file's own rate or channels (a 655 kHz stereo FLAC costs what a 32 kHz mono one does).
    With ``max_seconds``, longer files are refused before decoding, and at most that much is ever read
    (memory is bounded by what is read, not by what a header claims). Raises :class:`AudioError` naming
    the file for missing, unreadable, empty, non-finite or absurd audio.
    """
    with _open(path) as (p, f):
        sr, declared = f.samplerate, f.frames
        if max_seconds is not None and declared > max_seconds * sr:
            raise AudioError(f"{p}: {declared / sr / 60:.1f} min long; clips are tagged whole up to "
                             f"{max_seconds / 60:g} min: use `dymn timeline` for long audio")  # fmt: skip
        limit = None if max_seconds is None else int(max_seconds * sr) + 1
        decoder = _Blocks(p, f, int(sample_rate), limit)
        parts = list(decoder.blocks(_BLOCK_SECONDS * sr))
    if decoder.read == 0:
        raise AudioError(f"{p}: contains no audio samples")
    if max_seconds is not None and decoder.read > max_seconds * sr:
        raise AudioError(f"{p}: longer than its header says and than {max_seconds / 60:g} min: "
                         "use `dymn timeline` for long audio")  # fmt: skip
    wave = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.float32))
    return Decoded(np.ascontiguousarray(wave, dtype=np.float32), decoder.note())


def load_audio(path: str | os.PathLike, sample_rate: int = 32000, max_seconds: float | None = None) -> np.ndarray:
    """Decode wav/flac/ogg/mp3/... to a mono float32 array at ``sample_rate`` (see :func:`read_audio`);
    a partial decode is reported as an :class:`AudioWarning`."""
    decoded = read_audio(path, sample_rate, max_seconds)
    if decoded.note:
        warnings.warn(f"{path}: {decoded.note}", AudioWarning, stacklevel=2)
    return decoded.wave


def stream_audio(
    path: str | os.PathLike, sample_rate: int = 32000, block_seconds: float = 30.0
) -> Iterator[np.ndarray]:
    """Decode a file block by block as mono float32 at ``sample_rate`` (bounded memory, streaming soxr).

    A file that ends before its header says is reported as an :class:`AudioWarning` at the end."""
    with _open(path) as (p, f):
        decoder = _Blocks(p, f, int(sample_rate))
        yield from decoder.blocks(max(1, int(block_seconds * f.samplerate)))
        if decoder.read == 0:
            raise AudioError(f"{p}: contains no audio samples")
        note = decoder.note()
        if note:
            warnings.warn(f"{p}: {note}", AudioWarning, stacklevel=2)


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
