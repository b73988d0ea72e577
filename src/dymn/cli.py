"""The ``dymn`` command: parses arguments and calls the library (no logic of its own).

Exit status: 0 success, 1 a run that failed on its input, output or the network (one line on stderr
per problem), 2 a usage error, 130 interrupted. Any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from . import __version__
from .errors import DymnError, UsageError, printable
from .loader import DEFAULT_MODEL


def _err(msg: str) -> None:
    print(f"dymn: {printable(msg)}", file=sys.stderr, flush=True)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every flag's default (none shown where the default is None or False)."""

    def _get_help_string(self, action):
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _emit(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from .atomic import write_text

        write_text(output, text)


def _exit_status(failed: int, total: int) -> int:
    """1 (and a line saying how many) if any input failed, else 0."""
    if failed:
        _err(f"{failed} of {total} input(s) failed")
        return 1
    return 0


def _check_outputs(outputs: list[str | None], inputs: list) -> None:
    """Refuse an output that would overwrite one of the inputs, or that has no folder to go to."""
    inputs_real = {os.path.realpath(p) for p in inputs}
    for out in outputs:
        if out is None:
            continue
        if os.path.realpath(out) in inputs_real:
            raise UsageError(f"refusing to write {out}: it is one of the input files")
        parent = Path(out).parent
        if not parent.is_dir():
            raise UsageError(f"cannot write {out}: folder {parent} does not exist")


def _load(args):
    from .loader import load

    return load(args.model, weights=args.weights, device="cpu")  # an .onnx file loads as one by its suffix


def _refuse_untrained(model) -> None:
    info = model.info
    if not info.trained:
        what = "an ImageNet initialisation with" if info.source != "random initialisation" else "randomly initialised:"
        raise UsageError(f"{info.name} is {what} a random classifier; use a trained model such as dymn10_as")


def _tagger(args, detectors: bool = False):
    """The model of ``args`` ready to score audio: a Tagger, or with ``detectors`` a Detector for a
    frame-level model."""
    from .detection import scorer
    from .inference import Tagger, resolve_device

    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    resolve_device(args.device)
    model = _load(args)
    _refuse_untrained(model)
    backend = _backend(args)
    if detectors:
        return scorer(model, device=args.device, batch_size=args.batch_size, backend=backend)
    return Tagger(model, device=args.device, batch_size=args.batch_size, backend=backend)


def _backend(args) -> str | None:
    backend = getattr(args, "backend", None)
    return "onnxruntime" if backend == "onnx" else backend  # "onnx": the name of earlier releases


def _files(paths) -> tuple[list, int]:
    from .audio import find_audio_files

    files, problems = find_audio_files(paths)
    for p in problems:
        _err(f"skipped {p}")
    return files, len(problems)


def cmd_tag(args) -> int:
    if args.top_k < 0:
        raise UsageError("--top-k must be 0 (all classes) or positive")
    _check_outputs([args.output], args.paths)
    tagger = _tagger(args)
    files, failed = _files(args.paths)
    missing = failed
    _check_outputs([args.output], files)
    progress = args.progress if args.progress is not None else (len(files) > 3 and sys.stderr.isatty())
    stream = args.format == "text" and args.output is None

    def on_error(path, msg):
        nonlocal failed
        failed += 1
        _err(f"skipped {msg}")

    results = []
    for r in tagger.tag_files(files, top_k=args.top_k, on_error=on_error, progress=progress,
                              on_warning=lambda p, m: _err(f"warning: {p}: {m}")):  # fmt: skip
        if stream:
            _emit(r.to_text(), None)  # text comes out as it is ready
        else:
            results.append(r)
    if not stream:
        from .inference import TagResult

        _emit(TagResult.dumps(results, args.format), args.output)
    return _exit_status(failed, len(files) + missing)


def cmd_models(args) -> int:
    from .registry import get_pretrained_cfg, list_models

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
    from .complexity import count_macs, count_params, receptive_field
    from .loader import load

    if not 0.1 <= args.seconds <= 600:
        raise UsageError("--seconds must be between 0.1 and 600")
    # the architecture is all that is measured: registry names are built without downloading weights
    model = load(args.name, weights=args.weights, pretrained=False)
    info = model.info
    if info.arch not in ("mn", "dymn", "fmn"):
        raise UsageError(f"dymn info describes one network, not {info.arch} {info.name}")
    fe = info.frontend
    frames = 1 + (int(args.seconds * fe.sample_rate) - 1) // fe.hop_length
    shape = (1, 1, fe.n_mels, frames)
    macs = count_macs(model, shape)
    rf_f, rf_t = receptive_field(model, shape)
    n = count_params(model)
    print(f"model            {printable(info.name)} ({info.arch})")
    print(f"parameters       {n:,} ({n / 1e6:.3f} M)")
    print(f"MACs per {args.seconds:g} s    {macs.gmacs:.3f} G"
          f"  (static conv {macs.conv / 1e9:.3f}, dynamic conv {macs.dynamic_conv / 1e9:.3f}, "
          f"kernel mixing {macs.kernel_mixing / 1e9:.4f}, linear {macs.linear / 1e9:.4f})")  # fmt: skip
    whole = " of the convolutions; the sequence model sees the whole input" if info.config.get("seq_model_type") else ""
    print(f"receptive field  {rf_f} mel bins x {rf_t} frames ({rf_t * fe.hop_length / fe.sample_rate:.2f} s){whole}")
    print(f"input            {fe.sample_rate} Hz, {fe.n_mels} mels, hop {fe.hop_length}, window {fe.win_length}, "
          f"n_fft {fe.n_fft}; {frames} frames for {args.seconds:g} s")  # fmt: skip
    if info.level == "frame":
        seq = info.config.get("seq_model_type")
        print(f"outputs          {info.num_classes} classes per frame ({info.activation}), 250 frames per input "
              f"(40 ms each for 10 s); sequence model: {seq or 'none'}")  # fmt: skip
        if seq in ("tf", "hybrid", "gru"):
            print("                 (MACs count convolutions and linear layers; attention scores and GRU "
                  "recurrences are not counted)")  # fmt: skip
    else:
        print(f"outputs          {info.num_classes} classes ({info.task}, {info.activation}), "
              f"{info.embed_dim}-d embedding")  # fmt: skip
    print(f"config           {info.config}")
    cfg = info.pretrained_cfg
    if args.weights:
        print(f"weights          {printable(info.source)}")
    elif cfg is not None:
        print(f"weights          {cfg.url}")
        print(f"sha256           {cfg.sha256 or 'not published'}")
        if info.level == "frame":
            print(f"PSDS1            {f'{cfg.psds1} (AudioSet Strong)' if cfg.psds1 is not None else 'not published'}")
        else:
            print(f"AudioSet mAP     {cfg.map if cfg.map is not None else 'not published'}")
        if cfg.notes:
            print(f"notes            {cfg.notes}")
    return 0


def _event_config(args):
    from .timelines import EventConfig

    return EventConfig(threshold=args.threshold, low=args.low_threshold, median=args.median,
                       merge_gap=args.merge_gap, min_duration=args.min_duration)  # fmt: skip


def cmd_timeline(args) -> int:
    from .audio import audio_info
    from .timelines import check_window_hop, detect_events, plot_timeline, timeline

    _check_outputs([args.scores, args.plot, args.output], [args.file])
    if args.median is not None:
        cfg = _event_config(args)  # bad event settings fail before the model is loaded
    if args.window is not None or args.hop is not None:
        check_window_hop(10.0 if args.window is None else args.window, 1.0 if args.hop is None else args.hop)
    if args.plot:
        from .errors import require

        require("matplotlib", "plot", "--plot")
    audio_info(args.file)  # a bad file fails before the model is loaded
    tagger = _tagger(args, detectors=True)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    if args.median is None:  # a detector's own 40 ms frames: the reference's 9-frame median filter
        frames = tagger.info.level == "frame" and args.window is None and args.hop is None
        args.median = 9 if frames else 3
        cfg = _event_config(args)
    tl = timeline(args.file, window=args.window, hop=args.hop, tagger=tagger, progress=progress)
    events = detect_events(tl, cfg)
    if args.scores:
        tl.write_scores(args.scores)
    if args.plot:
        plot_timeline(tl, args.plot, top=args.plot_top, events=events)
    if args.format == "json":
        text = tl.to_json(events, top_k=args.top_k, model=tagger.info.name)
    elif args.format == "csv":
        text = tl.events_csv(events, args.file)
    else:
        text = tl.to_text(events)
    _emit(text, args.output)
    return 0


def cmd_embed(args) -> int:
    from .embedding import embed
    from .timelines import check_window_hop

    _check_outputs([args.out], args.paths)
    if args.timestamps:
        check_window_hop(args.window, args.hop)
    tagger = _tagger(args)
    files, failed = _files(args.paths)
    missing = failed
    _check_outputs([args.out], files)

    def on_error(path, msg):
        nonlocal failed
        failed += 1
        _err(f"skipped {msg}")

    result = embed(files, model=tagger, timestamps=args.timestamps, window=args.window, hop=args.hop,
                   on_error=on_error)  # fmt: skip
    result.save(args.out)
    extra = f", {len(result.window)} window embeddings" if result.window is not None else ""
    print(f"wrote {args.out}: {len(result.files)} clip embeddings of {result.clip.shape[1]} dims{extra}")
    return _exit_status(failed, len(files) + missing)


def cmd_batch(args) -> int:
    from .batch import run

    summary = run(args.job, args.inputs, args.output, model=args.model, weights=args.weights, address=args.address,
                  workers=args.workers, gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size,
                  shard_size=args.shard_size, top_k=args.top_k, all_probabilities=args.all_probabilities,
                  window=args.window, hop=args.hop, events={"threshold": args.threshold, "median": args.median},
                  threads=args.threads, progress=args.progress, backend=_backend(args))  # fmt: skip
    print(summary.to_text())
    return 1 if summary.failed else 0


def cmd_serve(args) -> int:
    from .service.server import ServeConfig, serve

    serve(ServeConfig(model=args.model, weights=args.weights, host=args.host, port=args.port,
                      replicas=args.replicas, engine=args.engine, address=args.address,
                      batching=not args.no_batching, backend=_backend(args),
                      limits={"max_upload_mb": args.max_upload_mb, "max_seconds": args.max_seconds}))  # fmt: skip
    return 0


def cmd_listen(args) -> int:
    from .live import LiveTagger, microphone_blocks, pcm_blocks, run_live

    args.batch_size = 1
    tagger = _tagger(args)
    live = LiveTagger(tagger, window=args.window, hop=args.hop, threshold=args.threshold, top_k=args.top_k)
    sr = tagger.sample_rate
    if args.stdin:
        blocks = pcm_blocks(sys.stdin.buffer, args.rate, sr, args.pcm_format, args.channels)
    else:
        import itertools

        blocks = microphone_blocks(sr)
        blocks = itertools.chain([next(blocks)], blocks)  # fails here, before any output, without a mic
    run_live(blocks, live, fmt=args.format)
    return 0


def cmd_export(args) -> int:
    from .export import export_onnx, export_torchscript

    _check_outputs([args.output], [args.weights] if args.weights else [])
    if args.int8 and (args.format != "onnx" or args.with_frontend):
        raise UsageError("--int8 writes an ONNX graph of the network (spectrogram input): not with torchscript or "
                         "--with-frontend")  # fmt: skip
    if args.int8 and not args.calibration:
        raise UsageError("--int8 needs --calibration DIR (or files): a few dozen to a few hundred clips like yours")
    model = _load(args)
    if args.int8:
        from .backends import quantize

        path = quantize(model, args.calibration, args.output)
    else:
        writer = export_onnx if args.format == "onnx" else export_torchscript
        path = writer(model, args.output, with_frontend=args.with_frontend)
    inp = "waveform (batch, samples)" if args.with_frontend else "spectrogram (batch, 1, n_mels, frames)"
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB{', int8' if args.int8 else ''}) from "
          f"{printable(model.info.source)}: input {inp}, outputs logits, embedding")  # fmt: skip
    return 0


