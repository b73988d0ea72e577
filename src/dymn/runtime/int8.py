"""int8 post-training static quantization (NNCF) of MN networks, calibrated on real audio, run on the faster of
onnxruntime and OpenVINO (measured by :func:`dymn.runtime.choice.choose`). Needs ``pip install 'dymn[int8]'``.

Measured on the real mn04_as checkpoint and speed-ups per model: ``benchmarks/bench_int8.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..util.errors import UsageError
from .choice import choose, compile_model
from .export import ONNX_META_KEY, onnx_graph
from .graphs import cache_root, cached, graph_path

# int8 against the fastest fp32 backend on a 2-core AVX512-VNNI CPU (benchmarks/results/int8-cpu.md): mn10
# 2.1-2.3x, mn20 2.6-2.9x; mn04 1.2-1.9x and mn05 1.4-1.9x, whose small layers do not keep int8 units busy
MIN_WIDTH = 1.0


def calibration_inputs(model: nn.Module, calibration, limit: int = 300) -> list[np.ndarray]:
    """Log-mel inputs (1, 1, F, T) of real audio for post-training quantization: ``calibration`` is audio
    files, folders or waveforms at the model's rate; clips are padded or cut to the model's clip length (10 s)
    as tagging does; at most ``limit`` clips."""
    from ..audio.frontend import MelFrontend
    from ..audio.io import find_audio_files, load_audio

    if calibration is None or (isinstance(calibration, (list, tuple)) and not calibration):
        raise UsageError("int8 needs calibration audio like yours (a folder or a list of files; a few dozen to a few "
                         "hundred clips): calibration=... or --calibration DIR")  # fmt: skip
    if isinstance(calibration, (str, os.PathLike, np.ndarray)):
        calibration = [calibration]
    waves: list[np.ndarray] = [np.asarray(c, np.float32) for c in calibration if isinstance(c, np.ndarray)]
    paths = [c for c in calibration if not isinstance(c, np.ndarray)]
    if paths:
        files, problems = find_audio_files(paths)
        if problems and not files:
            raise UsageError(f"no calibration audio: {problems[0]}")
        for f in files[:limit]:
            waves.append(load_audio(f, model.info.sample_rate))
    if not waves:
        raise UsageError("the calibration inputs hold no audio files")
    n = int(round((model.info.clip_seconds or 10.0) * model.info.sample_rate))
    fe = MelFrontend.from_config(model.info.frontend).eval()
    out = []
    with torch.inference_mode():
        for w in waves[:limit]:
            w = np.pad(w[:n], (0, max(0, n - len(w))))
            out.append(fe(torch.from_numpy(np.ascontiguousarray(w))[None]).unsqueeze(1).numpy())
    return out


def check_offered(model: nn.Module) -> None:
    """Raise a :class:`UsageError` unless int8 pays for ``model``: MN networks of width 1.0 and up."""
    arch, width = getattr(model, "arch", None), float(model.info.config.get("width_mult", 1.0))
    if arch != "mn":
        raise UsageError(f"int8 is offered for MN models of width {MIN_WIDTH} and up, where it pays; the int8 graph "
                         f"of {arch or '?'} models ran 2x slower than fp32 (benchmarks/bench_int8.py)")  # fmt: skip
    if width < MIN_WIDTH:
        raise UsageError(f"int8 is offered for MN models of width {MIN_WIDTH} and up, where it pays (2.1-2.9x); "
                         f"{model.info.name} is narrower (width {width}; mn04 and mn05 ran only 1.2-1.9x faster): "
                         "run it in fp32, whose auto backend is already fast (benchmarks/bench_int8.py)")  # fmt: skip


def quantize(model: nn.Module, calibration, path: str | os.PathLike | None = None, *,
             any_width: bool = False, with_frontend: bool = False) -> Path:  # fmt: skip
    """An int8 ONNX graph of ``model`` (QDQ, per-channel weights) by NNCF post-training quantization,
    calibrated on ``calibration`` (see :func:`calibration_inputs`); written to ``path`` (atomically, with the
    dymn metadata) or cached. Runs on onnxruntime and OpenVINO. Needs ``pip install 'dymn[int8]'``.

    Offered for MN models of width 1.0 and up (:func:`check_offered`); ``any_width=True`` quantizes a narrower
    MN anyway (to measure it: mn04 and mn05 ran only 1.2-1.9x faster in int8). ``with_frontend``: the fp32 mel
    frontend in front of the int8 network (input ``waveform``), as ``export_onnx(with_frontend=True)`` has it."""
    from ..util.errors import require

    if not any_width:
        check_offered(model)
    require("nncf", "int8", "int8 quantization")
    inputs = calibration_inputs(model, calibration)
    digest = hashlib.sha256(b"".join(x.tobytes() for x in inputs)).hexdigest()[:12]
    if path is not None:
        return _write_int8(model, inputs, Path(path), with_frontend)
    path = graph_path(model, f"int8-{digest}{'-waveform' if with_frontend else ''}", ".onnx")
    return cached(cache_root(), path, lambda: _write_int8(model, inputs, path, with_frontend))


def _write_int8(model: nn.Module, inputs: list[np.ndarray], path: Path, with_frontend: bool = False) -> Path:
    """NNCF's int8 graph of ``model`` calibrated on ``inputs``, with the fp32 graph's dymn metadata (and the
    fp32 frontend in front with ``with_frontend``)."""
    import nncf
    import onnx

    from ..util.atomic import atomic_write

    fp32 = onnx.load(str(onnx_graph(model)))
    meta = {p.key: p.value for p in fp32.metadata_props}
    nncf.set_log_level(logging.ERROR)  # its notes are not the user's business
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its progress bars
        quantized = nncf.quantize(fp32, nncf.Dataset([{"spectrogram": x} for x in inputs]), subset_size=len(inputs),
                                  preset=nncf.QuantizationPreset.MIXED)  # fmt: skip
    if with_frontend:
        quantized = _frontend_in_front(model, quantized)
    if ONNX_META_KEY in meta:  # the file says what it is
        data = json.loads(meta[ONNX_META_KEY])
        data["dtype"] = "int8"
        data["input"] = "waveform" if with_frontend else data.get("input", "spectrogram")
        meta[ONNX_META_KEY] = json.dumps(data)
    del quantized.metadata_props[:]
    for key, value in meta.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: onnx.save(quantized, tmp))


def _frontend_in_front(model: nn.Module, network):
    """One graph: ``model``'s fp32 mel frontend (waveform in), its output fed to the int8 ``network``. The
    frontend stays fp32: its power spectrum spans too many decades for 8 bits."""
    import tempfile

    import onnx
    from onnx import compose

    from .export import frontend_graph

    with tempfile.TemporaryDirectory() as tmp:
        fe = onnx.load(str(frontend_graph(model, Path(tmp) / "frontend.onnx")))
    fe = compose.add_prefix(fe, "frontend/", rename_inputs=False)
    ir = max(fe.ir_version, network.ir_version)
    fe.ir_version = network.ir_version = ir
    merged = compose.merge_models(fe, network, io_map=[("frontend/spectrogram", "spectrogram")])
    onnx.checker.check_model(merged)
    return merged


def int8_model(model: nn.Module, calibration, backend: str = "auto", batch_size: int = 8, *,
               any_width: bool = False) -> nn.Module:  # fmt: skip
    """``model`` quantized to int8 (:func:`quantize`) on the faster of onnxruntime and OpenVINO (measured)."""
    graph = quantize(model, calibration, any_width=any_width)
    if backend in ("auto", None):
        backend, built = choose(model, batch_size, "cpu", int8_graph=graph)
        if built is not None:
            return built
    if backend == "torch":
        raise UsageError("int8 runs on onnxruntime or openvino, not the torch backend")
    return compile_model(model, backend, graph)
