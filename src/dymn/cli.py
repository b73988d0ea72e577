"""Command line: a thin layer over the library (``dymn tag``, ``dymn models``, ``dymn info``)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from . import __version__

DEFAULT_MODEL = "dymn10_as"


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


def _err(msg: str) -> None:
    print(f"dymn: {msg}", file=sys.stderr, flush=True)


def _write_output(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from .hub import atomic_write

    out = Path(output)
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: folder {out.parent} does not exist")
    atomic_write(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _load_model(name: str | None, weights: str | None, backend: str = "torch"):
    from .factory import create_model
    from .hub import load_checkpoint

    if backend == "onnx":
        from .export import OnnxModel

        if weights is None:
            raise UsageError("--backend onnx needs an exported file: --weights model.onnx")
        return OnnxModel(weights)
    if name is not None and "," in name:
        if weights is not None:
            raise UsageError("--weights cannot be combined with an ensemble (--model a,b,c)")
        from .ensemble import create_ensemble

        return create_ensemble(name)
    if weights is not None and str(weights).endswith(".onnx"):
        raise UsageError(f"{weights} is an ONNX file: add --backend onnx")
    if weights is not None:
        ckpt = load_checkpoint(weights)  # read once: checked here, built from below
        if name is None and not ckpt.self_describing:
            raise UsageError(
                f"{weights} is a plain state dict: name its architecture with --model (e.g. --model mn04_as)"
            )
        return create_model(name, weights=ckpt)
    return create_model(name or DEFAULT_MODEL, pretrained=True)


def _format_results(results, fmt: str) -> str:
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "duration", "rank", "label", "index", "probability"])
        for r in results:
            for rank, t in enumerate(r.tags, 1):
                w.writerow([r.file, f"{r.duration:.3f}", rank, t.label, t.index, f"{t.probability:.6f}"])
        return buf.getvalue()
    lines = []
    for r in results:
        lines.append(f"{r.file} ({r.duration:.2f} s)")
        lines.extend(f"  {t.label}: {t.probability:.3f}" for t in r.tags)
    return "\n".join(lines) + ("\n" if lines else "")


def _refuse_imagenet(model) -> None:
    cfg = getattr(model, "pretrained_cfg", None)
    if cfg is not None and not cfg.tagger:
        raise UsageError(f"{model.model_name} is an ImageNet initialisation with a random classifier; "
                         "use an AudioSet model such as dymn10_as")  # fmt: skip


def cmd_tag(args) -> int:
    from .audio import find_audio_files
    from .inference import Tagger

    if args.top_k < 0:
        raise UsageError("--top-k must be 0 (all classes) or positive")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.output and not Path(args.output).parent.is_dir():
        raise UsageError(f"cannot write {args.output}: its folder does not exist")
    model = _load_model(args.model, args.weights, args.backend)
    _refuse_imagenet(model)
    tagger = Tagger(model, device=args.device, batch_size=args.batch_size)
    files, problems = find_audio_files(args.paths)
    for p in problems:
        _err(f"skipped {p}")

    failed = len(problems)
    progress = args.progress if args.progress is not None else (len(files) > 3 and sys.stderr.isatty())

    def on_error(path, msg):
        nonlocal failed
        failed += 1
        _err(f"skipped {msg}")

    results = []
    for r in tagger.tag_files(
        files,
        top_k=args.top_k,
        on_error=on_error,
        on_warning=lambda p, m: _err(f"warning: {p}: {m}"),
        progress=progress,
    ):
        if args.format == "text" and args.output is None:
            sys.stdout.write(_format_results([r], "text"))  # stream text as it comes
            sys.stdout.flush()
        results.append(r)
    if args.format != "text" or args.output is not None:
        _write_output(_format_results(results, args.format), args.output)
    total = len(files) + len(problems)
    if failed:
        _err(f"{failed} of {total} input(s) failed")
        return 1
    return 0


def cmd_models(args) -> int:
    from .registry import get_pretrained_cfg, list_models

    names = list_models(args.pattern, taggers_only=not args.all)
    if not names:
        raise UsageError(f"no model matches {args.pattern!r}")
    rows = [("name", "arch", "params (M)", "GMACs", "mAP", "notes")]
    for n in names:
        c = get_pretrained_cfg(n)
        rows.append((
            n,
            c.arch,
            f"{c.params / 1e6:.2f}" if c.params else "-",
            f"{c.macs_g:.2f}" if c.macs_g is not None else "-",
            f"{c.map:.1f}" if c.map is not None else "-",
            c.notes,
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1])
    return 0


def cmd_info(args) -> int:
    from .complexity import count_macs, count_params, receptive_field
    from .factory import create_model

    model = create_model(args.name, weights=args.weights) if args.weights else create_model(args.name)
    fe = model.frontend_config
    frames = 1 + (int(args.seconds * fe.sample_rate) - 1) // fe.hop_length
    shape = (1, 1, fe.n_mels, frames)
    macs = count_macs(model, shape)
    rf_f, rf_t = receptive_field(model, shape)
    cfg = model.pretrained_cfg
    print(f"model            {model.model_name} ({model.arch})")
    print(f"parameters       {count_params(model):,} ({count_params(model) / 1e6:.3f} M)")
    print(f"MACs per {args.seconds:g} s    {macs.gmacs:.3f} G"
          f"  (static conv {macs.conv / 1e9:.3f}, dynamic conv {macs.dynamic_conv / 1e9:.3f}, "
          f"kernel mixing {macs.kernel_mixing / 1e9:.4f}, linear {macs.linear / 1e9:.4f})")  # fmt: skip
    print(f"receptive field  {rf_f} mel bins x {rf_t} frames ({rf_t * fe.hop_length / fe.sample_rate:.2f} s)")
    print(f"input            {fe.sample_rate} Hz, {fe.n_mels} mels, hop {fe.hop_length}, "
          f"window {fe.win_length}, "
          f"n_fft {fe.n_fft}; {frames} frames for {args.seconds:g} s")  # fmt: skip
    print(f"embedding        {model.embed_dim}-d, {len(model.labels)} classes")
    print(f"config           {json.dumps(model.config.to_dict())}")
    if cfg is not None:
        print(f"weights          {cfg.url}")
        print(f"sha256           {cfg.sha256 or 'not published'}")
        print(f"AudioSet mAP     {cfg.map if cfg.map is not None else 'not published'}")
        if cfg.notes:
            print(f"notes            {cfg.notes}")
    return 0


def _event_config(args):
    from .timeline import EventConfig

    for name in ("threshold", "low_threshold"):
        v = getattr(args, name)
        if v is not None and not 0 <= v <= 1:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.median < 1 or args.median % 2 == 0:
        raise UsageError("--median must be an odd number of windows (1 = no smoothing)")
    return EventConfig(threshold=args.threshold, low=args.low_threshold, median=args.median,
                       merge_gap=args.merge_gap, min_duration=args.min_duration)  # fmt: skip


def cmd_timeline(args) -> int:
    from .audio import audio_info
    from .inference import Tagger
    from .timeline import detect_events, plot_timeline, timeline

    for opt in ("scores", "plot", "output"):
        val = getattr(args, opt)
        if val and not Path(val).parent.is_dir():
            raise UsageError(f"cannot write {val}: its folder does not exist")
    cfg = _event_config(args)
    if args.window <= 0 or args.hop <= 0:
        raise UsageError("--window and --hop must be positive")
    if args.hop > args.window:
        raise UsageError(f"--hop ({args.hop} s) must not be larger than --window ({args.window} s)")
    audio_info(args.file)  # a bad file fails before the model is loaded
    model = _load_model(args.model, args.weights)
    _refuse_imagenet(model)
    tagger = Tagger(model, device=args.device, batch_size=args.batch_size)
    tl = timeline(args.file, window=args.window, hop=args.hop, tagger=tagger)
    events = detect_events(tl, cfg)
    if args.scores:
        _write_scores(tl, args.scores)
    if args.plot:
        plot_timeline(tl, args.plot, top=args.plot_top, events=events)
    if args.format == "json":
        top = tl.top_classes(args.top_k) if args.top_k else list(range(len(tl.labels)))
        doc = {
            "file": args.file, "duration": round(tl.duration, 4), "window": tl.window, "hop": tl.hop,
            "model": getattr(model, "model_name", None),
            "events": [e.to_dict() for e in events],
            "windows": [
                {"start": round(float(s), 4), "end": round(float(e), 4),
                 "scores": {tl.labels[i]: round(float(p[i]), 4) for i in top}}
                for s, e, p in zip(tl.starts, tl.ends, tl.probs)
            ],
        }  # fmt: skip
        text = json.dumps(doc, indent=1) + "\n"
    elif args.format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "label", "index", "onset", "offset", "peak"])
        for e in events:
            w.writerow([args.file, e.label, e.index, f"{e.onset:.3f}", f"{e.offset:.3f}", f"{e.peak:.4f}"])
        text = buf.getvalue()
    else:
        n = len(tl.starts)
        lines = [f"{args.file} ({tl.duration:.2f} s, {n} windows of {tl.window:g} s every {tl.hop:g} s)"]
        lines += [f"  {e.onset:9.2f} - {e.offset:9.2f} s  {e.label} (peak {e.peak:.2f})" for e in events]
        if not events:
            lines.append("  no events above the threshold")
        text = "\n".join(lines) + "\n"
    _write_output(text, args.output)
    return 0


def _write_scores(tl, path) -> None:
    from .hub import atomic_write

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["start", "end", *tl.labels])
            for s, e, p in zip(tl.starts, tl.ends, tl.probs):
                w.writerow([f"{s:.3f}", f"{e:.3f}", *(f"{v:.4f}" for v in p)])

    atomic_write(Path(path), write)


def cmd_embed(args) -> int:
    from .audio import find_audio_files
    from .embed import embed

    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: folder {out.parent} does not exist")
    if args.timestamps and (args.window <= 0 or args.hop <= 0 or args.hop > args.window):
        raise UsageError("--window and --hop must be positive, and --hop not larger than --window")
    model = _load_model(args.model, args.weights)
    files, problems = find_audio_files(args.paths)
    failed = len(problems)
    for p in problems:
        _err(f"skipped {p}")

    def on_error(path, msg):
        nonlocal failed
        failed += 1
        _err(f"skipped {msg}")

    result = embed(files, model=model, timestamps=args.timestamps, window=args.window, hop=args.hop,
                   batch_size=args.batch_size, device=args.device, on_error=on_error)  # fmt: skip
    result.save(out)
    extra = f", {len(result.window)} window embeddings" if result.window is not None else ""
    print(f"wrote {out}: {len(result.files)} clip embeddings of {result.clip.shape[1]} dims{extra}")
    if failed:
        _err(f"{failed} of {len(files) + len(problems)} input(s) failed")
        return 1
    return 0


def cmd_listen(args) -> int:
    from .inference import Tagger
    from .live import LiveTagger, microphone_blocks, pcm_blocks, run_live

    if args.hop <= 0 or args.window <= 0 or args.hop > args.window:
        raise UsageError("--window and --hop must be positive, and --hop not larger than --window")
    model = _load_model(args.model, args.weights)
    _refuse_imagenet(model)
    tagger = Tagger(model, device=args.device, batch_size=1)
    live = LiveTagger(tagger, window=args.window, hop=args.hop, threshold=args.threshold, top_k=args.top_k)
    sr = tagger.sample_rate
    if args.stdin:
        blocks = pcm_blocks(sys.stdin.buffer, args.rate, sr, args.pcm_format, args.channels)
    else:
        try:
            blocks = microphone_blocks(sr)
            first = next(blocks)
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
        import itertools

        blocks = itertools.chain([first], blocks)
    run_live(blocks, live)
    return 0


def cmd_export(args) -> int:
    from .export import export_onnx, export_torchscript
    from .factory import create_model

    if args.model is None and args.weights is None:
        raise UsageError("name a model with --model, or give a dymn checkpoint with --weights")
    out = Path(args.output)
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: folder {out.parent} does not exist")
    model = _load_model(args.model, args.weights) if (args.weights or args.pretrained) else create_model(args.model)
    if args.format == "onnx":
        path = export_onnx(model, out, with_frontend=args.with_frontend)
    else:
        path = export_torchscript(model, out, with_frontend=args.with_frontend)
    inp = "waveform (batch, samples)" if args.with_frontend else "spectrogram (batch, 1, n_mels, frames)"
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): input {inp}, outputs logits, embedding")
    return 0


def cmd_bench(args) -> int:
    from .bench import run_benchmark
    from .registry import get_pretrained_cfg

    models = [m for m in args.models.split(",") if m]
    for m in models:
        get_pretrained_cfg(m)  # unknown names fail before any timing
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        raise UsageError(f"--batch takes comma-separated integers, got {args.batch!r}") from None
    if any(b < 1 for b in batches) or args.threads < 0:
        raise UsageError("batch sizes must be positive and --threads non-negative")
    table = run_benchmark(models, batches, threads=args.threads or None, device=args.device,
                          repeats=args.repeats, onnx=args.onnx, log=lambda m: _err(m))  # fmt: skip
    _write_output(table, args.output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dymn", description="Efficient pre-trained audio taggers (MN, DyMN).")
    p.add_argument("--version", action="version", version=f"dymn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("tag", help="tag audio files with AudioSet (or a fine-tuned model's) classes")
    t.add_argument("paths", nargs="+", metavar="PATH", help="audio files or directories (searched recursively)")
    t.add_argument("--model", default=None, help=f"registry name (default {DEFAULT_MODEL}; see `dymn models`)")
    t.add_argument("--weights", default=None, help="local weights: a dymn checkpoint or an official state dict")
    t.add_argument("--top-k", type=int, default=10, help="tags per file; 0 = all classes (default 10)")
    t.add_argument("--format", choices=("text", "json", "csv"), default="text")
    t.add_argument("--output", "-o", default=None, help="write results to this file (atomically)")
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="onnx: run a file written by `dymn export onnx` (give it as --weights)")  # fmt: skip
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on for more than 3 files on a terminal)")  # fmt: skip
    t.set_defaults(func=cmd_tag)

    m = sub.add_parser("models", help="list the registered models")
    m.add_argument("pattern", nargs="?", default=None, help="filter, e.g. 'dymn*' or 'mn10'")
    m.add_argument("--all", action="store_true", help="include ImageNet initialisation checkpoints")
    m.set_defaults(func=cmd_models)

    i = sub.add_parser("info", help="parameters, MACs and receptive field of a model")
    i.add_argument("name", nargs="?", default=DEFAULT_MODEL, help="registry name or 'mn' / 'dymn'")
    i.add_argument("--weights", default=None, help="describe a local checkpoint instead")
    i.add_argument("--seconds", type=float, default=10.0, help="clip length for the MAC count (default 10)")
    i.set_defaults(func=cmd_info)

    def model_args(sp, default_help=f"registry name, or a,b,c for an ensemble (default {DEFAULT_MODEL})"):
        sp.add_argument("--model", default=None, help=default_help)
        sp.add_argument("--weights", default=None, help="local weights: a dymn checkpoint or an official state dict")
        sp.add_argument("--batch-size", type=int, default=8)
        sp.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")

    tl = sub.add_parser("timeline", help="class probabilities over time and events, for audio of any length")
    tl.add_argument("file", help="an audio file (decoded in blocks: hours are fine)")
    model_args(tl)
    tl.add_argument("--window", type=float, default=10.0, help="window length in seconds (default 10)")
    tl.add_argument("--hop", type=float, default=1.0, help="seconds between windows (default 1)")
    tl.add_argument("--threshold", type=float, default=0.5, help="event threshold (default 0.5)")
    tl.add_argument("--low-threshold", type=float, default=None, help="hysteresis: stay active above this")
    tl.add_argument("--median", type=int, default=1, help="median smoothing over N windows (odd; default 1)")
    tl.add_argument("--merge-gap", type=float, default=0.0, help="merge events closer than this (s)")
    tl.add_argument("--min-duration", type=float, default=0.0, help="drop shorter events (s)")
    tl.add_argument("--format", choices=("text", "csv", "json"), default="text",
                    help="events as text or CSV; JSON adds per-window scores of the top classes")  # fmt: skip
    tl.add_argument("--top-k", type=int, default=10, help="classes per window in JSON (0 = all)")
    tl.add_argument("--output", "-o", default=None, help="write events / JSON to this file")
    tl.add_argument("--scores", default=None, help="write every window's 527 probabilities as CSV")
    tl.add_argument("--plot", default=None, help="draw the top classes over time to this PNG/SVG/PDF")
    tl.add_argument("--plot-top", type=int, default=8)
    tl.set_defaults(func=cmd_timeline)

    em = sub.add_parser("embed", help="clip (and per-window) embeddings to an .npz file")
    em.add_argument("paths", nargs="+", metavar="PATH")
    model_args(em)
    em.add_argument("--out", required=True, help="output .npz (written atomically)")
    em.add_argument("--timestamps", action="store_true", help="also per-window embeddings with times")
    em.add_argument("--window", type=float, default=10.0)
    em.add_argument("--hop", type=float, default=1.0)
    em.set_defaults(func=cmd_embed)

    li = sub.add_parser("listen", help="live tagging from the microphone or raw PCM on stdin")
    model_args(li)
    li.add_argument("--stdin", action="store_true", help="read raw PCM from standard input")
    li.add_argument("--rate", type=int, default=16000, help="stdin sample rate (default 16000)")
    li.add_argument("--channels", type=int, default=1, help="stdin channels, interleaved (default 1)")
    li.add_argument("--pcm-format", choices=("s16le", "s32le", "f32le"), default="s16le")
    li.add_argument("--window", type=float, default=10.0)
    li.add_argument("--hop", type=float, default=1.0)
    li.add_argument("--threshold", type=float, default=0.3, help="announce events above this (default 0.3)")
    li.add_argument("--top-k", type=int, default=3)
    li.set_defaults(func=cmd_listen)

    e = sub.add_parser("export", help="export a model to ONNX or TorchScript")
    e.add_argument("format", choices=("onnx", "torchscript"))
    e.add_argument("--model", default=None, help="registry name (architecture and, with --pretrained, weights)")
    e.add_argument("--weights", default=None, help="local weights (dymn checkpoint or official state dict)")
    e.add_argument("--pretrained", action="store_true", help="download the registry weights")
    e.add_argument("--with-frontend", action="store_true", help="include the mel frontend: waveform input")
    e.add_argument("--output", "-o", required=True, help="output file (written atomically)")
    e.set_defaults(func=cmd_export)

    b = sub.add_parser("bench", help="inference speed: reference-style vs eager vs optimized (markdown table)")
    b.add_argument("--models", default="mn04_as,mn10_as,dymn04_as,dymn10_as,dymn20_as")
    b.add_argument("--batch", default="1,8", help="comma-separated batch sizes (default 1,8)")
    b.add_argument("--threads", type=int, default=2, help="torch threads (0 = torch's default)")
    b.add_argument("--device", default="cpu")
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--onnx", action="store_true", help="also time onnxruntime on an export of each model")
    b.add_argument("--output", "-o", default=None, help="write the markdown table to this file")
    b.set_defaults(func=cmd_bench)
    from .train.cli import register

    register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from .audio import AudioError
    from .export import ExportError
    from .hub import WeightsError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, AudioError, WeightsError, ExportError, ValueError, ImportError, OSError) as exc:
        _err(f"error: {exc}")
        return 2
    except KeyError as exc:  # unknown registry names
        _err(f"error: {exc.args[0] if exc.args else exc}")
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