def cmd_bench(args) -> int:
    import torch

    from .bench import run_benchmark
    from .registry import get_pretrained_cfg

    models = [m for m in args.models.split(",") if m]
    for m in models:
        get_pretrained_cfg(m)  # unknown names fail before any timing
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        raise UsageError(f"--batch takes comma-separated integers, got {args.batch!r}") from None
    if any(b < 1 for b in batches) or args.threads < 0 or args.repeats < 1:
        raise UsageError("batch sizes and --repeats must be positive and --threads non-negative")
    from .inference import resolve_device

    resolve_device(args.device)
    backends = None
    if args.backends:
        from .backends import BACKENDS

        backends = [b for b in args.backends.split(",") if b]
        bad = [b for b in backends if b not in BACKENDS]
        if bad:
            raise UsageError(f"unknown backend(s) {', '.join(bad)}; choose from {', '.join(BACKENDS)}")
    dtypes = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
              "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}  # fmt: skip
    if args.dtype not in dtypes:
        raise UsageError(f"--dtype takes float32, float16 or bfloat16, got {args.dtype!r}")
    table = run_benchmark(models, batches, threads=args.threads or None, device=args.device, repeats=args.repeats,
                          backends=backends, dtype=dtypes[args.dtype], log=_err)  # fmt: skip
    _emit(table, args.output)
    return 0


