"""What the service does with an upload, free of HTTP: decode it as ``dymn tag`` decodes a file, run the model
with concurrent requests batched (clips of equal length together), and answer as ``dymn tag`` / ``dymn
timeline`` / ``dymn embed`` would for that file."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..models.info import check_scores
from ..util.cancel import CancelledWorkError, cancel_on
from ..util.errors import AudioError, DymnError, ScoresError

API_VERSION = "v1"
MAX_VALUES = 2_000_000  # scores in one timeline answer (about 30 MB of JSON)


class ServiceError(DymnError):
    """A request the service refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Limits:
    max_upload_mb: float = 50.0
    max_seconds: float = 600.0
    max_batch: int = 8  # clips per model call when requests arrive together
    batch_wait_ms: float = 10.0  # how long the first clip of a batch waits for others
    max_decoding: int = 4  # uploads decoded at once (bounds memory under load)
    max_windows: int = 6000  # windows (or a detector's pooled windows) one timeline request may ask for
    upload_timeout_s: float = 60.0  # an upload body that has not arrived in full by then is refused (408)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class Batcher:
    """Runs the model on batches of clips gathered from concurrent requests: the first clip waits up to
    ``wait_ms`` for others of the same length; one model call at a time, in a worker thread."""

    def __init__(self, tagger, max_batch: int = 8, wait_ms: float = 10.0, enabled: bool = True):
        self.tagger = tagger
        self.max_batch = max_batch if enabled else 1
        self.wait = wait_ms / 1000.0 if enabled else 0.0
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dymn-model")
        self.batches = 0
        self.clips = 0

    async def run(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, embedding) of one clip."""
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.worker = asyncio.get_running_loop().create_task(self._work())
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((wave, fut))
        return await fut

    def _padded_length(self, wave: np.ndarray) -> int:
        return max(len(wave), self.tagger.min_samples)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        waiting: list = []
        while True:
            if not waiting:
                waiting.append(await self.queue.get())
            deadline = loop.time() + self.wait
            while len(waiting) < self.max_batch * 4:
                timeout = deadline - loop.time()
                if timeout <= 0 and not self.queue.qsize():
                    break
                try:
                    waiting.append(await asyncio.wait_for(self.queue.get(), max(timeout, 0)))
                except asyncio.TimeoutError:
                    break
            # the oldest clip's padded length decides the batch: as `dymn tag` batches (short clips are all
            # padded to the model's clip length, so they batch with each other)
            n = self._padded_length(waiting[0][0])
            batch = [w for w in waiting if self._padded_length(w[0]) == n][: self.max_batch]
            waiting = [w for w in waiting if not any(w is b for b in batch)]
            try:
                logits, emb = await loop.run_in_executor(self.pool, self.tagger.run_batch, [w for w, _ in batch])
                self.batches += 1
                self.clips += len(batch)
                for i, (_, fut) in enumerate(batch):
                    if not fut.done():
                        fut.set_result((logits[i], emb[i]))
            except Exception as exc:  # a failed batch fails its requests, never the worker
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)


class ServiceCore:
    """The model and what the endpoints compute. ``model``: anything :func:`dymn.load` takes."""

    def __init__(self, model=None, weights: str | None = None, limits: Limits | None = None, batching: bool = True,
                 device: str = "cpu", backend: str | None = None):  # fmt: skip
        from ..hub.loader import DEFAULT_MODEL, load
        from ..inference.detection import Detector
        from ..inference.tagging import Tagger

        net = model if model is not None and not isinstance(model, str) else load(
            model or (None if weights else DEFAULT_MODEL), weights=weights, device=device)  # fmt: skip
        if not net.info.trained:
            raise DymnError(f"{net.info.name} has a random classifier; serve a trained model such as {DEFAULT_MODEL}")
        self.net = net  # as loaded: what /local exports for the browser
        self.limits = limits or Limits()
        # a frame-level detector runs each file's 10 s chunks as one batch itself: no cross-request batching
        self.detector = Detector(net, device, self.limits.max_batch) if net.info.level == "frame" else None
        self.tagger = Tagger(net, device=device, batch_size=self.limits.max_batch, backend=backend) if (
            self.detector is None) else None  # fmt: skip
        self.runner = self.detector or self.tagger
        self.batcher = Batcher(self.tagger, self.limits.max_batch, self.limits.batch_wait_ms, batching) if (
            self.tagger is not None) else None  # fmt: skip
        self.decoding = asyncio.Semaphore(self.limits.max_decoding)
        self.pool = ThreadPoolExecutor(max_workers=self.limits.max_decoding, thread_name_prefix="dymn-decode")

    @property
    def info(self):
        return self.runner.info

    def describe(self) -> dict:
        i = self.info
        return {"name": i.name, "arch": i.arch, "task": i.task, "level": i.level, "classes": i.num_classes,
                "sample_rate": i.sample_rate, "embed_dim": i.embed_dim, "clip_seconds": i.clip_seconds,
                "source": i.source, "labels": list(i.labels)}  # fmt: skip

    # --- decoding -------------------------------------------------------------------------------------
    def _decode_file(self, path: str, name: str, stream: bool) -> tuple[np.ndarray | None, float]:
        from ..audio.io import audio_info, read_audio

        try:
            info = audio_info(path)
        except AudioError as exc:
            raise ServiceError(415, _named(str(exc), path, name)) from None
        if info.duration > self.limits.max_seconds:
            raise ServiceError(413, f"{name}: {info.duration:.1f} s of audio; this service takes at most "
                                    f"{self.limits.max_seconds:g} s")  # fmt: skip
        if stream:  # a timeline decodes its file itself, block by block
            return None, info.duration
        try:
            decoded = read_audio(path, self.runner.sample_rate, max_seconds=self.limits.max_seconds)
        except AudioError as exc:
            raise ServiceError(422, _named(str(exc), path, name)) from None
        return decoded.wave, len(decoded.wave) / self.runner.sample_rate

    async def _with_file(self, data: bytes, name: str, fn, stop: threading.Event | None = None):
        """Run ``fn(path)`` on the upload written to a private temporary file (removed afterwards); setting
        ``stop`` (the client went away) ends long work at its next step and frees the decoding slot."""
        if not data:
            raise ServiceError(422, "the request holds no audio: send a file (multipart field 'file') or the raw "
                                    "bytes as the body")  # fmt: skip
        async with self.decoding:
            fd, path = tempfile.mkstemp(prefix="dymn-upload-", suffix=os.path.splitext(name)[1][:12])
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                return await asyncio.get_running_loop().run_in_executor(self.pool, _stoppable, fn, path, stop)
            finally:
                os.unlink(path)

    # --- the endpoints' work ---------------------------------------------------------------------------
    @staticmethod
    def _finite(values: np.ndarray, name: str) -> np.ndarray:
        try:
            return check_scores(values, name)
        except ScoresError as exc:
            raise ServiceError(422, str(exc)) from None

    def _needs(self, level: str, what: str) -> None:
        """A clear 409 when an endpoint does not fit the kind of model served."""
        if self.info.level == level:
            return
        if level == "clip":
            raise ServiceError(409, f"{self.info.name} is a frame-level detector: it gives no clip {what}; use "
                                    f"/{API_VERSION}/detect or /{API_VERSION}/timeline")  # fmt: skip
        raise ServiceError(409, f"{self.info.name} is a clip tagger: frame-level events need a detector (dymn "
                                f"serve --model fmn10_tf256); /{API_VERSION}/timeline gives its events")  # fmt: skip

    async def tag(self, data: bytes, name: str, top_k: int = 10) -> dict:
        from ..inference.tagging import TagResult, top_tags

        self._needs("clip", "tags")
        wave, duration = await self._with_file(data, name, lambda p: self._decode_file(p, name, False))
        logits, _ = await self.batcher.run(wave)
        probs = self._finite(self.tagger.probabilities(logits[None])[0], name)
        result = TagResult(name, round(duration, 4), top_tags(probs, self.tagger.labels, top_k))
        return {**result.to_dict(), "model": self.info.name}

    async def embed(self, data: bytes, name: str) -> dict:
        self._needs("clip", "embedding")
        wave, duration = await self._with_file(data, name, lambda p: self._decode_file(p, name, False))
        _, emb = await self.batcher.run(wave)
        emb = self._finite(emb, name)
        return {"file": name, "duration": round(duration, 4), "model": self.info.name,
                "embedding": [float(x) for x in emb]}  # fmt: skip

    async def timeline(self, data: bytes, name: str, window: float | None = None, hop: float | None = None,
                       threshold=0.5, median: int | None = None, top_k: int = 10,
                       stop: threading.Event | None = None) -> dict:  # fmt: skip
        """Windows (a detector: its 40 ms frames, unless a window or hop is given) and events; ``median``
        defaults to 3 windows, or the reference's 9 frames for a detector's frames."""
        from ..inference.events import EventConfig, detect_events
        from ..inference.scoring import timeline
        from ..inference.timelines import check_window_hop

        frames = self.detector is not None and window is None and hop is None
        try:
            if not frames:
                check_window_hop(10.0 if window is None else window, 1.0 if hop is None else hop)
            cfg = EventConfig(threshold=threshold, median=median or (9 if frames else 3))
        except DymnError as exc:
            raise ServiceError(422, str(exc)) from None

        def run(path: str) -> dict:
            _, duration = self._decode_file(path, name, True)
            self._check_work(name, duration, frames, window, hop, top_k)
            try:
                tl = timeline(path, window=window, hop=hop, tagger=self.runner)
            except (AudioError, ScoresError) as exc:
                raise ServiceError(422, _named(str(exc), path, name)) from None
            tl.source = name
            return tl.to_dict(detect_events(tl, cfg), top_k=top_k, model=self.info.name)

        return await self._with_file(data, name, run, stop)

    def _check_work(self, name: str, duration: float, frames: bool, window, hop, top_k: int) -> None:
        """Refuse a timeline whose work or answer would be out of proportion: a tagger runs once per window, and
        every answer holds (windows x classes per window) numbers."""
        step = 0.04 if frames else (hop or (window if self.detector is not None and window else 1.0))
        count = duration / step
        if self.detector is None and count > self.limits.max_windows:
            raise ServiceError(422, f"{name}: {duration:.0f} s at a hop of {step:g} s is {count:.0f} windows; this "
                                    f"service runs at most {self.limits.max_windows} per request (use a longer "
                                    "hop)")  # fmt: skip
        values = count * (min(top_k, self.info.num_classes) or self.info.num_classes)
        if values > MAX_VALUES:
            raise ServiceError(422, f"{name}: {count:.0f} windows x {top_k or 'all'} classes is more than this "
                                    f"service answers ({MAX_VALUES:.0e} scores); use a smaller top_k or a longer "
                                    "hop")  # fmt: skip

    async def detect(self, data: bytes, name: str, threshold: float = 0.5, median: int = 9,
                     stop: threading.Event | None = None) -> dict:  # fmt: skip
        """Events of a frame-level detector (as ``dymn detect FILE --format json``)."""
        self._needs("frame", "events")
        from ..inference.events import check_decoding

        try:
            check_decoding(threshold, median)
        except DymnError as exc:
            raise ServiceError(422, str(exc)) from None

        def run(path: str) -> dict:
            self._decode_file(path, name, True)
            try:
                found = self.detector.detect(path, threshold=threshold, median=median)
            except (AudioError, ScoresError) as exc:
                raise ServiceError(422, _named(str(exc), path, name)) from None
            return {**found.to_dict(), "file": name}

        return await self._with_file(data, name, run, stop)


def _stoppable(fn, path: str, stop: threading.Event | None):
    with cancel_on(stop):
        try:
            return fn(path)
        except CancelledWorkError:
            raise ServiceError(499, "the client closed the request") from None


def _named(message: str, path: str, name: str) -> str:
    return message.replace(path, name)
