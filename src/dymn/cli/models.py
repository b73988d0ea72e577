"""``dymn models``, ``dymn info``, ``dymn export`` and ``dymn bench``: commands about the models themselves
(registered into the main CLI)."""

from __future__ import annotations

import argparse

from ..hub.loader import DEFAULT_MODEL
from ..util.errors import UsageError, printable
from .common import check_outputs, command, emit, err, load_model, split_list


def register(sub) -> None:
    m = command(sub, "models", "list the registered models", cmd_models)
    m.add_argument("pattern", nargs="?", default=None, help="filter, e.g. 'dymn*' or 'mn10'")
    m.add_argument("--all", action="store_true", help="include ImageNet initialisation checkpoints")

    i = command(sub, "info", "parameters, MACs and receptive field of a model", cmd_info)
    i.add_argument("name", nargs="?", default=None, help=f"registry name or 'mn' / 'dymn' (default {DEFAULT_MODEL})")
    i.add_argument("--weights", default=None, help="describe a local checkpoint (with NAME for a plain state dict)")
    i.add_argument("--seconds", type=float, default=10.0, help="clip length for the MAC count")

    e = command(sub, "export", "export a model (released weights by default) to ONNX, TorchScript or a web page",
                cmd_export)  # fmt: skip
    e.add_argument(
        "format",
        choices=("onnx", "torchscript", "web"),
        help="file format; web: a static site that tags files and the microphone in a browser",
    )
    e.add_argument("folder", nargs="?", default=None, help="web: the site's folder (new, empty, or a site dymn wrote)")
    e.add_argument("--model", default=None,
                   help=f"registry name (its released weights) or the architecture of --weights "
                        f"(default {DEFAULT_MODEL})")  # fmt: skip
    e.add_argument("--weights", default=None, help="local weights (dymn checkpoint, or state dict with --model)")
    e.add_argument("--with-frontend", action="store_true", help="include the mel frontend: waveform input")
    e.add_argument("--output", "-o", default=None, help="output file (written atomically); web: the site's folder")
    e.add_argument(
        "--int8",
        action="store_true",
        help="post-training int8 quantization (NNCF, the [int8] extra), calibrated on --calibration; "
        "for MN models of width 1.0 and up, where it pays",
    )
    e.add_argument(
        "--calibration",
        nargs="+",
        default=None,
        metavar="AUDIO",
        help="--int8: audio files or folders like the ones you will tag (a few dozen to a few hundred)",
    )
    e.add_argument("--ort", default=None, metavar="DIR",
                   help="web: copy this onnxruntime-web dist/ into the site (npm install onnxruntime-web) instead of "
                        "loading it from a pinned CDN URL")  # fmt: skip
    e.add_argument("--window", type=float, default=10.0, help="web: seconds of sound per live window")
    e.add_argument("--hop", type=float, default=1.0, help="web: seconds between live windows")

    b = command(sub, "bench", "inference speed: reference-style vs eager vs every backend (markdown table)", cmd_bench)
    b.add_argument("--models", default="mn04_as,mn10_as,dymn04_as,dymn10_as,dymn20_as",
                   help="comma-separated registry names (random weights: speed only)")  # fmt: skip
    b.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    b.add_argument("--threads", type=int, default=2, help="torch threads (0 = torch's default)")
    b.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    b.add_argument("--repeats", type=int, default=5, help="timing rounds (the minimum is reported)")
    b.add_argument("--backends", default=None,
                   help="comma-separated: torch, onnxruntime, openvino (default: every one installed; on a GPU "
                        "or in reduced precision: torch)")  # fmt: skip
    b.add_argument("--dtype", default="float32", help="float32, float16 (GPU) or bfloat16 (PyTorch backend)")
    b.add_argument("--onnx", action="store_true", help=argparse.SUPPRESS)  # earlier releases: now always on
    b.add_argument("--output", "-o", default=None, help="write the markdown table to this file")


