"""The automatic choice of backend: remembered per model architecture, batch size and machine, or measured.

The first time a model runs at a batch size on a machine, every backend available there and each way it can run a
batch (:func:`.engines.variants`) is measured; each one's outputs are checked against the plain network and the
fastest is kept. The choice is cached per machine, thread count, architecture, batch size, library versions and C
allocator setting in ``$DYMN_CACHE/backends.json``, so later runs decide at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

from ..audio.frontend import MelFrontend
from ..util import allocator
from ..util.atomic import write_text
from ..util.errors import UsageError
from ..util.timing import time_calls
from . import engines
from .backends import Plan, available, threads
from .graphs import cache_root, versions

# a backend whose outputs differ from the plain network by more than this (max abs logit difference, relative to
# the logits' scale) is not used: a measured speed is worth nothing without the same results
AGREEMENT = 1e-3
# int8 moves logits by design (measured effect: benchmarks/bench_int8.py); this only rejects a broken graph
INT8_SANITY = 0.5
# the set of candidates measured; raised when it grows, so that cached choices are measured again
CHOICE_FORMAT = 2
# a machine is busy when the load besides this process is above this many runnable tasks per CPU: timings taken
# then (41-604 s to measure instead of 9 s, issue 25) may rank the backends wrongly, so such a choice is used
# only until the machine is quiet again, and then measured again
BUSY_LOAD_PER_CPU = 0.5


def machine_load() -> float:
    """Runnable tasks per CPU besides this process (the 1-minute load average less one), 0 where unknown."""
    try:
        return max(0.0, os.getloadavg()[0] - 1.0) / (os.cpu_count() or 1)
    except (OSError, AttributeError):
        return 0.0


def compile_model(model: nn.Module, backend: str, graph: Path | None = None, micro_batch="auto",
                  batch_size: int = 8) -> nn.Module:  # fmt: skip
    """``model`` on ``backend`` for batches of ``batch_size`` (see :func:`.engines.build`); ``micro_batch``
    "auto": the engine's rule of thumb."""
    return engines.build(model, Plan(backend, batch_size, micro_batch), graph)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}|{os.cpu_count()} cpus"


