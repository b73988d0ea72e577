"""Requests that would cost the service out of proportion: every parameter bounded, a request's work capped, work
for a client that went away stopped, a stalled upload timed out; the page's policy, nosniff and the Host check."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi", reason="the service needs the [serve] extra")


def _post(url, data: bytes, timeout=60.0, **params):
    return httpx.post(url, params=params, files={"file": ("clip.wav", data, "audio/wav")}, timeout=timeout)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """The app on uvicorn in this process (a stand-in mn01_as), with small limits: 2 decoding slots, 1 s for an
    upload body, at most 400 windows per timeline."""
    import os

    import uvicorn

    from dymn.service.app import create_app
    from dymn.service.core import Limits, ServiceCore

    from ..conftest import stand_in_release

    cache = tmp_path_factory.mktemp("hostile-cache")
    stand_in_release(cache, "mn01_as")
    before = os.environ.get("DYMN_CACHE")
    os.environ["DYMN_CACHE"] = str(cache)
    try:
        core = ServiceCore("mn01_as", limits=Limits(max_seconds=40, max_decoding=2, upload_timeout_s=1.0,
                                                    max_windows=400), backend="torch")  # fmt: skip
    finally:
        if before is None:
            os.environ.pop("DYMN_CACHE")
        else:
            os.environ["DYMN_CACHE"] = before
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(core, ["127.0.0.1", "localhost", "::1"]), host="127.0.0.1",
                                           port=port, log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    clip = cache / "long.wav"
    t = np.arange(40 * 8000) / 8000  # 40 s at 8 kHz: small to send, 40 s to compute
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    short = cache / "short.wav"
    sf.write(short, (0.3 * np.sin(2 * np.pi * 440 * t[:16000])).astype(np.float32), 8000)
    core.short = short.read_bytes()
    yield f"http://127.0.0.1:{port}", clip.read_bytes(), core
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize(("params", "word"), [({"median": 20001}, "median"), ({"window": 0.001}, "window"),
                                              ({"hop": 0.001}, "hop"), ({"window": 1e6}, "window"),
                                              ({"top_k": -1}, "top_k"), ({"hop": "nan"}, "hop")])  # fmt: skip
def test_every_parameter_is_bounded(service, params, word):
    url, data, _ = service
    r = _post(url + "/v1/timeline", data, **params)
    assert r.status_code == 422 and word in r.json()["error"]["message"]


def test_a_request_work_is_capped(service):
    url, data, _ = service
    r = _post(url + "/v1/timeline", data, hop=0.05)  # 800 windows of 10 s
    assert r.status_code == 422 and "at most 400" in r.json()["error"]["message"]


def test_work_for_a_client_that_went_away_stops(service, monkeypatch):
    """Four abandoned timelines (400 windows, 50 model calls each) would hold both decoding slots until all were
    computed; once their clients have gone the work stops at its next batch, and a plain tag gets a slot."""
    url, data, core = service
    calls = []
    run_batch = core.tagger.run_batch
    monkeypatch.setattr(core.tagger, "run_batch", lambda x: (calls.append(len(x)), run_batch(x))[1])

    def abandoned(_):
        try:
            _post(url + "/v1/timeline", data, timeout=1.0, hop=0.1)
        except httpx.TimeoutException:
            pass

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(abandoned, range(4)))
    r = _post(url + "/v1/tag", core.short, timeout=120)
    assert r.status_code == 200, r.text
    # without stopping, the tag would have waited for at least three of them: 150 model calls or more
    assert len(calls) < 100, len(calls)


def test_a_stalled_upload_times_out(service):
    url, _, _ = service
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /v1/tag HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: 100000\r\n\r\n" + b"\0" * 100)  # fmt: skip
        answer = s.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 408") and "did not arrive within 1 s" in answer


def test_headers_and_host_check(service):
    url, _, _ = service
    page = httpx.get(url + "/")
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "script-src 'sha256-" in csp and "style-src 'sha256-" in csp
    assert 'style="' not in page.text  # inline style attributes would need 'unsafe-inline'
    assert page.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(url + "/healthz").headers["x-content-type-options"] == "nosniff"
    rebound = httpx.get(url + "/v1/models", headers={"Host": "attacker.example:8000"})
    assert rebound.status_code == 421 and "answers only to" in rebound.json()["error"]["message"]
    assert httpx.get(url + "/healthz", headers={"Host": "localhost:1234"}).status_code == 200