def cmd_models(args) -> int:
    from ..hub.registry import get_pretrained_cfg, list_models

    names = list_models(args.pattern, taggers_only=not args.all)
    if not names:
        raise UsageError(f"no model matches {args.pattern!r}; `dymn models --all` lists every name")
    rows = [("name", "arch", "params (M)", "GMACs", "mAP", "notes")]
    for n in names:
        c = get_pretrained_cfg(n)
        rows.append((n, c.arch, f"{c.params / 1e6:.2f}" if c.params else "-",
                     f"{c.macs_g:.2f}" if c.macs_g is not None else "-", f"{c.map:.1f}" if c.map is not None else "-",
                     "; ".join(x for x in (f"detector, PSDS1 {c.psds1:.2f}" if c.psds1 else
                                            "detector" if c.level == "frame" else "", c.notes) if x)))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1])
    return 0


def cmd_info(args) -> int:
    from ..hub.loader import load
    from ..models.complexity import describe

    if not 0.1 <= args.seconds <= 600:
        raise UsageError("--seconds must be between 0.1 and 600")
    # the architecture is all that is measured: registry names are built without downloading weights
    model = load(args.name, weights=args.weights, pretrained=False)
    print(describe(model, args.seconds, weights_file=bool(args.weights)), end="")
    return 0


def cmd_export(args) -> int:
    from ..runtime.export import export_onnx, export_torchscript

    if args.format == "web":
        return export_site(args)
    if args.folder is not None or args.output is None:
        raise UsageError(f"export {args.format} writes one file: give it with -o FILE")
    check_outputs([args.output], [args.weights] if args.weights else [])
    if args.int8 and args.format != "onnx":
        raise UsageError("--int8 writes an ONNX graph: not with torchscript")
    _check_calibration(args)
    model = load_model(args)
    if args.int8:
        from ..runtime.int8 import quantize

        path = quantize(model, args.calibration, args.output, with_frontend=args.with_frontend)
    else:
        writer = export_onnx if args.format == "onnx" else export_torchscript
        path = writer(model, args.output, with_frontend=args.with_frontend)
    inp = "waveform (batch, samples)" if args.with_frontend else "spectrogram (batch, 1, n_mels, frames)"
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB{', int8' if args.int8 else ''}) from "
          f"{printable(model.info.source)}: input {inp}, outputs logits, embedding")  # fmt: skip
    return 0


def export_site(args) -> int:
    """``dymn export web DIR``: the static site of :func:`dymn.web.export_web`."""
    from ..web.site import MODEL_FILE, ORT_CDN, check_live, export_web, find_ort

    folder = args.folder or args.output
    if folder is None or (args.folder and args.output):
        raise UsageError("export web writes a folder: give it once, as `dymn export web DIR`")
    check_live(args.window, args.hop)
    _check_calibration(args)
    ort = find_ort(args.ort) if args.ort else None  # all before the model loads: a mistake fails at once
    model = load_model(args)
    path = export_web(model, folder, int8=args.int8, calibration=args.calibration, ort=ort, window=args.window,
                      hop=args.hop)  # fmt: skip
    size = (path / MODEL_FILE).stat().st_size
    print(f"wrote {path}/ ({model.info.name}, {'int8' if args.int8 else 'fp32'}, model {size / 1e6:.1f} MB, "
          f"onnxruntime-web {'copied in' if ort else 'from ' + ORT_CDN}); serve it with "
          f"`python -m http.server -d {printable(str(path))}` and open http://localhost:8000/")  # fmt: skip
    return 0


def _check_calibration(args) -> None:
    if args.int8 and not args.calibration:
        raise UsageError("--int8 needs --calibration DIR (or files): a few dozen to a few hundred clips like yours")


def cmd_bench(args) -> int:
    from ..hub.loader import load
    from ..hub.registry import get_pretrained_cfg
    from ..inference.tagging import resolve_device
    from ..runtime.backends import check_names
    from ..runtime.bench import dtype_of, run_benchmark

    models = split_list(args.models, "--models")
    for m in models:
        get_pretrained_cfg(m)  # unknown names fail before any timing
    batches = split_list(args.batch, "--batch", int)
    if any(b < 1 for b in batches) or args.threads < 0 or args.repeats < 1:
        raise UsageError("batch sizes and --repeats must be positive and --threads non-negative")
    resolve_device(args.device)
    backends = check_names(split_list(args.backends, "--backends")) if args.backends else None
    table = run_benchmark(models, batches, threads=args.threads or None, device=args.device, repeats=args.repeats,
                          backends=backends, dtype=dtype_of(args.dtype), log=err,
                          build=lambda name: load(name, pretrained=False))  # fmt: skip
    emit(table, args.output)
    return 0
