"""Clip-level tagging: decode files, batch clips of equal length, return sorted tags."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..audio.frontend import MelFrontend
from ..audio.io import Decoded, audio_info, read_audio
from ..models.info import AudioModel, ModelInfo, check_scores
from ..models.network import is_network
from ..runtime.api import compile
from ..util.errors import AudioError, ScoresError, UsageError, printable
from .timelines import Timeline
from .windows import window_timeline

# Below this, excerpts of real sounds agree with the whole sound's top tag in under a third of cases even
# when padded (benchmarks/results/short-clips-cpu.md): such clips are tagged with a warning.
SHORT_CLIP_SECONDS = 0.25
# Clips are tagged whole up to this length (a 10-minute clip at 32 kHz is 77 MB of samples); longer audio is
# what `timeline` streams. Files decoded together hold at most CHUNK_SECONDS of audio.
MAX_CLIP_SECONDS = 600.0
CHUNK_SECONDS = 1200.0


@dataclass
class Tag:
    label: str
    index: int
    probability: float


@dataclass
class TagResult:
    """The tags of one file; writes itself as text, JSON or CSV (:meth:`dumps` for a list)."""

    file: str
    duration: float
    tags: list[Tag]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_text(self) -> str:
        """``file (10.00 s)`` and one ``  label: probability`` line per tag (control characters escaped)."""
        lines = [f"{printable(self.file)} ({self.duration:.2f} s)"]
        lines += [f"  {printable(t.label)}: {t.probability:.3f}" for t in self.tags]
        return "\n".join(lines) + "\n"

    @staticmethod
    def dumps(results: Sequence[TagResult], fmt: str = "text") -> str:
        """Results as ``text``, ``json`` (a list of objects) or ``csv`` (one row per tag)."""
        if fmt == "json":
            return json.dumps([r.to_dict() for r in results], indent=2, allow_nan=False) + "\n"
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["file", "duration", "rank", "label", "index", "probability"])
            for r in results:
                for rank, t in enumerate(r.tags, 1):
                    w.writerow([r.file, f"{r.duration:.3f}", rank, t.label, t.index, f"{t.probability:.6f}"])
            return buf.getvalue()
        if fmt == "text":
            return "".join(r.to_text() for r in results)
        raise UsageError(f"unknown format {fmt!r}; choose text, json or csv")


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but no CUDA GPU is available to PyTorch")
    return dev


def top_tags(probs: np.ndarray, labels: Sequence[str], top_k: int = 10) -> list[Tag]:
    """Tags sorted by probability (stable for ties); ``top_k <= 0`` keeps all."""
    order = np.argsort(-probs, kind="stable")
    if top_k > 0:
        order = order[:top_k]
    return [Tag(labels[i], int(i), float(probs[i])) for i in order]


class Tagger:
    """The one place where waveforms become probabilities: owns the model's frontend and activation.

    ``model`` is anything :func:`dymn.load` accepts (a model object, a registry name, a file, "a,b,c").
    Clips shorter than the model's training length (``info.clip_seconds``) are zero-padded to it, as in
    training (``pad=False`` feeds them as they are). Clips are batched only with clips of the same padded
    length, so batched results equal one-by-one results (padding beyond that would change the convolutions
    near the clip end). ``backend``: where the network runs (see :func:`dymn.optimize`; default
    "auto", the fastest installed here for ``batch_size``).
    """

    def __init__(
        self,
        model: AudioModel | str | os.PathLike | None = None,
        device: str | torch.device | None = "cpu",
        batch_size: int = 8,
        amp: bool | None = None,
        fast: bool = True,
        pad: bool = True,
        backend: str | None = None,
    ):
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        if model is None or isinstance(model, (str, os.PathLike, list, tuple)):
            from ..hub.loader import load

            model = load(model)
        self.info: ModelInfo = model.info
        if self.info.level == "frame":
            raise UsageError(f"{self.info.name} is a frame-level sound event detector: use `dymn detect` "
                             "(dymn.detect); tags, timelines and embeddings need a tagger (dymn10_as)")  # fmt: skip
        if fast and is_network(model):
            # same outputs (within 1e-4), faster (the fastest backend here unless `backend` says); the caller's
            # model is left untouched
            model = compile(model, device=self.device, batch_size=batch_size, backend=backend)
        self.model = model.to(self.device).eval()
        # with the network in another runtime, the frontend runs on one PyTorch thread: PyTorch's idle
        # OpenMP threads spin after each parallel region and took cores from the runtime's own threads
        # (dymn10 on OpenVINO: about 10 % slower end to end; benchmarks/bench_end_to_end.py)
        self._frontend_threads = 1 if getattr(self.model, "backend", "torch") != "torch" else None
        self.frontend = None
        if self.info.input == "spectrogram":
            self.frontend = MelFrontend.from_config(self.info.frontend).to(self.device).eval()
        self.labels: list[str] = list(self.info.labels)
        self.sample_rate = self.info.sample_rate
        self.batch_size = batch_size
        self.min_samples = round((self.info.clip_seconds or 0) * self.sample_rate) if pad else 0
        # the released models were trained under fp16 autocast on GPUs; fp32 on CPU
        self.amp = (self.device.type == "cuda") if amp is None else amp

    def _autocast(self):
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def run_batch(self, waves: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(logits, embeddings) for a batch: a (B, N) array of equal-length waveforms, or a list of clips that
        pad to the same length (clips shorter than the training length are zero-padded to it)."""
        if isinstance(waves, (list, tuple)) and len({len(w) for w in waves}) > 1:
            clips = [torch.as_tensor(w, dtype=torch.float32, device=self.device)[None] for w in waves]
        else:
            x = torch.as_tensor(np.stack(waves) if isinstance(waves, (list, tuple)) else waves,
                                dtype=torch.float32, device=self.device)  # fmt: skip
            clips = [x[None] if x.dim() == 1 else x]
        samples = max(self.min_samples, *(c.shape[1] for c in clips))
        if any(self.min_samples < c.shape[1] < samples for c in clips):
            raise UsageError("clips batch together only when they have the same length or are all padded to "
                             f"the training length ({self.min_samples} samples)")  # fmt: skip
        with self._autocast():
            if self.frontend is None:  # an ensemble or an exported model with its own frontend
                x = torch.cat([torch.nn.functional.pad(c, (0, samples - c.shape[1])) for c in clips])
                logits, emb = self.model(x)
            else:  # the frames of a short clip's padding are silence: computed once (frontend.padded)
                with _torch_threads(self._frontend_threads):
                    spec = torch.cat([self.frontend.padded(c, samples) for c in clips])
                logits, emb = self.model(spec.unsqueeze(1))
        return logits.float().cpu().numpy(), emb.float().cpu().numpy()

    def logits_batch(self, waves: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> np.ndarray:
        """Logits for a batch (see :meth:`run_batch`)."""
        return self.run_batch(waves)[0]

    def logits(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Logits (len(waves), C) for clips of any lengths, batched by equal (padded) length."""
        out = np.zeros((len(waves), len(self.labels)), dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, w in enumerate(waves):
            # clips shorter than the training length are all padded to it: they batch together
            by_len.setdefault(max(len(w), self.min_samples), []).append(i)
        for idx in by_len.values():
            for s in range(0, len(idx), self.batch_size):
                part = idx[s : s + self.batch_size]
                out[part] = self.logits_batch([waves[i] for i in part])
        return out

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Logits -> probabilities with the model's activation (sigmoid, or softmax for single-label)."""
        return self.info.probabilities(logits)

    def predict(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, (len(waves), C)."""
        return self.probabilities(self.logits(waves))

    def timeline(
        self,
        audio: str | os.PathLike | np.ndarray,
        window: float | None = None,
        hop: float | None = None,
        embeddings: bool = False,
        block_seconds: float = 60.0,
        progress: bool = False,
    ) -> Timeline:
        """Class probabilities of ``audio`` (a path, streamed, or a waveform at the model's rate) in windows of
        ``window`` seconds (default 10) every ``hop`` (default 1); see :func:`dymn.timeline`."""
        return window_timeline(self, audio, window, hop, embeddings, block_seconds, progress)

    def tag_files(
        self,
        paths: Iterable[str | os.PathLike],
        top_k: int = 10,
        on_error: Callable[[str, str], None] | None = None,
        on_warning: Callable[[str, str], None] | None = None,
        progress: bool = False,
        chunk: int | None = None,
    ) -> Iterator[TagResult]:
        """Tag files in order; a file that cannot be tagged goes to ``on_error(path, message)`` and is skipped.

        Files longer than :data:`MAX_CLIP_SECONDS` are refused (``timeline`` is for long audio). Files are
        decoded in background threads, ``chunk`` at a time but never more than :data:`CHUNK_SECONDS` of
        audio (by their headers), the next chunk while the model runs on this one, so memory stays bounded
        whatever the files hold.
        """
        paths = [os.fspath(p) for p in paths]
        chunk = chunk or chunk_size(self.batch_size)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), unit="file", disable=not progress, desc="tagging")
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            # the next chunk decodes while the model runs on this one (one chunk ahead: memory stays bounded)
            def submit(part: list[str]) -> tuple[list[str], list]:
                return part, [pool.submit(decode_clip, p, self.sample_rate) for p in part]

            parts = _chunks(paths, chunk)
            ahead = next(parts, None)
            ahead = submit(ahead) if ahead is not None else None
            while ahead is not None:
                part, futures = ahead
                nxt = next(parts, None)
                ahead = submit(nxt) if nxt is not None else None
                decoded = [f.result() for f in futures]
                good = [(p, d) for p, d in zip(part, decoded) if not isinstance(d, str)]
                probs = self.predict([d.wave for _, d in good]) if good else np.zeros((0, len(self.labels)))
                results = {p: (d, pr) for (p, d), pr in zip(good, probs)}
                for p, d in zip(part, decoded):
                    bar.update(1)
                    if not isinstance(d, str):
                        try:
                            check_scores(results[p][1], p)
                        except ScoresError as exc:
                            d = str(exc)
                    if isinstance(d, str):
                        if on_error:
                            on_error(p, d)
                        continue
                    dec, pr = results[p]
                    duration = len(dec.wave) / self.sample_rate
                    if on_warning and dec.note:
                        on_warning(p, dec.note)
                    if duration < SHORT_CLIP_SECONDS and on_warning:
                        on_warning(p, f"only {duration * 1000:.0f} ms long: tags of clips under "
                                      f"{SHORT_CLIP_SECONDS:g} s are unreliable")  # fmt: skip
                    yield TagResult(p, round(duration, 4), top_tags(pr, self.labels, top_k))
        bar.close()


_threads_lock = threading.Lock()
_threads_users = 0
_threads_before = 0


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """PyTorch on ``count`` threads inside the block (None: unchanged). The setting is process-wide: threads
    that enter together share one change, and the last to leave restores it."""
    global _threads_users, _threads_before
    if count is None:
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
        _threads_users += 1
        torch.set_num_threads(count)  # by every caller: a thread that already ran PyTorch keeps its own count
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


def _chunks(paths: list[str], count: int) -> Iterator[list[str]]:
    """Consecutive files: blocks of ``count`` from the start of the list, each cut further so that a chunk
    holds at most CHUNK_SECONDS of audio (by the headers). The blocks are aligned to multiples of ``count``, so
    a batch job whose shards start at such multiples gives every file the same neighbours in the model's batch
    (PyTorch's results depend, at the level of float rounding, on what else is in the batch)."""
    for start in range(0, len(paths), count):
        yield from split_by_seconds(paths[start : start + count])


def split_by_seconds(paths: list[str]) -> Iterator[list[str]]:
    """Consecutive runs of ``paths`` holding at most CHUNK_SECONDS of audio each (by the headers)."""
    part, seconds = [], 0.0
    for p in paths:
        try:
            length = min(audio_info(p).duration, MAX_CLIP_SECONDS)
        except AudioError:
            length = 0.0  # reported when it is decoded
        if part and seconds + length > CHUNK_SECONDS:
            yield part
            part, seconds = [], 0.0
        part.append(p)
        seconds += length
    if part:
        yield part


def chunk_size(batch_size: int) -> int:
    """Files decoded together (and batched by equal length) by :meth:`Tagger.tag_files`."""
    return max(4 * batch_size, 16)


def decode_clip(path: str, sample_rate: int) -> Decoded | str:
    """A file decoded for tagging (at most :data:`MAX_CLIP_SECONDS`), or the one-line reason it cannot be."""
    try:
        return read_audio(path, sample_rate, max_seconds=MAX_CLIP_SECONDS)
    except AudioError as exc:
        return str(exc)
