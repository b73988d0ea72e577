"""A real `dymn serve` process on 127.0.0.1, started and stopped by the tests."""

import os
import socket
import subprocess
import sys
import time

import pytest

from ..conftest import REAL_WEIGHTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, args: list[str], env: dict):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "dymn.cli", "serve", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        import httpx

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dymn serve exited: {self.proc.stdout.read()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("dymn serve did not answer within 90 s")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.stdout.read() if self.proc.stdout else ""


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """The service with small limits for the tests: on the real mn04_as checkpoint and a real clip when
    ../shared is there, else on a stand-in mn01_as (random weights in the released layout) and a generated clip.
    ``model_args`` and ``cache`` let a test run the CLI on the same model; ``real`` says which it is."""
    pytest.importorskip("fastapi", reason="the service needs the [serve] extra")
    import numpy as np
    import soundfile as sf

    from ..conftest import AUDIO, stand_in_release

    cache = tmp_path_factory.mktemp("serve-cache")
    real = REAL_WEIGHTS.exists() and (AUDIO / "samples" / "applause.wav").exists()
    if real:
        model_args = ["--model", "mn04_as", "--weights", str(REAL_WEIGHTS)]
        clip = AUDIO / "samples" / "applause.wav"
    else:
        stand_in_release(cache, "mn01_as")
        model_args = ["--model", "mn01_as"]
        clip = cache / "clip.wav"
        t = np.arange(int(10.5 * 32000)) / 32000
        sf.write(clip, (0.3 * np.sin(2 * np.pi * 440 * t) * (t % 2 < 1)).astype(np.float32), 32000)
    env = {**os.environ, "DYMN_CACHE": str(cache)}
    from ..web.conftest import ORT_WEB  # the in-browser page at /local with a local onnxruntime-web, if installed

    ort = ["--ort", str(ORT_WEB)] if ORT_WEB.is_dir() else []
    server = Server([*model_args, "--max-upload-mb", "3", "--max-seconds", "30", *ort], env)
    server.model_args, server.cache, server.real, server.clip = model_args, str(cache), real, clip
    server.ort = bool(ort)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def detector_server(tmp_path_factory):
    """The service on a frame-level detector: a stand-in fmn04_tf104 (random weights in the released layout)
    and a generated 12.5 s clip at 16 kHz."""
    pytest.importorskip("fastapi", reason="the service needs the [serve] extra")
    import numpy as np
    import soundfile as sf

    from ..conftest import stand_in_release

    cache = tmp_path_factory.mktemp("serve-detector-cache")
    stand_in_release(cache, "fmn04_tf104")
    clip = cache / "noise.wav"
    sf.write(clip, (np.random.default_rng(0).standard_normal(int(12.5 * 16000)) * 0.1).astype(np.float32), 16000)
    server = Server(["--model", "fmn04_tf104"], {**os.environ, "DYMN_CACHE": str(cache)})
    server.model_args, server.cache, server.clip = ["--model", "fmn04_tf104"], str(cache), clip
    yield server
    server.stop()
