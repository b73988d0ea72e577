"""Above both Tagger and Detector: :func:`scorer` (the right one for a model) and the public :func:`timeline`."""

from __future__ import annotations

import os

import numpy as np

from ..hub.loader import load
from ..util.errors import UsageError
from .detection import Detector
from .tagging import Tagger, resolve_device
from .timelines import Timeline


def scorer(
    model=None,
    device: str = "cpu",
    batch_size: int = 8,
    backend: str | None = None,
    *,
    weights: str | os.PathLike | None = None,
    detectors: bool = True,
    trained: bool = False,
    pad: bool = True,
):
    """What turns a model's audio into scores over time: a :class:`~dymn.inference.tagging.Tagger` for a clip-level
    model, a :class:`Detector` for a frame-level one (``model``, ``weights``: what :func:`dymn.load` takes;
    ``backend``: where a tagger's network runs, see :func:`dymn.optimize`). ``detectors=False`` asks for a tagger
    (a detector is refused); ``trained=True`` refuses a model with random weights or a random classifier; ``pad``:
    see :class:`~dymn.inference.tagging.Tagger`."""
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    resolve_device(device)  # a bad device fails before the model is loaded
    if model is None or weights is not None or isinstance(model, (str, os.PathLike, list, tuple)):
        model = load(model, weights=weights)
    if trained:
        model.info.require_trained()
    if detectors and getattr(model.info, "level", "clip") == "frame":
        return Detector(model, device, batch_size)
    return Tagger(model, device=device, batch_size=batch_size, backend=backend, pad=pad)


def timeline(
    audio: str | os.PathLike | np.ndarray,
    model=None,
    window: float | None = None,
    hop: float | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    embeddings: bool = False,
    tagger=None,
    block_seconds: float = 60.0,
    progress: bool = False,
) -> Timeline:
    """Score ``audio`` (a path, streamed from disk, or a waveform at the model's rate) window by window.

    ``model`` is anything :func:`dymn.load` takes (default ``dymn10_as``); windows are batched
    ``batch_size`` at a time. ``progress`` shows a bar (seconds of audio) on stderr. A clip tagger scores
    windows of ``window`` seconds (default 10) every ``hop`` (default 1). A frame-level detector (``fmn...``)
    gives its 40 ms frames; with ``window``/``hop`` the peak of the frames in each window.
    ``tagger``: a :class:`~dymn.inference.tagging.Tagger` or :class:`~dymn.inference.detection.Detector` to use
    instead of ``model``.
    """
    if tagger is None:
        tagger = scorer(model, device=device, batch_size=batch_size)
    if getattr(tagger.info, "level", "clip") == "frame":
        if embeddings:
            raise UsageError(f"{tagger.info.name} is a frame-level detector: it gives no window embeddings")
        return tagger.timeline(audio, window, hop)
    return tagger.timeline(audio, window, hop, embeddings=embeddings, block_seconds=block_seconds,
                           progress=progress)  # fmt: skip
