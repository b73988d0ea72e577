"""Corpus-scale jobs on Ray Data: tag, embed, timeline or detect every file of a corpus into Parquet shards.

The input list (files, folders, globs, or a CSV/Parquet manifest with a ``path`` column; local or on any
filesystem pyarrow reads) is sorted and cut into shards of ``shard_size`` files, each written as one Parquet
file named from its position and its paths. A shard file exists only when complete (written to a temporary
name and renamed), so running the same job again skips the finished shards and does the rest. Decoding and
resampling run as Ray tasks on CPUs; the model runs in a pool of actors (one model load each, GPUs when asked)
fed with batches of clips; a file that cannot be decoded becomes a row with its error. Results are the same
numbers as ``dymn tag`` / ``dymn embed`` / ``dymn timeline`` / ``dymn detect`` give for each file (tag and embed
need a clip tagger, detect a frame-level detector; timeline takes both).

Needs the ``[batch]`` extra (Ray Data, pyarrow).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..util.errors import BatchError, UsageError, require
from ..util.raycluster import check_address, connect, quiet
from .corpus import SHARD_SIZE, expand_inputs, filesystem, is_remote, plan_shards, to_wire
from .stages import ModelWorker, decode_batch

COMMANDS = ("tag", "embed", "timeline", "detect")
JOB_FILE = "_dymn_job.json"
# Each model actor reserves one CPU (and runs PyTorch on `threads` threads, default 1); decoding tasks reserve a
# quarter of a CPU each. PyTorch's CPU kernels give results that depend (by ~1e-8) on the thread count: a batch
# job's numbers equal `dymn tag`'s run with the same number of threads (OMP_NUM_THREADS=1 for the default).
WORKER_CPUS = 1
DECODE_CPUS = 0.25


@dataclass
class BatchSummary:
    """What a job did: files done (including failed ones, which are rows with their error), failed, skipped
    because their shard was already complete, and the rate of this run."""

    out_dir: str
    shards: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    damaged: list[str] = field(default_factory=list)  # shard files found damaged, done again
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def files_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def to_text(self) -> str:
        lines = [f"{self.done} files done ({self.failed} failed), {self.skipped} skipped as already done, "
                 f"in {self.seconds:.1f} s ({self.files_per_second:.1f} files/s); "
                 f"{self.shards} shard{'s' if self.shards != 1 else ''} in {self.out_dir}"]  # fmt: skip
        if self.damaged:
            lines.append(
                f"  {len(self.damaged)} shard file(s) were damaged or did not hold their inputs and were "
                f"done again: {', '.join(self.damaged[:3])}{' ...' if len(self.damaged) > 3 else ''}"
            )
        lines += [f"  failed: {e}" for e in self.errors[:10]]
        if len(self.errors) > 10:
            lines.append(f"  ... and {len(self.errors) - 10} more (rows with status 'error')")
        return "\n".join(lines)


# --- the job's identity -------------------------------------------------------------------------------
def _job(command: str, model_name: str, model_spec: str, options: dict, paths: list[str], shard_size: int) -> dict:
    digest = hashlib.sha256("\n".join(paths).encode("utf-8", "surrogateescape")).hexdigest()
    same = {k: v for k, v in options.items() if k != "backend"}  # any backend gives the same results (1e-4)
    return {"dymn_batch": 1, "command": command, "model": model_name, "model_spec": model_spec,
            "options": same, "files": len(paths), "inputs_sha256": digest, "shard_size": shard_size}  # fmt: skip


class _Output:
    """The output folder (local or remote): the job file, which shards are complete, atomic shard writes."""

    def __init__(self, out_dir: str):
        self.uri = out_dir.rstrip("/")
        self.remote = is_remote(out_dir)
        if self.remote:
            self.fs, self.root = filesystem(out_dir)
        else:
            self.fs, self.root = None, os.path.abspath(out_dir)

    def _join(self, name: str) -> str:
        return f"{self.root}/{name}"

    def listing(self) -> set[str]:
        if not self.remote:
            return set(os.listdir(self.root)) if os.path.isdir(self.root) else set()
        import pyarrow.fs as pafs

        if self.fs.get_file_info(self.root).type != pafs.FileType.Directory:
            return set()
        return {os.path.basename(f.path) for f in self.fs.get_file_info(pafs.FileSelector(self.root))}

    def read_job(self) -> dict | None:
        if JOB_FILE not in self.listing():
            return None
        try:
            if self.remote:
                with self.fs.open_input_stream(self._join(JOB_FILE)) as f:
                    return json.loads(f.read().decode())
            return json.loads(Path(self._join(JOB_FILE)).read_text())
        except (OSError, ValueError) as exc:
            raise BatchError(f"{self._join(JOB_FILE)}: unreadable job file ({exc}); use another -o") from None

    def write_bytes(self, name: str, data: bytes) -> None:
        if not self.remote:
            from ..util.atomic import atomic_write

            os.makedirs(self.root, exist_ok=True)
            atomic_write(Path(self._join(name)), lambda tmp: Path(tmp).write_bytes(data))
            return
        tmp = self._join(f".{name}.tmp")
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, self._join(name))

    def holds(self, shard) -> bool:
        """Whether a shard file reads back whole and holds exactly its inputs, in order: a file cut, garbled,
        emptied or copied from another shard is not done."""
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self._join(shard.name), filesystem=self.fs)
            return table.num_rows == len(shard.paths) and table.column("path_bytes").to_pylist() == to_wire(shard.paths)
        except Exception:  # noqa: BLE001 (whatever pyarrow makes of a damaged file)
            return False

    def prepare(self, job: dict) -> set[str]:
        """Refuse a folder that holds another job's output; write the job file; the complete shards."""
        names = self.listing()
        if not self.remote and os.path.exists(self.root) and not os.path.isdir(self.root):
            raise BatchError(f"{self.root}: exists and is not a folder; choose another -o")
        old = self.read_job()
        if old is None:
            if any(n.endswith(".parquet") for n in names):
                raise BatchError(f"{self.uri}: holds Parquet files that are not a dymn batch job's; choose another "
                                 "-o")  # fmt: skip
            try:
                if self.remote:
                    self.fs.create_dir(self.root, recursive=True)
                self.write_bytes(JOB_FILE, (json.dumps(job, indent=1) + "\n").encode())
            except OSError as exc:
                raise BatchError(f"{self.uri}: cannot write the output folder ({str(exc).splitlines()[0]})") from None
        elif old != job:
            what = [k for k in job if old.get(k) != job[k]]
            raise BatchError(f"{self.uri}: holds the shards of a different job (not the same {', '.join(what)}); "
                             "choose another -o, or delete the folder to start over")  # fmt: skip
        return {n for n in names if n.endswith(".parquet")}


