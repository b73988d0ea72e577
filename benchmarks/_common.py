"""What several benchmarks share: the real checkpoint in a private cache, memory of a process tree."""

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

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


def make_corpus(dst: Path, n: int) -> Path:
    """``n`` real files: 70 % spoken digits of about 0.5 s (FSDD, linked) and 30 % crops of 3-10 s of the real
    recordings in ../shared/audio (written as WAV)."""
    digits = sorted((SHARED / "data" / "fsdd" / "recordings").glob("*.wav"))
    sounds = [SHARED / "audio" / "metro_station-paris.wav", *sorted((SHARED / "audio" / "samples").glob("*.wav"))]
    if not digits or not sounds[0].exists():
        sys.exit("needs ../shared/data/fsdd and ../shared/audio")
    rng = np.random.default_rng(0)
    n_crops = n * 3 // 10
    for i, f in enumerate(digits[:: max(1, len(digits) // (n - n_crops))][: n - n_crops]):
        (dst / "digits").mkdir(parents=True, exist_ok=True)
        (dst / "digits" / f"{i:04d}.wav").symlink_to(f)
    for i in range(n_crops):
        src = sounds[i % len(sounds)]
        x, sr = sf.read(src, dtype="float32", always_2d=True)
        secs = rng.uniform(3, 10)
        length = min(len(x), int(secs * sr))
        start = int(rng.integers(0, max(1, len(x) - length)))
        (dst / "crops").mkdir(parents=True, exist_ok=True)
        sf.write(dst / "crops" / f"{i:04d}_{src.stem}.wav", x[start : start + length], sr)
    return dst
