"""``dymn tag``, ``dymn timeline``, ``dymn embed`` and ``dymn listen``: scoring audio with a tagger."""

from __future__ import annotations

import argparse
import sys

from ..util.errors import UsageError, require
from .common import (
    audio_files,
    check_outputs,
    command,
    emit,
    err,
    exit_status,
    model_args,
    scorer_from_args,
)


def register(sub) -> None:
    t = command(sub, "tag", "tag audio files with AudioSet (or a fine-tuned model's) classes", cmd_tag)
    t.add_argument("paths", nargs="+", metavar="PATH", help="audio files or directories (searched recursively)")
    model_args(t)
    t.add_argument("--top-k", type=int, default=10, help="tags per file; 0 = all classes")
    t.add_argument("--no-pad", action="store_true",
                   help="feed clips shorter than the training length (10 s) as they are, as the reference's "
                        "inference does, instead of zero-padding them to it as in training")  # fmt: skip
    t.add_argument("--format", choices=("text", "json", "csv"), default="text", help="output format")
    t.add_argument("--output", "-o", default=None, help="write results to this file (atomically) instead of stdout")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: on for more than 3 files on a terminal)")  # fmt: skip

    tl = command(sub, "timeline", "class probabilities over time and events, for audio of any length", cmd_timeline)
    tl.add_argument("file", help="an audio file (decoded in blocks: hours are fine)")
    model_args(tl)
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

    em = command(sub, "embed", "clip (and per-window) embeddings to an .npz file", cmd_embed)
    em.add_argument("paths", nargs="+", metavar="PATH", help="audio files or directories")
    model_args(em)
    em.add_argument("--out", "--output", "-o", dest="out", required=True,
                    help="output .npz (written atomically; -o and --output as in the other commands)")  # fmt: skip
    em.add_argument("--timestamps", action="store_true", help="also per-window embeddings with times")
    em.add_argument("--window", type=float, default=10.0, help="window length for --timestamps (s)")
    em.add_argument("--hop", type=float, default=1.0, help="hop between windows for --timestamps (s)")

    li = command(sub, "listen", "live tagging from the microphone or raw PCM on stdin", cmd_listen)
    model_args(li, batch=False)
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


def cmd_tag(args) -> int:
    if args.top_k < 0:
        raise UsageError("--top-k must be 0 (all classes) or positive")
    check_outputs([args.output], args.paths)
    tagger = scorer_from_args(args)
    files, failed = audio_files(args.paths)
    missing = failed
    check_outputs([args.output], files)
    progress = args.progress if args.progress is not None else (len(files) > 3 and sys.stderr.isatty())
    stream = args.format == "text" and args.output is None

    def on_error(path, msg):
        nonlocal failed
        failed += 1
        err(f"skipped {msg}")

    results = []
    for r in tagger.tag_files(files, top_k=args.top_k, on_error=on_error, progress=progress,
                              on_warning=lambda p, m: err(f"warning: {p}: {m}")):  # fmt: skip
        if stream:
            emit(r.to_text(), None)  # text comes out as it is ready
        else:
            results.append(r)
    if not stream:
        from ..inference.tagging import TagResult

        emit(TagResult.dumps(results, args.format), args.output)
    return exit_status(failed, len(files) + missing)


def event_config(args, median: int):
    from ..inference.events import EventConfig

    return EventConfig(threshold=args.threshold, low=args.low_threshold, median=median, merge_gap=args.merge_gap,
                       min_duration=args.min_duration)  # fmt: skip


def cmd_timeline(args) -> int:
    from ..audio.io import audio_info
    from ..inference.events import EventConfig, detect_events
    from ..inference.scoring import timeline
    from ..inference.timelines import check_window_hop, plot_timeline

    check_outputs([args.scores, args.plot, args.output], [args.file])
    median = args.median
    event_config(args, 1 if median is None else median)  # bad event settings fail before the model is loaded
    if args.window is not None or args.hop is not None:
        check_window_hop(10.0 if args.window is None else args.window, 1.0 if args.hop is None else args.hop)
    if args.plot:
        require("matplotlib", "plot", "--plot")
    audio_info(args.file)  # a bad file fails before the model is loaded
    tagger = scorer_from_args(args, detectors=True)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    frames = tagger.info.level == "frame" and args.window is None and args.hop is None
    events_cfg = event_config(args, EventConfig.default_median(frames) if median is None else median)
    tl = timeline(args.file, window=args.window, hop=args.hop, tagger=tagger, progress=progress)
    events = detect_events(tl, events_cfg)
    if args.scores:
        tl.write_scores(args.scores)
    if args.plot:
        plot_timeline(tl, args.plot, top=args.plot_top, events=events)
    emit(tl.dumps(events, args.format, top_k=args.top_k, model=tagger.info.name), args.output)
    return 0


def cmd_embed(args) -> int:
    from ..inference.embedding import embed
    from ..inference.timelines import check_window_hop

    check_outputs([args.out], args.paths)
    if args.timestamps:
        check_window_hop(args.window, args.hop)
    tagger = scorer_from_args(args)
    files, failed = audio_files(args.paths)
    missing = failed
    check_outputs([args.out], files)

    def on_error(path, msg):
        nonlocal failed
        failed += 1
        err(f"skipped {msg}")

    result = embed(files, model=tagger, timestamps=args.timestamps, window=args.window, hop=args.hop,
                   on_error=on_error)  # fmt: skip
    result.save(args.out)
    extra = f", {len(result.window)} window embeddings" if result.window is not None else ""
    print(f"wrote {args.out}: {len(result.files)} clip embeddings of {result.clip.shape[1]} dims{extra}")
    return exit_status(failed, len(files) + missing)


def cmd_listen(args) -> int:
    from ..inference.live import LiveTagger, microphone_blocks, pcm_blocks, run_live

    args.batch_size = 1
    tagger = scorer_from_args(args)
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
