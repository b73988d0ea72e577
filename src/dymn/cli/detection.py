"""``dymn detect`` and ``dymn evaluate-sed`` (registered into the main CLI)."""

from __future__ import annotations

import json

from ..util.errors import AudioError, UsageError, require
from .common import assignments, check_outputs, command, emit, err, exit_status, load_model


def register(sub) -> None:
    de = command(sub, "detect", "sound events with start and end times: frame-level detectors (40 ms, 447 classes)",
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

    ev = command(sub, "evaluate-sed", "PSDS1, pAUROC and event F1 of detection scores against a ground truth",
                 cmd_evaluate_sed)  # fmt: skip
    ev.add_argument("--pred", required=True, help="folder of score tables, one per audio file (dymn detect --scores)")
    ev.add_argument("--truth", required=True, help="ground truth TSV: filename, onset, offset, event_label")
    ev.add_argument("--durations", default=None, help="TSV filename, duration (default: the score tables' end)")
    ev.add_argument("--median", type=int, default=9, help="median filter over N frames before scoring (odd)")
    ev.add_argument("--threshold", type=float, default=0.5, help="threshold for the event F1")
    ev.add_argument("--collar", type=float, default=0.2, help="onset/offset collar (s) for the event F1")
    ev.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def cmd_detect(args) -> int:
    from ..audio.io import audio_info
    from ..inference.detection import Detection, Detector
    from ..inference.events import check_decoding
    from ..inference.timelines import plot_timeline

    check_outputs([args.output, args.scores, args.plot], args.paths)
    if (args.scores or args.plot) and len(args.paths) != 1:
        raise UsageError("--scores and --plot take one input file")
    if args.plot:
        require("matplotlib", "plot", "--plot")
    check_decoding(args.threshold, args.median)  # bad settings fail before the model is loaded
    per_class = assignments(args.class_threshold, "--class-threshold")
    detector = Detector(args.model if args.weights is None else load_model(args), args.device, args.batch_size)
    results, failed = [], 0
    for path in args.paths:
        try:
            audio_info(path)
            # frame probabilities are kept only where they are written (the first file's --scores or --plot)
            keep = not results and bool(args.scores or args.plot)
            results.append(detector.detect(path, args.threshold, per_class, args.median, keep_probs=keep))
        except AudioError as exc:
            failed += 1
            err(f"skipped {exc}")
    if args.scores and results:
        results[0].write_scores(args.scores)
    if args.plot and results:
        plot_timeline(results[0].as_timeline(), args.plot, events=results[0].events)
    emit(Detection.dumps(results, args.format), args.output)
    return exit_status(failed, len(args.paths))


def cmd_evaluate_sed(args) -> int:
    from ..inference.sed_metrics import evaluate, read_durations

    durations = read_durations(args.durations) if args.durations else None
    m = evaluate(args.pred, args.truth, durations, args.median, args.threshold, args.collar)
    if args.format == "json":
        print(json.dumps(m, indent=1))
    else:
        for k, v in m.items():
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    return 0