# --- the job ------------------------------------------------------------------------------------------
def _table(rows: list[dict], command: str, num_classes: int, embed_dim: int):
    import pyarrow as pa

    def col(name):  # a failed file's results are nulls
        return [r.get(name) if r["status"] == "ok" or name in ("path", "path_bytes", "duration", "status", "error")
                else None
                for r in rows]  # fmt: skip

    def fixed(values, width):
        flat = np.concatenate([np.asarray(v, np.float32) if v is not None else np.full(width, np.nan, np.float32)
                               for v in values]) if values else np.zeros(0, np.float32)  # fmt: skip
        arr = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), width)
        mask = pa.array([v is None for v in values])
        return pa.compute.if_else(mask, pa.scalar(None, arr.type), arr)

    data = {"path": pa.array(col("path"), pa.string()), "path_bytes": pa.array(col("path_bytes"), pa.binary()),
            "duration": pa.array(col("duration"), pa.float64()),
            "status": pa.array(col("status"), pa.string()), "error": pa.array(col("error"), pa.string())}  # fmt: skip
    if command == "tag":
        data["labels"] = pa.array(col("labels"), pa.list_(pa.string()))
        data["probabilities"] = pa.array(col("probabilities"), pa.list_(pa.float32()))
        if rows and "all_probabilities" in rows[0]:
            data["all_probabilities"] = fixed(col("all_probabilities"), num_classes)
    elif command == "embed":
        data["embedding"] = fixed(col("embedding"), embed_dim)
    elif command == "detect":
        data["events"] = pa.array(col("events"), pa.list_(_EVENT()))
    else:
        event = _EVENT()
        data["window_start"] = pa.array(col("window_start"), pa.list_(pa.float64()))
        data["window_end"] = pa.array(col("window_end"), pa.list_(pa.float64()))
        data["window_top_labels"] = pa.array(col("window_top_labels"), pa.list_(pa.list_(pa.string())))
        data["window_top_probabilities"] = pa.array(
            [None if v is None else [np.asarray(x, np.float32) for x in v] for v in col("window_top_probabilities")],
            pa.list_(pa.list_(pa.float32())))  # fmt: skip
        data["events"] = pa.array(col("events"), pa.list_(event))
    return pa.table(data)


def _EVENT():  # noqa: N802 (a type, built on use: pyarrow is imported lazily)
    import pyarrow as pa

    return pa.struct([("label", pa.string()), ("index", pa.int32()), ("onset", pa.float64()),
                      ("offset", pa.float64()), ("peak", pa.float64())])  # fmt: skip