def _model_args(sp, batch: bool = True) -> None:
    sp.add_argument("--model", default=None,
                    help=f"registry name (see `dymn models`), a weights or .onnx file, or a,b,c for an ensemble "
                         f"(default {DEFAULT_MODEL}, released weights downloaded on first use)")  # fmt: skip
    sp.add_argument("--weights", default=None,
                    help="local weights: a dymn checkpoint (self-describing), an .onnx export, or an official "
                         "state dict together with --model naming its architecture")  # fmt: skip
    if batch:
        sp.add_argument("--batch-size", type=int, default=8, help="clips (or windows) per model call")
    sp.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    _backend_arg(sp)


def _backend_arg(sp) -> None:
    sp.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "openvino", "onnx"), default=None,
                    help="where the network runs: auto (default, or $DYMN_BACKEND): the fastest installed here, "
                         "measured on first use and remembered; or torch, onnxruntime, openvino ([fast] extra). "
                         "An .onnx file always runs in onnxruntime")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dymn", description="Efficient pre-trained audio taggers (MN, DyMN).",
                                formatter_class=_Help)  # fmt: skip
    p.add_argument("--version", action="version", version=f"dymn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name, help_text, func):
        sp = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Help)
        sp.set_defaults(func=func)
        return sp

    t = command("tag", "tag audio files with AudioSet (or a fine-tuned model's) classes", cmd_tag)
    t.add_argument("paths", nargs="+", metavar="PATH", help="audio files or directories (searched recursively)")
    _model_args(t)
    t.add_argument("--top-k", type=int, default=10, help="tags per file; 0 = all classes")
    t.add_argument("--format", choices=("text", "json", "csv"), default="text", help="output format")
    t.add_argument("--output", "-o", default=None, help="write results to this file (atomically) instead of stdout")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: on for more than 3 files on a terminal)")  # fmt: skip

    m = command("models", "list the registered models", cmd_models)
    m.add_argument("pattern", nargs="?", default=None, help="filter, e.g. 'dymn*' or 'mn10'")
    m.add_argument("--all", action="store_true", help="include ImageNet initialisation checkpoints")

    i = command("info", "parameters, MACs and receptive field of a model", cmd_info)
    i.add_argument("name", nargs="?", default=None, help=f"registry name or 'mn' / 'dymn' (default {DEFAULT_MODEL})")
    i.add_argument("--weights", default=None, help="describe a local checkpoint (with NAME for a plain state dict)")
    i.add_argument("--seconds", type=float, default=10.0, help="clip length for the MAC count")

    tl = command("timeline", "class probabilities over time and events, for audio of any length", cmd_timeline)
    tl.add_argument("file", help="an audio file (decoded in blocks: hours are fine)")
    _model_args(tl)
    tl.add_argument("--window", type=float, default=None,
                    help="window length in seconds (default: 10; a detector: its 40 ms frames, or with --window the "
                         "peak of the frames in each window)")  # fmt: skip
    tl.add_argument("--hop", type=float, default=None, help="seconds between windows (default: 1)")
    tl.add_argument("--threshold", type=float, default=0.5, help="an event starts where a class reaches this")
    tl.add_argument(
        "--low-threshold",
        type=float,
        default=None,
        help="hysteresis: an event lasts while its class stays above this (default: threshold)",
    )
    tl.add_argument(
        "--median",
        type=int,
        default=None,
        help="median smoothing over N windows (odd; 1 = none; default 3, a detector's frames: 9)",
    )
    tl.add_argument("--merge-gap", type=float, default=0.0, help="merge events of a class closer than this (s)")
    tl.add_argument("--min-duration", type=float, default=0.0, help="drop events shorter than this (s)")
    tl.add_argument("--format", choices=("text", "csv", "json"), default="text",
                    help="events as text or CSV; JSON adds each window's top classes")  # fmt: skip
    tl.add_argument("--top-k", type=int, default=10, help="classes per window in JSON, each window's own (0 = all)")
    tl.add_argument("--output", "-o", default=None, help="write events / JSON to this file instead of stdout")
    tl.add_argument("--scores", default=None, help="write every window's probabilities as CSV to this file")
    tl.add_argument("--plot", default=None, help="draw classes over time with events to this PNG/SVG/PDF")
    tl.add_argument("--plot-top", type=int, default=8, help="rows in the plot (classes with events always shown)")
    tl.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress on stderr (default: on a terminal)")  # fmt: skip

    em = command("embed", "clip (and per-window) embeddings to an .npz file", cmd_embed)
    em.add_argument("paths", nargs="+", metavar="PATH", help="audio files or directories")
    _model_args(em)
    em.add_argument("--out", required=True, help="output .npz (written atomically)")
    em.add_argument("--timestamps", action="store_true", help="also per-window embeddings with times")
    em.add_argument("--window", type=float, default=10.0, help="window length for --timestamps (s)")
    em.add_argument("--hop", type=float, default=1.0, help="hop between windows for --timestamps (s)")

    li = command("listen", "live tagging from the microphone or raw PCM on stdin", cmd_listen)
    _model_args(li, batch=False)
    li.add_argument("--stdin", action="store_true", help="read raw PCM from standard input")
    li.add_argument("--rate", type=int, default=16000, help="stdin sample rate (Hz)")
    li.add_argument("--channels", type=int, default=1, help="stdin channels, interleaved")
    li.add_argument("--pcm-format", choices=("s16le", "s32le", "f32le"), default="s16le", help="stdin sample format")
    li.add_argument("--window", type=float, default=10.0, help="seconds of audio each prediction sees")
    li.add_argument("--hop", type=float, default=1.0, help="seconds between predictions")
    li.add_argument("--threshold", type=float, default=0.3, help="announce a sound when it reaches this")
    li.add_argument("--top-k", type=int, default=3, help="tags printed per hop")
    li.add_argument("--format", choices=("text", "jsonl"), default="text",
                    help="text: 'time  label: p | label: p'; jsonl: one JSON object per hop")  # fmt: skip

    e = command("export", "export a model (released weights by default) to ONNX or TorchScript", cmd_export)
    e.add_argument("format", choices=("onnx", "torchscript"), help="file format")
    e.add_argument("--model", default=None,
                   help=f"registry name (its released weights) or the architecture of --weights "
                        f"(default {DEFAULT_MODEL})")  # fmt: skip
    e.add_argument("--weights", default=None, help="local weights (dymn checkpoint, or state dict with --model)")
    e.add_argument("--with-frontend", action="store_true", help="include the mel frontend: waveform input")
    e.add_argument("--output", "-o", required=True, help="output file (written atomically)")
    e.add_argument(
        "--int8",
        action="store_true",
        help="post-training int8 quantization (NNCF, the [int8] extra), calibrated on --calibration",
    )
    e.add_argument(
        "--calibration",
        nargs="+",
        default=None,
        metavar="AUDIO",
        help="--int8: audio files or folders like the ones you will tag (a few dozen to a few hundred)",
    )

    b = command("bench", "inference speed: reference-style vs eager vs every backend (markdown table)", cmd_bench)
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
    ba = command("batch", "tag, embed, timeline or detect a corpus on Ray into Parquet shards (resumable)",
                 cmd_batch)  # fmt: skip
    ba.add_argument("job", choices=("tag", "embed", "timeline", "detect"),
                    help="what to compute for every file (detect: with a frame-level detector)")  # fmt: skip
    ba.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="files, folders, globs, or a manifest (.csv/.parquet with a 'path' column); local or "
                         "s3://, gs://, ... (what pyarrow reads)")  # fmt: skip
    ba.add_argument("--output", "-o", required=True, help="output folder of Parquet shards (local or remote)")
    ba.add_argument("--model", default=None, help=f"registry name or checkpoint (default {DEFAULT_MODEL})")
    ba.add_argument("--weights", default=None, help="local weights (see `dymn tag --help`)")
    ba.add_argument("--address", default=None,
                    help="Ray cluster: auto (the running one) or HOST:PORT (default: Ray on this machine)")  # fmt: skip
    ba.add_argument("--workers", type=int, default=None, help="model actors, one CPU each (default: 3/4 of the CPUs)")
    ba.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per model actor (0 = CPU)")
    ba.add_argument("--threads", type=int, default=1, help="PyTorch threads per model actor on CPUs")
    ba.add_argument("--batch-size", type=int, default=8, help="clips per model call")
    ba.add_argument("--shard-size", type=int, default=1000, help="files per output shard")
    ba.add_argument("--top-k", type=int, default=10, help="tag: labels per file; timeline: per window (0 = all)")
    ba.add_argument("--all-probabilities", action="store_true", help="tag: also every class's probability")
    ba.add_argument(
        "--window",
        type=float,
        default=None,
        help="timeline: window length in seconds (default 10; a detector: its 40 ms frames)",
    )
    ba.add_argument("--hop", type=float, default=None, help="timeline: seconds between windows (default 1)")
    ba.add_argument("--threshold", type=float, default=0.5,
                    help="timeline, detect: an event starts where a class reaches this")  # fmt: skip
    ba.add_argument("--median", type=int, default=None,
                    help="timeline, detect: median smoothing over N windows or frames (default 3; a detector's "
                         "frames: 9)")  # fmt: skip
    ba.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bar on stderr (default: on a terminal)")  # fmt: skip
    _backend_arg(ba)

    sv = command("serve", "a tagging service: JSON API and a web page (FastAPI; uvicorn or Ray Serve)", cmd_serve)
    sv.add_argument("--model", default=None,
                    help=f"registry name or checkpoint (default {DEFAULT_MODEL}; a,b,c for an ensemble)")  # fmt: skip
    sv.add_argument("--weights", default=None, help="local weights (see `dymn tag --help`)")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (0.0.0.0: every interface; only on networks you trust)")  # fmt: skip
    sv.add_argument("--port", type=int, default=8000, help="TCP port")
    sv.add_argument("--replicas", type=int, default=1, help="copies of the model serving requests")
    sv.add_argument("--engine", choices=("uvicorn", "ray"), default="uvicorn",
                    help="uvicorn: processes on this machine; ray: Ray Serve (replicas across a cluster)")  # fmt: skip
    sv.add_argument("--address", default=None, help="Ray cluster for --engine ray (default: Ray on this machine)")
    sv.add_argument("--max-upload-mb", type=float, default=50.0, help="larger uploads get 413")
    sv.add_argument("--max-seconds", type=float, default=600.0, help="longer audio gets 413")
    sv.add_argument("--no-batching", action="store_true", help="one clip per model call (for comparisons)")
    _backend_arg(sv)

    from .detection_cli import register as register_detection
    from .train.cli import register

    register_detection(sub, _Help)
    register(sub, _Help)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from .audio import AudioWarning

    if issubclass(category, AudioWarning):
        _err(f"warning: {message}")
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # file names that are not UTF-8 come back as surrogates: write them back as the bytes they were
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape" if stream is sys.stdout else "backslashreplace")
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except DymnError as exc:
        _err(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `dymn tag ... | head`
        sys.stderr.close()
        return 0
    finally:
        warnings.showwarning = _default_showwarning


if __name__ == "__main__":
    sys.exit(main())
