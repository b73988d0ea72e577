"""``dymn batch``: a corpus on Ray into Parquet shards."""

from __future__ import annotations

import argparse
import os
import sys

from ..hub.loader import DEFAULT_MODEL
from .common import backend_arg, backend_of, command, err


def register(sub) -> None:
    ba = command(sub, "batch", "tag, embed, timeline or detect a corpus on Ray into Parquet shards (resumable)",
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
    backend_arg(ba)


def cmd_batch(args) -> int:
    from ..batch.jobs import run

    try:
        summary = run(args.job, args.inputs, args.output, model=args.model, weights=args.weights,
                      address=args.address, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                      batch_size=args.batch_size, shard_size=args.shard_size, top_k=args.top_k,
                      all_probabilities=args.all_probabilities, window=args.window, hop=args.hop,
                      events={"threshold": args.threshold, "median": args.median}, threads=args.threads,
                      progress=args.progress, backend=backend_of(args))  # fmt: skip
    except KeyboardInterrupt:
        # the finished shards are on disk and a shard being written was removed on the way out; leave now,
        # without waiting for threads Ray may still hold (an interpreter exit can wait on them for minutes)
        err("interrupted: run the same command again to finish the job")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    print(summary.to_text())
    return 1 if summary.failed else 0