def choice_key(model: nn.Module, batch_size: int, int8: bool) -> str:
    # speed depends on the architecture, not on the values of the weights: a fine-tuned copy reuses the choice
    arch = json.dumps([model.arch, model.config.to_dict()], sort_keys=True, default=str)
    parts = [f"choice {CHOICE_FORMAT}", _machine(), f"threads {threads()}", arch, f"batch {batch_size}",
             "int8" if int8 else "fp32", json.dumps(versions(), sort_keys=True),
             f"malloc {allocator.state()}"]  # fmt: skip
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _read_choices(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _usable(entry, candidates: list[str], batch_size: int) -> bool:
    """Whether a remembered choice can be used as it is: a file edited by hand or by another version (wrong types,
    a negative micro-batch) is measured again and overwritten, never a traceback."""
    if not isinstance(entry, dict) or entry.get("backend") not in candidates:
        return False
    split = entry.get("micro_batch", "auto")
    return split is None or split == "auto" or (type(split) is int and 1 <= split <= batch_size)


def _write_choice(path: Path, key: str, entry: dict) -> None:
    data = _read_choices(path)  # other processes may have added their own choices meanwhile
    data[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only cache: the choice is measured again next time


def probe_input(model: nn.Module, batch_size: int, seconds: float = 10.0) -> torch.Tensor:
    """Log-mels of noise: the shape the model will see (10 s clips), values in the model's range."""
    fe = model.info.frontend
    gen = torch.Generator().manual_seed(0)
    wave = torch.randn(batch_size, int(seconds * fe.sample_rate), generator=gen) * 0.05
    with torch.inference_mode():
        return MelFrontend.from_config(fe).eval()(wave).unsqueeze(1)


def measure(model: nn.Module, batch_size: int = 8, backends: list[str] | None = None, repeats: int = 3,
            int8_graph: Path | None = None) -> dict[str, dict]:  # fmt: skip
    """For each backend: ms per clip at ``batch_size`` on 10 s clips and the largest logit difference from
    the plain network (or an error); the module built is kept under "module"."""
    x = probe_input(model, batch_size)
    was_training = model.training
    with torch.inference_mode():
        ref_logits, _ = model.eval()(x)
    model.train(was_training)  # the caller's model is left as it was
    scale = max(1.0, float(ref_logits.abs().max()))
    built: dict[tuple, dict] = {}
    errors: dict[str, dict] = {}
    for name in backends or available():
        # also how each backend runs a batch (whole, or in pieces that keep the early maps in the caches)
        for split in engines.variants(name, batch_size):
            try:
                module = compile_model(model, name, int8_graph if name != "torch" else None, micro_batch=split,
                                       batch_size=batch_size)  # fmt: skip
                with torch.inference_mode():
                    logits, _ = module(x)
                diff = float((logits.float() - ref_logits).abs().max()) / scale
                built[(name, split)] = {"diff": diff, "module": module, "micro_batch": split}
            except Exception as exc:  # a backend that cannot run this model is simply not chosen
                errors[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
    with torch.inference_mode():  # interleaved rounds: a slow spell of the machine hits every candidate alike
        seconds = time_calls({key: (lambda m=r["module"]: m(x)) for key, r in built.items()}, repeats, min_time=0.3)
    out: dict[str, dict] = {}
    for (name, _), result in built.items():
        result["ms"] = 1000 * seconds[(name, result["micro_batch"])] / batch_size
        if name not in out or result["ms"] < out[name]["ms"]:
            out[name] = result
    return {**{name: e for name, e in errors.items() if name not in out}, **out}


def choose(model: nn.Module, batch_size: int = 8, device: str | torch.device = "cpu", quiet: bool = False,
           int8_graph: Path | None = None) -> tuple[str, nn.Module | None]:  # fmt: skip
    """The fastest backend for ``model`` at ``batch_size`` on this machine (measured once, then cached), and
    its module (None on a GPU or when there is nothing to choose)."""
    if torch.device(device).type != "cpu":
        return "torch", None  # GPU inference stays in PyTorch (CUDA graphs of the runtimes are not installed)
    candidates = available() if int8_graph is None else [b for b in available() if b != "torch"]
    if candidates == ["torch"] and batch_size == 1:
        return "torch", None  # nothing to choose
    store = cache_root() / "backends.json"
    key = choice_key(model, batch_size, int8_graph is not None)
    entry = _read_choices(store).get(key)
    load = machine_load()
    usable = _usable(entry, candidates, batch_size)
    remeasure = usable and bool(entry.get("busy")) and load <= BUSY_LOAD_PER_CPU
    if usable and not remeasure:
        try:
            return entry["backend"], compile_model(model, entry["backend"], int8_graph, batch_size=batch_size,
                                                   micro_batch=entry.get("micro_batch", "auto"))  # fmt: skip
        except Exception:  # noqa: BLE001 (a cached graph gone bad is measured again)
            pass
    if not quiet:
        why = " again: the last choice was measured while the machine was busy" if remeasure else ""
        print(f"dymn: measuring the backends for {model.info.name} at batch {batch_size} on this machine{why} "
              f"({', '.join(candidates)}; once, then cached) ...", file=sys.stderr, flush=True)  # fmt: skip
    started = time.perf_counter()
    results = measure(model, batch_size, candidates, int8_graph=int8_graph)
    limit = INT8_SANITY if int8_graph is not None else AGREEMENT
    good = {n: r for n, r in results.items() if "ms" in r and r["diff"] <= limit}
    if not good:
        best = "torch" if int8_graph is None else None
        if best is None:
            raise UsageError(f"no backend runs the int8 graph of {model.info.name}: " + "; ".join(
                f"{n}: {r.get('error') or 'outputs differ'}" for n, r in results.items()))  # fmt: skip
        return best, None
    best = min(good, key=lambda n: good[n]["ms"])
    if not quiet:
        others = ", ".join(f"{n} {r['ms']:.1f}" for n, r in sorted(good.items(), key=lambda i: i[1]["ms"])[1:])
        print(
            f"dymn: {best} chosen ({good[best]['ms']:.1f} ms per 10 s clip"
            + (f"; {others}" if others else "")
            + f"), measured in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    load = max(load, machine_load())  # before or after: the timings are in between
    busy = load > BUSY_LOAD_PER_CPU
    if busy and not quiet:
        print(f"dymn: the machine was busy while measuring (load {load:.1f} per CPU besides "
              "this process): the choice is measured again when it is quiet", file=sys.stderr, flush=True)  # fmt: skip
    _write_choice(store, key, {"backend": best, "model": model.info.name, "batch": batch_size, "busy": busy,
                               "micro_batch": good[best].get("micro_batch"),
                               "ms_per_clip": {n: round(r["ms"], 3) for n, r in good.items()},
                               "rejected": {n: r.get("error") or f"diff {r['diff']:.2e}" for n, r in results.items()
                                            if n not in good}})  # fmt: skip
    return best, results[best]["module"]
