"""Load test of `dymn serve` on loopback: concurrent clients, good and bad uploads, with and without batching,
uvicorn and Ray Serve.

    python benchmarks/bench_serve.py [--model mn04_as] [--clients 16] [--requests 300] [--engines uvicorn,ray]

Each configuration starts its own server process on 127.0.0.1, then `--clients` clients send `--requests`
POST /v1/tag requests in all (bounded: every request has a 120 s timeout and the run stops after 15 minutes):
9 in 10 are real recordings from ../shared (10 s crops of the samples and the metro clip, and spoken digits,
padded to 10 s by the model as `dymn tag` does), 1 in 10 bad (text sent as audio, an upload over the size limit,
audio over the duration limit). Reports requests/s, p50/p99 latency of the good requests, how many clips each
model call carried, the count of 5xx answers (must be 0) and the server's peak memory (PSS of its process tree
and, for Ray, of all Ray processes). Prints a markdown table.
"""

import argparse
import asyncio
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import SHARED, private_cache, pss


def clips() -> list[tuple[str, bytes]]:
    sounds = [SHARED / "audio" / "metro_station-paris.wav", *sorted((SHARED / "audio" / "samples").glob("*.wav"))]
    digits = sorted((SHARED / "data" / "fsdd" / "recordings").glob("*.wav"))[::300]
    out = []
    for f in sounds:
        x, sr = sf.read(f, dtype="float32")
        buf = io.BytesIO()
        sf.write(buf, x[: 10 * sr], sr, format="WAV")
        out.append((f.name, buf.getvalue()))
    out += [(f.name, f.read_bytes()) for f in digits]
    return out


def bad_uploads() -> list[tuple[str, bytes]]:
    long = io.BytesIO()
    sf.write(long, np.zeros(16000 * 700, np.int16), 16000, format="WAV")  # 700 s > --max-seconds 600
    return [("notes.wav", b"this is not audio at all"), ("huge.wav", b"\0" * (51 * 2**20)),
            ("long.wav", long.getvalue())]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, n: int, clients: int, good, bad) -> dict:
    import httpx

    lat, codes, lock = [], [], asyncio.Lock()
    counter = iter(range(n))

    async def client(cid: int):
        async with httpx.AsyncClient(timeout=120) as c:
            for i in counter:
                name, data = bad[i % len(bad)] if i % 10 == 9 else good[(i * 7 + cid) % len(good)]
                t = time.perf_counter()
                try:
                    r = await c.post(f"{url}/v1/tag", files={"file": (name, data)}, params={"top_k": 3})
                    code = r.status_code
                except httpx.HTTPError:
                    code = 599  # the connection failed: counts as a server error
                async with lock:
                    codes.append(code)
                    if i % 10 != 9:
                        lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(clients))), timeout=900)
    wall = time.perf_counter() - t0
    return {"wall": wall, "lat": np.array(lat), "codes": codes}


def run_config(name: str, args: list[str], env: dict, n: int, clients: int, good, bad) -> dict:
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "dymn.cli", "serve", "--port", str(port), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"{name}: the server did not start")
        asyncio.run(load(url, 16, 4, good, bad))  # warm-up
        before = httpx.get(url + "/healthz").json()
        peak, stop = [0], threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], pss(proc.pid))
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        res = asyncio.run(load(url, n, clients, good, bad))
        stop.set()
        sampler.join()
        after = httpx.get(url + "/healthz").json()
        calls = max(1, after["batches"] - before["batches"])
        res.update(peak=peak[0], per_call=(after["clips"] - before["clips"]) / calls)
        return res
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mn04_as")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--engines", default="uvicorn,ray")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dymn-serve-"))
    env = private_cache(work, a.model)
    good, bad = clips(), bad_uploads()
    configs = []
    for engine in a.engines.split(","):
        configs.append((f"{engine}, batching", ["--engine", engine, "--model", a.model]))
        if engine == "uvicorn":
            configs.append((f"{engine}, no batching", ["--engine", engine, "--model", a.model, "--no-batching"]))
    rows = []
    for name, args in configs:
        r = run_config(name, args, env, a.requests, a.clients, good, bad)
        codes = np.array(r["codes"])
        p50, p99 = 1000 * np.percentile(r["lat"], [50, 99])
        rows.append((name, len(codes) / r["wall"], p50, p99, r["per_call"], int((codes >= 500).sum()),
                     sorted(set(codes.tolist())), r["peak"] / 2**20))  # fmt: skip
        print(f"{name}: done", file=sys.stderr, flush=True)
    import torch

    print(f"\n{a.requests} requests from {a.clients} concurrent clients on 127.0.0.1 (1 in 10 bad), {a.model}, "
          f"CPU, {os.cpu_count()} cores, torch {torch.__version__}\n")  # fmt: skip
    print("| server | requests/s | p50 (ms) | p99 (ms) | clips per model call | 5xx | status codes | peak PSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for name, rps, p50, p99, per_call, e5, codes, mem in rows:
        print(f"| {name} | {rps:.1f} | {p50:.0f} | {p99:.0f} | {per_call:.1f} | {e5} | {codes} | {mem:.0f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
