"""``dymn detect`` and ``dymn evaluate-sed`` (registered into the main CLI)."""

from __future__ import annotations

import argparse
import os

from .errors import UsageError


def register(sub, formatter=argparse.HelpFormatter) -> None:
    def command(name, text, func):
        sp = sub.add_parser(name, help=text, description=text, formatter_class=formatter)
        sp.set_defaults(func=func)
        return sp

    de = command("detect", "sound events with start and end times: frame-level detectors (40 ms, 447 classes)",
                 cmd_detect)  # fmt: skip
    de.add_argument("paths", nargs="+", metavar="FILE", help="audio files of any length (streamed in 10 s chunks)")
    de.add_argument("--model", default=None,
                    help="a frame-level detector: registry name (`dymn models fmn`) or checkpoint "
                         "(default fmn10_tf256)")  # fmt: skip
    de.add_argument("--weights", default=None, help="local weights (released files' key names work too)")
    de.add_argument("--threshold", type=float, default=0.5, help="an event is where a class is above this")
    de.add_argument("--class-threshold", action="append", default=[], metavar="CLASS=VALUE",
                    help="a threshold for one class, by name or MID (repeatable)")  # fmt: skip
    de.add_argument("--median", type=int, default=9, help="median filter over N frames of 40 ms (odd; 1 = none)")
    de.add_argument("--format", choices=("text", "json", "csv", "tsv"), default="text",
                    help="events as text, JSON, CSV, or the TSV that sed_scores_eval reads")  # fmt: skip
    de.add_argument("--output", "-o", default=None, help="write the events to this file instead of stdout")
    de.add_argument("--scores", default=None, help="one file: write every frame's probabilities as CSV here")
    de.add_argument("--plot", default=None, help="one file: draw classes over time with the events (PNG/SVG/PDF)")
    de.add_argument("--batch-size", type=int, default=8, help="10 s chunks per model call")
    de.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")

    ev = command("evaluate-sed", "PSDS1, pAUROC and event F1 of detection scores against a ground truth",
                 cmd_evaluate_sed)  # fmt: skip
    ev.add_argument("--pred", required=True, help="folder of score tables, one per audio file (dymn detect --scores)")
    ev.add_argument("--truth", required=True, help="ground truth TSV: filename, onset, offset, event_label")
    ev.add_argument("--durations", default=None, help="TSV filename, duration (default: the score tables' end)")
    ev.add_argument("--median", type=int, default=9, help="median filter over N frames before scoring (odd)")
    ev.add_argument("--threshold", type=float, default=0.5, help="threshold for the event F1")
    ev.add_argument("--collar", type=float, default=0.2, help="onset/offset collar (s) for the event F1")
    ev.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def cmd_detect(args) -> int:
    from .audio import audio_info
    from .cli import _check_outputs, _emit, _err, _exit_status, _load
    from .detection import Detection, Detector
    from .errors import AudioError

    _check_outputs([args.output, args.scores, args.plot], args.paths)
    if (args.scores or args.plot) and len(args.paths) != 1:
        raise UsageError("--scores and --plot take one input file")
    if args.plot:
        from .errors import require

        require("matplotlib", "plot", "--plot")
    if not 0 <= args.threshold <= 1:
        raise UsageError("--threshold must be between 0 and 1")
    if args.median < 1 or args.median % 2 == 0:
        raise UsageError("--median must be a positive odd number of frames")
    per_class = {}
    for item in args.class_threshold:
        name, sep, value = item.rpartition("=")
        try:
            per_class[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UsageError(f"--class-threshold takes CLASS=VALUE, got {item!r}")
    detector = Detector(args.model if args.weights is None else _load(args), args.device, args.batch_size)
    results, failed = [], 0
    for path in args.paths:
        try:
            audio_info(path)
            # frame probabilities are kept only where they are written (the first file's --scores or --plot)
            keep = not results and bool(args.scores or args.plot)
            results.append(detector.detect(path, args.threshold, per_class, args.median, keep_probs=keep))
        except AudioError as exc:
            failed += 1
            _err(f"skipped {exc}")
    if args.scores and results:
        results[0].write_scores(args.scores)
    if args.plot and results:
        from .timelines import plot_timeline

        plot_timeline(results[0].as_timeline(), args.plot, events=results[0].events)
    _emit(Detection.dumps(results, args.format), args.output)
    return _exit_status(failed, len(args.paths))


def cmd_evaluate_sed(args) -> int:
    import json

    from .datasets.common import DataError
    from .sed_metrics import evaluate

    if args.median < 1 or args.median % 2 == 0:
        raise UsageError("--median must be a positive odd number of frames")
    durations = None
    if args.durations:
        import csv

        try:
            with open(args.durations, newline="", encoding="utf-8") as f:
                durations = {os.path.splitext(r[0])[0]: float(r[1]) for r in csv.reader(f, delimiter="\t")
                             if r and r[0] != "filename"}  # fmt: skip
        except (OSError, ValueError, IndexError) as exc:
            raise DataError(f"{args.durations}: not a TSV of filename and duration ({exc})") from None
    m = evaluate(args.pred, args.truth, durations, args.median, args.threshold, args.collar)
    if args.format == "json":
        print(json.dumps(m, indent=1))
    else:
        for k, v in m.items():
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    return 0
