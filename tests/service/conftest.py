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
    """The service on the real mn04_as checkpoint (skips without ../shared), small limits for the tests."""
    pytest.importorskip("fastapi", reason="the service needs the [serve] extra")
    if not REAL_WEIGHTS.exists():
        pytest.skip("needs the real checkpoint in ../shared/weights")
    env = {**os.environ, "DYMN_CACHE": str(tmp_path_factory.mktemp("serve-cache"))}
    server = Server(["--model", "mn04_as", "--weights", str(REAL_WEIGHTS), "--max-upload-mb", "3",
                     "--max-seconds", "30"], env)  # fmt: skip
    yield server
    server.stop()
