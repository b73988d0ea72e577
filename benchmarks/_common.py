"""What several benchmarks share: the real checkpoint in a private cache, memory of a process tree."""

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_WEIGHTS = SHARED / "weights" / "mn04_as_mAP_432.pt"


def private_cache(work: Path, model: str) -> dict:
    """An environment whose DYMN_CACHE is under ``work``, holding the real mn04_as checkpoint when asked for."""
    cache = work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if model == "mn04_as" and REAL_WEIGHTS.is_file():
        shutil.copy(REAL_WEIGHTS, cache / REAL_WEIGHTS.name)
    return {**os.environ, "DYMN_CACHE": str(cache)}


def pss(pid: int) -> int:
    """PSS of the process tree of ``pid`` and of every Ray process on the machine, each process counted once
    (a local Ray instance's GCS and raylet are the driver's children; its workers are not)."""
    import psutil

    procs = {}
    try:
        root = psutil.Process(pid)
        procs = {q.pid: q for q in [root, *root.children(recursive=True)]}
    except psutil.NoSuchProcess:
        pass
    for q in psutil.process_iter(["cmdline"]):
        cmd = " ".join(q.info["cmdline"] or [])
        if "ray::" in cmd or "raylet" in cmd or "gcs_server" in cmd or "/ray/" in cmd:
            procs[q.pid] = q
    total = 0
    for q in procs.values():
        try:
            total += q.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total