def _parquet_bytes(table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def run(command: str, inputs: list[str], out_dir: str, *, model: str | None = None, weights: str | None = None,
        address: str | None = None, workers: int | None = None, gpus_per_worker: float = 0, batch_size: int = 8,
        shard_size: int = SHARD_SIZE, top_k: int = 10, all_probabilities: bool = False, window: float | None = None,
        hop: float | None = None, events: dict | None = None, threads: int = 1, progress: bool | None = None,
        backend: str | None = None) -> BatchSummary:  # fmt: skip
    """Run a batch job (``command``: tag, embed, timeline or detect) over ``inputs`` into Parquet shards in
    ``out_dir``. ``window``/``hop``: as :func:`dymn.timeline` (default 10 s and 1 s; a detector: its frames);
    ``events``: :class:`~dymn.inference.events.EventConfig` settings (detect: threshold and median).

    ``address``: None starts a local Ray instance; "auto" or HOST:PORT joins a running cluster. ``workers``:
    model actors (default: 3/4 of the cluster's CPUs, at least 1); ``gpus_per_worker`` > 0 runs them on
    GPUs; ``threads``: PyTorch threads per actor on CPUs (results equal ``dymn tag`` run with as many threads);
    ``backend``: where the network runs in each actor (see :func:`dymn.optimize`).
    Returns a :class:`BatchSummary`; a finished shard is never redone, a failed file is a row."""
    require("ray", "batch", "dymn batch")
    import ray

    from ..hub.loader import DEFAULT_MODEL, load
    from ..inference.events import EventConfig, check_median
    from ..inference.timelines import check_window_hop

    if command not in COMMANDS:
        raise UsageError(f"unknown batch command {command!r}; choose one of {', '.join(COMMANDS)}")
    if batch_size < 1 or (workers is not None and workers < 1) or gpus_per_worker < 0 or top_k < 0 or threads < 1:
        raise UsageError("--batch-size, --workers and --threads must be at least 1, --gpus-per-worker and --top-k "
                         "not negative")  # fmt: skip
    from ..runtime.backends import default_backend

    # each model actor measures its own machine (once, cached there); the choice never changes the numbers
    options: dict = {"batch_size": batch_size, "backend": backend or default_backend()}
    check_address(address)
    net = load(model or (None if weights else DEFAULT_MODEL), weights=weights, device="cpu")
    if not net.info.trained:
        raise UsageError(f"{net.info.name} has a random classifier; use a trained model such as {DEFAULT_MODEL}")
    frame_level = net.info.level == "frame"
    if frame_level and command in ("tag", "embed"):
        raise UsageError(f"{net.info.name} is a frame-level detector: use `dymn batch detect` or `dymn batch "
                         f"timeline` (`batch {command}` needs a clip tagger such as {DEFAULT_MODEL})")  # fmt: skip
    if command == "detect" and not frame_level:
        raise UsageError(f"{net.info.name} is a clip-level tagger: `dymn batch detect` needs a frame-level detector "
                         "such as fmn10_tf256 (`dymn batch timeline` takes taggers)")  # fmt: skip
    given = {k: v for k, v in (events or {}).items() if v is not None}
    if command == "tag":
        options.update(top_k=top_k, all_probabilities=bool(all_probabilities))
    elif command == "detect":
        median = int(given.get("median", 9))
        check_median(median, "frames")
        options.update(threshold=float(given.get("threshold", 0.5)), median=median)
    elif command == "timeline":
        frames = frame_level and window is None and hop is None
        if not frames:
            window, hop = 10.0 if window is None else window, 1.0 if hop is None else hop
            check_window_hop(window, hop)
        cfg = EventConfig(**{"median": 9 if frames else 3, **given})
        options.update(window=window, hop=hop, top_k=top_k, events={
            k: getattr(cfg, k) for k in ("threshold", "low", "median", "merge_gap", "min_duration")})  # fmt: skip
    paths = expand_inputs(inputs)
    if not paths:
        raise BatchError("the inputs hold no audio files")
    from ..inference.tagging import chunk_size

    # shards hold whole chunks of `dymn tag` (see inference._chunks), so every file gets the same batch
    count = chunk_size(batch_size)
    shard_size = -(-shard_size // count) * count
    shards = plan_shards(paths, shard_size)
    spec = f"{model or ''}|{weights or ''}"
    job = _job(command, net.info.name, spec, options, paths, shard_size)
    out = _Output(out_dir)
    found = out.prepare(job)
    strays = sorted(found - {s.name for s in shards})
    if strays:  # read with the shards, their rows would be counted twice or belong to nothing
        more = " ..." if len(strays) > 3 else ""
        raise BatchError(f"{out.uri}: holds Parquet files that are not this job's shards ({', '.join(strays[:3])}"
                         f"{more}); move them out of the folder and run again")  # fmt: skip
    complete = {s.name for s in shards if s.name in found and out.holds(s)}
    pending = [s for s in shards if s.name not in complete]
    summary = BatchSummary(out.uri, len(shards), skipped=sum(len(s.paths) for s in shards if s.name in complete),
                           damaged=sorted(found - complete))  # fmt: skip
    if not pending:
        return summary
    started = time.perf_counter()
    if options["backend"] == "auto" and not gpus_per_worker:
        _choose_here(net, batch_size, threads)
    own = connect(address)
    try:
        _run_pending(ray, net, command, options, pending, out, summary, workers, gpus_per_worker, batch_size,
                     threads, progress)  # fmt: skip
    finally:
        if own:
            ray.shutdown()
    summary.seconds = time.perf_counter() - started
    return summary


def _choose_here(net, batch_size: int, threads: int) -> None:
    """Measure the backends here, once, before the workers start: its messages reach this terminal or log (a
    worker's go to Ray's logs only, and a job looked stalled for minutes), and the workers on this machine find
    the choice and its converted graphs in the cache. Measured as the workers run (their threads, the tuned C
    allocator); a library caller's process with the default allocator leaves it to the workers."""
    import torch

    from ..runtime.choice import choose
    from ..util import allocator

    if allocator.state() != "tuned":
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        choose(net, batch_size)
    finally:
        torch.set_num_threads(before)


def _run_pending(ray, net, command, options, pending, out, summary, workers, gpus, batch_size, threads,
                 progress) -> None:  # fmt: skip
    import ray.data
    from tqdm.auto import tqdm

    from ..inference.tagging import chunk_size

    quiet()  # again: importing ray.data set up its own logging
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # one bar of files, below, not one per operator
    cpus = float(ray.cluster_resources().get("CPU", 1))
    workers = workers or max(1, int(cpus * 0.75))
    if not gpus and workers * WORKER_CPUS + DECODE_CPUS > cpus:
        raise BatchError(f"--workers {workers} needs {workers * WORKER_CPUS:g} CPUs for the model and some for "
                         f"decoding; the cluster has {cpus:g} CPUs")  # fmt: skip
    count = chunk_size(batch_size)
    rows = [{"shard": s.index, "first": j, "paths": to_wire(s.paths[j : j + count])}
            for s in pending for j in range(0, len(s.paths), count)]  # fmt: skip
    expected = {s.index: len(s.paths) for s in pending}
    by_index = {s.index: s for s in pending}
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    # decoding as CPU tasks (a fraction of a CPU each, so they do not fuse into the model actors)
    ds = ds.map_batches(decode_batch, batch_size=1, num_cpus=DECODE_CPUS, batch_format="numpy",
                        fn_kwargs={"sample_rate": net.info.sample_rate, "command": command})  # fmt: skip
    ds = ds.map_batches(
        ModelWorker, batch_size=1, batch_format="numpy", num_cpus=0 if gpus else WORKER_CPUS, num_gpus=gpus,
        compute=ray.data.ActorPoolStrategy(size=workers),
        fn_constructor_kwargs={"model_ref": [ray.put(net)], "command": command, "options": options,
                               "device": "cuda" if gpus else "cpu", "threads": threads},
    )  # fmt: skip
    pending_rows: dict[int, dict[int, dict]] = {s: {} for s in expected}
    show = progress if progress is not None else sys.stderr.isatty()
    bar = tqdm(total=sum(expected.values()), unit="file", disable=not show, desc=f"batch {command}")
    num_classes, embed_dim = len(net.labels), int(net.info.embed_dim or 0)
    written, begun = 0, time.perf_counter()
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for r in batch.to_pylist():
            shard = int(r["shard"])
            if shard not in pending_rows or int(r["order"]) in pending_rows[shard]:
                continue  # a retried task's row that already arrived: every input once
            pending_rows[shard][int(r["order"])] = r
            bar.update(1)
            if r["status"] == "error":
                summary.failed += 1
                summary.errors.append(r["error"])
            if len(pending_rows[shard]) == expected[shard]:
                got = pending_rows.pop(shard)
                ordered = [got[j] for j in range(expected[shard])]
                out.write_bytes(by_index[shard].name, _parquet_bytes(_table(ordered, command, num_classes,
                                                                            embed_dim)))  # fmt: skip
                summary.done += expected[shard]
                written += 1
                if not show:  # no bar (a log, a pipe): a line per shard, so that a long job is seen to progress
                    print(f"dymn: batch {command}: {written} of {len(expected)} shard(s) written ({summary.done} "
                          f"files, {summary.failed} failed, {time.perf_counter() - begun:.0f} s)", file=sys.stderr,
                          flush=True)  # fmt: skip
    bar.close()
    if pending_rows:
        raise BatchError(f"{len(pending_rows)} shard(s) did not receive all their files; run the job again")
