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

    try:
        summary = run(args.job, args.inputs, args.output, model=args.model, weights=args.weights,
                      address=args.address, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                      batch_size=args.batch_size, shard_size=args.shard_size, top_k=args.top_k,
                      all_probabilities=args.all_probabilities, window=args.window, hop=args.hop,
                      events={"threshold": args.threshold, "median": args.median}, threads=args.threads,
                      progress=args.progress, backend=_backend(args))  # fmt: skip
    except KeyboardInterrupt:
        # the finished shards are on disk and a shard being written was removed on the way out; leave now,
        # without waiting for threads Ray may still hold (an interpreter exit can wait on them for minutes)
        _err("interrupted: run the same command again to finish the job")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
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
    em.add_argument("--out", "--output", "-o", dest="out", required=True,
                    help="output .npz (written atomically; -o and --output as in the other commands)")  # fmt: skip
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
    from .model_cli import register as register_model_tools
    from .train.cli import register

    register_detection(sub, _Help)
    register_model_tools(sub, _Help)
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


def entry() -> None:
    """The `dymn` command: :func:`main` with the C allocator set for inference (:mod:`dymn.allocator`), then
    exit without the interpreter's last garbage collection."""
    from .allocator import tune

    tune()
    status = main()
    # With PyTorch loaded, the collection at interpreter exit walks hundreds of thousands of objects: 0.3-0.4 s
    # of every command (`dymn tag one.wav`: 2.2 s -> 1.8 s). Frozen objects are skipped by it; atexit
    # handlers, flushing and closing still run. Only here: in a caller's process it would keep cycles alive.
    import gc

    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    entry()
