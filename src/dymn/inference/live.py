"""Live tagging: a ring buffer that yields overlapping windows from a stream, and announcements of
events as they start (no repeats while an event goes on)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..audio.io import MAX_CHANNELS, MAX_SAMPLE_VALUE, SAMPLE_RATES, resample
from ..util.errors import AudioError, DymnError, MissingDependencyError, UsageError, printable
from .tagging import Tagger, top_tags
from .timelines import check_window_hop

PCM_FORMATS = {"s16le": np.dtype("<i2"), "s32le": np.dtype("<i4"), "f32le": np.dtype("<f4")}


class RollingWindow:
    """Keeps the last ``window`` samples; :meth:`push` yields a window every ``hop`` new samples.

    Before the buffer first fills, nothing is yielded unless ``emit_partial`` is set, in which case
    the audio so far is yielded at each hop (so a live display starts after one hop, not one window).
    """

    def __init__(self, window: int, hop: int, emit_partial: bool = False):
        if window < 1 or hop < 1:
            raise UsageError("window and hop must be positive")
        if hop > window:
            raise UsageError(f"hop ({hop}) must not be larger than the window ({window})")
        self.window, self.hop, self.emit_partial = window, hop, emit_partial
        self._buf = np.zeros(window, dtype=np.float32)
        self._filled = 0  # valid samples at the end of _buf
        self._since = 0  # samples since the last yielded window
        self.total = 0

    def push(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        pos = 0
        while pos < len(samples):
            take = min(len(samples) - pos, self.hop - self._since)
            chunk = samples[pos : pos + take]
            self._buf = np.roll(self._buf, -take)
            self._buf[-take:] = chunk
            self._filled = min(self.window, self._filled + take)
            self._since += take
            self.total += take
            pos += take
            if self._since == self.hop:
                self._since = 0
                if self._filled == self.window:
                    yield self._buf.copy()
                elif self.emit_partial:
                    yield self._buf[-self._filled :].copy()


@dataclass
class Announcement:
    time: float  # seconds since the start of the stream (end of the window)
    label: str
    probability: float


class LiveTagger:
    """Tags each window; announces a label when it rises above ``threshold`` and again only after it
    has fallen below ``release`` (hysteresis), so an ongoing sound is announced once."""

    def __init__(self, tagger: Tagger, window: float = 10.0, hop: float = 1.0, threshold: float = 0.3,
                 release: float | None = None, top_k: int = 5):  # fmt: skip
        if not 0 < threshold < 1:
            raise UsageError("threshold must be between 0 and 1")
        check_window_hop(window, hop)
        self.tagger = tagger
        sr = tagger.sample_rate
        self.ring = RollingWindow(round(window * sr), round(hop * sr), emit_partial=True)
        self.threshold = threshold
        self.release = threshold * 0.7 if release is None else release
        if self.release > threshold:
            raise UsageError("release must not exceed the threshold")
        self.top_k = top_k
        self.active: set[int] = set()

    def feed(self, samples: np.ndarray) -> Iterator[tuple[float, list, list[Announcement]]]:
        """Push samples (at the model's rate); per finished hop yield (time, top tags, new events)."""
        for win in self.ring.push(samples):
            probs = self.tagger.predict([win])[0]
            t = self.ring.total / self.tagger.sample_rate
            new = []
            for i in np.nonzero(probs >= self.threshold)[0]:
                if i not in self.active:
                    self.active.add(int(i))
                    new.append(Announcement(t, self.tagger.labels[i], float(probs[i])))
            self.active = {i for i in self.active if probs[i] >= self.release}
            yield (
                t,
                top_tags(probs, self.tagger.labels, self.top_k),
                sorted(new, key=lambda a: -a.probability),
            )


def pcm_blocks(stream, rate: int, target_rate: int, fmt: str = "s16le", channels: int = 1,
               block_seconds: float = 0.25) -> Iterator[np.ndarray]:  # fmt: skip
    """Raw interleaved PCM from a binary stream -> mono float32 blocks at ``target_rate``."""
    if fmt not in PCM_FORMATS:
        raise UsageError(f"unknown PCM format {fmt!r}; choose one of {', '.join(PCM_FORMATS)}")
    if not SAMPLE_RATES[0] <= rate <= SAMPLE_RATES[1]:
        raise UsageError(f"--rate must be {SAMPLE_RATES[0]} to {SAMPLE_RATES[1]} Hz, got {rate}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise UsageError(f"--channels must be 1 to {MAX_CHANNELS}, got {channels}")
    dtype = PCM_FORMATS[fmt]
    frame = dtype.itemsize * channels
    size = max(1, int(block_seconds * rate)) * frame
    scale = 1.0 if dtype.kind == "f" else float(2 ** (8 * dtype.itemsize - 1))
    rest = b""
    import soxr

    rs = soxr.ResampleStream(rate, target_rate, 1, dtype="float32") if rate != target_rate else None
    while True:
        data = stream.read(size)
        done = not data
        data = rest + (data or b"")
        usable = len(data) - len(data) % frame
        rest = data[usable:]
        x = np.frombuffer(data[:usable], dtype=dtype).astype(np.float32) / scale
        if x.size and not (np.isfinite(x).all() and np.abs(x).max() <= MAX_SAMPLE_VALUE):
            raise AudioError(f"stdin: the samples are not {fmt} audio (NaN, infinite or absurd values); "
                             "check --pcm-format, --rate and --channels")  # fmt: skip
        x = x.reshape(-1, channels).mean(axis=1) if channels > 1 else x
        out = rs.resample_chunk(x, last=done) if rs is not None else x
        if len(out):
            yield out
        if done:
            return


def microphone_blocks(target_rate: int, block_seconds: float = 0.25, device=None) -> Iterator[np.ndarray]:
    """Mono float32 blocks from the default (or given) input device, via sounddevice."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise MissingDependencyError(
            f"microphone input needs the sounddevice package and PortAudio ({exc}); "
            "pip install 'dymn[live]', or pipe raw PCM with --stdin"
        ) from None
    try:
        info = sd.query_devices(device, "input")
    except Exception as exc:
        raise DymnError(f"no microphone available ({exc}); pipe raw PCM with --stdin instead") from None
    rate = int(info["default_samplerate"])
    with sd.InputStream(samplerate=rate, channels=1, dtype="float32", device=device,
                        blocksize=int(block_seconds * rate)) as stream:  # fmt: skip
        while True:
            data, _ = stream.read(int(block_seconds * rate))
            yield resample(data[:, 0], rate, target_rate)


def run_live(blocks: Iterable[np.ndarray], live: LiveTagger, out=None, fmt: str = "text") -> int:
    """Print the top tags at each hop and a line per newly started event; returns windows seen.

    ``text``: ``  12.00 s  Chirp, tweet: 0.81 | Bird vocalization, bird call, bird song: 0.79`` (labels
    contain commas, so tags are separated by `` | ``); ``jsonl``: one JSON object per hop.
    """
    out = out or sys.stdout
    n = 0
    for t, tags, new in (item for block in blocks for item in live.feed(block)):
        n += 1
        if fmt == "jsonl":
            doc = {"time": round(t, 3), "tags": [{"label": g.label, "probability": round(g.probability, 4)}
                                                 for g in tags],
                   "started": [{"label": a.label, "probability": round(a.probability, 4)} for a in new]}  # fmt: skip
            print(json.dumps(doc), file=out, flush=True)
            continue
        for a in new:
            print(f"[{t:8.2f} s] started: {printable(a.label)}: {a.probability:.2f}", file=out, flush=True)
        summary = " | ".join(f"{printable(tag.label)}: {tag.probability:.2f}" for tag in tags)
        print(f"{t:8.2f} s  {summary}", file=out, flush=True)
    return n
