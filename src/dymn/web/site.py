"""``dymn export web``: a static site that tags audio in the browser (onnxruntime-web, WebAssembly), from files
and live from the microphone, with nothing uploaded anywhere.

The site is ``index.html``, ``page.js`` with ``model.js``, ``files.js`` and ``live.js`` (the page), ``worker.js``
(a Web Worker that runs the model), ``capture.js`` (an AudioWorklet that hands microphone samples over),
``style.css``, ``model.onnx`` (the network with its mel frontend: it takes waveforms at the model's sample rate)
and ``model.json`` (labels, sample rate, clip length, activation, live window and hop). onnxruntime-web comes
from a CDN URL pinned to :data:`ORT_VERSION`, or from a local copy of the npm package's ``dist/`` (``ort=DIR``:
the site then works without any network, e.g. on an intranet).
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

from torch import nn

from .._version import __version__
from ..inference.events import FRAME_SECONDS
from ..inference.tagging import MAX_CLIP_SECONDS, SHORT_CLIP_SECONDS
from ..inference.timelines import MAX_WINDOW, MIN_HOP, MIN_WINDOW
from ..models.network import is_network
from ..util.atomic import atomic_folder
from ..util.errors import UsageError

# the onnxruntime-web release the page was written and tested against (the CDN URL is pinned to it)
ORT_VERSION = "1.31.1"
ORT_CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_VERSION}/dist/"
# what the WebAssembly backend loads: the ES module, its loader and the SIMD (threaded) binary
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "page.js", "model.js", "files.js", "live.js", "worker.js", "capture.js", "style.css")
MODEL_FILE, CONFIG_FILE = "model.onnx", "model.json"
# a file larger than this is refused before it is read (the page holds a file's bytes and its decoded samples)
MAX_FILE_BYTES = 1 << 30


def find_ort(folder: str | os.PathLike) -> Path:
    """The ``dist/`` folder of an onnxruntime-web package: ``folder`` itself, its ``dist/``, or
    ``node_modules/onnxruntime-web/dist`` below it; raises a :class:`UsageError` that says how to get one."""
    folder = Path(folder)
    for candidate in (folder, folder / "dist", folder / "node_modules" / "onnxruntime-web" / "dist"):
        if all((candidate / f).is_file() for f in ORT_FILES):
            return candidate
    raise UsageError(f"{folder} holds no onnxruntime-web build ({', '.join(ORT_FILES)}); get one with `npm "
                     f"install onnxruntime-web@{ORT_VERSION}` and pass node_modules/onnxruntime-web/dist")  # fmt: skip


def site_config(model: nn.Module, *, dtype: str = "fp32", ort_base: str = ORT_CDN, window: float = 10.0,
                hop: float = 1.0) -> dict:  # fmt: skip
    """What ``model.json`` holds: everything the page needs to use ``model.onnx``."""
    info = model.info
    frame = info.level == "frame"
    config = {
        "dymn": __version__,
        "name": info.name,
        "arch": info.arch,
        "level": info.level,
        "task": info.task,
        "activation": info.activation,
        "labels": list(info.labels),
        "sample_rate": info.sample_rate,
        "clip_seconds": info.clip_seconds or 10.0,
        "window_seconds": window,
        "hop_seconds": hop,
        "max_file_seconds": MAX_CLIP_SECONDS,
        "max_file_bytes": MAX_FILE_BYTES,
        "short_clip_seconds": SHORT_CLIP_SECONDS,
        "top_k": 10,
        "model": MODEL_FILE,
        "dtype": dtype,
        "ort": {"version": ORT_VERSION, "base": ort_base},
    }
    if frame:  # detectors: frames of 40 ms, median filter and threshold as `dymn detect` defaults them
        config.update(frame_seconds=FRAME_SECONDS, median=9, threshold=0.5, mids=_mids(info.labels))
    return config


def _mids(labels) -> list[str] | None:
    from ..models.labels import audioset_strong_labels

    strong = audioset_strong_labels()
    return [lab.mid for lab in strong] if list(labels) == [lab.name for lab in strong] else None


def check_live(window: float, hop: float) -> None:
    """The live window and hop: the ranges `dymn timeline` takes, hop no longer than the window."""
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise UsageError(f"the live window must be between {MIN_WINDOW:g} and {MAX_WINDOW:g} seconds, got {window:g}")
    if not MIN_HOP <= hop <= window:
        raise UsageError(f"the live hop must be between {MIN_HOP:g} s and the window ({window:g} s), got {hop:g}")


def write_model(model: nn.Module, path: Path, *, int8: bool = False, calibration=None) -> str:
    """``model`` as ONNX with its frontend at ``path`` (int8: calibrated on ``calibration``); the dtype written."""
    from ..runtime.api import export_onnx_checked

    if int8:
        from ..runtime.int8 import quantize

        if model.info.level == "frame" or getattr(model, "arch", None) != "mn":
            raise UsageError(f"int8 is offered for MN taggers; {model.info.name} ({model.info.arch}) runs in fp32")
        # any width: in the browser int8 is no faster (one WebAssembly thread) but a smaller download, for mn04
        # too (4.9 instead of 7.5 MB; mn10 8.8 instead of 23: benchmarks/results/web-chromium.md)
        quantize(model, calibration, path, any_width=True, with_frontend=True)
        return "int8"
    export_onnx_checked(model, path, with_frontend=True)
    return "fp32"


def export_web(model: nn.Module, folder: str | os.PathLike, *, int8: bool = False, calibration=None,
               ort: str | os.PathLike | None = None, window: float = 10.0, hop: float = 1.0) -> Path:  # fmt: skip
    """Write the site for ``model`` into ``folder`` (atomically: a complete new folder replaces the old one).

    ``int8``: the network quantized (MN taggers; needs ``calibration`` audio); ``ort``: a local
    onnxruntime-web ``dist/`` copied in (default: loaded from :data:`ORT_CDN`); ``window``/``hop``: seconds of
    audio per live window, and between windows. ``folder`` must be new, empty, or a site dymn wrote.
    """
    if not is_network(model):
        raise UsageError(f"only MN, DyMN and frame-level MN networks run in the browser, not {model.info.name}")
    check_live(window, hop)
    ort_dir = find_ort(ort) if ort is not None else None
    folder = Path(folder)
    _check_target(folder)

    def fill(tmp: Path) -> None:
        dtype = write_model(model, tmp / MODEL_FILE, int8=int8, calibration=calibration)
        write_pages(tmp)
        if ort_dir is not None:
            (tmp / "ort").mkdir()
            for name in ORT_FILES:
                shutil.copyfile(ort_dir / name, tmp / "ort" / name)
        config = site_config(model, dtype=dtype, ort_base="ort/" if ort_dir else ORT_CDN, window=window, hop=hop)
        config["model_bytes"] = (tmp / MODEL_FILE).stat().st_size
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")

    return atomic_folder(folder, fill)


def write_pages(folder: Path) -> None:
    """Copy the page's files into ``folder``."""
    static = resources.files("dymn.web") / "static"
    for name in PAGE_FILES:
        (folder / name).write_bytes((static / name).read_bytes())


def _check_target(folder: Path) -> None:
    if folder.is_dir() and any(folder.iterdir()) and not (folder / CONFIG_FILE).is_file():
        raise UsageError(f"{folder} is not empty and is not a site dymn wrote: choose a new or empty folder")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file: choose a new or empty folder")
    if not folder.parent.is_dir():
        raise UsageError(f"cannot write {folder}: folder {folder.parent} does not exist")
