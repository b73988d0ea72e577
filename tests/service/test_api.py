"""The JSON API of `dymn serve` against a real server process: every endpoint, the same numbers as the CLI,
every kind of bad request, concurrent requests batched."""

import importlib.util
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dymn.cli.main import main

httpx = pytest.importorskip("httpx")


def _post(server, path, data: bytes, name="clip.wav", **params):
    return httpx.post(server.url + path, params=params, files={"file": (name, data, "audio/wav")}, timeout=60)


def test_endpoints_give_the_cli_numbers(real_server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DYMN_CACHE", real_server.cache)
    clip, model = real_server.clip, real_server.model_args
    data = clip.read_bytes()
    tag = _post(real_server, "/v1/tag", data, clip.name, top_k=5)
    assert tag.status_code == 200 and tag.json()["model"] == model[1]
    assert main(["tag", str(clip), *model, "--top-k", "5", "--format", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)[0]
    assert tag.json()["tags"] == cli["tags"] and tag.json()["duration"] == cli["duration"]  # the same numbers
    if real_server.real:
        assert tag.json()["tags"][0]["label"] == "Applause"
    raw = httpx.post(real_server.url + "/v1/tag", params={"top_k": 5}, content=data,
                     headers={"content-type": "application/octet-stream"}, timeout=60)  # fmt: skip
    assert raw.json()["tags"] == cli["tags"]  # raw bytes as well as multipart
    tl = _post(real_server, "/v1/timeline", data, clip.name, window=5, hop=2.5)
    assert main(["timeline", str(clip), *model, "--window", "5", "--hop", "2.5", "--format", "json"]) == 0
    cli_tl = json.loads(capsys.readouterr().out)
    body = tl.json()
    assert body["windows"] == cli_tl["windows"] and body["events"] == cli_tl["events"]
    emb = _post(real_server, "/v1/embed", data, clip.name).json()
    assert main(["embed", str(clip), *model, "--out", str(tmp_path / "e.npz")]) == 0
    np.testing.assert_array_equal(np.float32(emb["embedding"]), np.load(tmp_path / "e.npz")["embeddings"][0])
    models = httpx.get(real_server.url + "/v1/models").json()["models"][0]
    assert models["name"] == model[1] and models["classes"] == 527 and len(models["labels"]) == 527
    schema = httpx.get(real_server.url + "/openapi.json").json()
    assert {"/v1/tag", "/v1/timeline", "/v1/embed", "/v1/models", "/healthz"} <= set(schema["paths"])
    page = httpx.get(real_server.url + "/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert "src=" not in page.text and "https://" not in page.text  # no external script or style: works offline


def test_bad_requests_get_clear_json_errors_and_the_service_stays_up(real_server, tmp_path):
    def err(r, status):
        assert r.status_code == status, r.text
        msg = r.json()["error"]["message"]
        assert msg and r.json()["error"]["status"] == status
        return msg

    assert "larger than" in err(_post(real_server, "/v1/tag", b"\0" * (4 * 2**20)), 413)
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(16000 * 40, np.int16), 16000)
    assert "at most 30 s" in err(_post(real_server, "/v1/tag", long.read_bytes(), "long.wav"), 413)
    assert "not a readable audio file" in err(_post(real_server, "/v1/tag", b"hello, not audio"), 415)
    assert "holds no audio" in err(_post(real_server, "/v1/tag", b""), 422)
    assert "top_k" in err(_post(real_server, "/v1/tag", real_server.clip.read_bytes(), top_k=-2), 422)
    assert "hop" in err(_post(real_server, "/v1/timeline", real_server.clip.read_bytes(), hop=0), 422)
    assert "top_k" in err(_post(real_server, "/v1/tag", real_server.clip.read_bytes(), top_k="many"), 422)
    no_file = httpx.post(real_server.url + "/v1/tag", data={"x": "1"}, files={"y": ("", b"")}, timeout=30)
    assert no_file.status_code in (415, 422)
    # a file name is a name, never a path on the server
    r = _post(real_server, "/v1/tag", real_server.clip.read_bytes(), "../../../../etc/passwd")
    assert r.status_code == 200 and r.json()["file"] == "passwd"
    assert httpx.get(real_server.url + "/nope").status_code == 404
    chunked = httpx.post(real_server.url + "/v1/tag", content=iter([b"\0" * 2**20] * 4), timeout=30)
    assert chunked.status_code == 413  # no Content-Length: counted as it arrives
    assert httpx.get(real_server.url + "/healthz").json()["status"] == "ok"


def test_concurrent_requests_are_batched(real_server):
    data = real_server.clip.read_bytes()
    before = httpx.get(real_server.url + "/healthz").json()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _post(real_server, "/v1/tag", data, top_k=1), range(16)))
    assert all(r.status_code == 200 for r in results)
    assert len({r.json()["tags"][0]["label"] for r in results}) == 1
    if real_server.real:
        assert {r.json()["tags"][0]["label"] for r in results} == {"Applause"}
    after = httpx.get(real_server.url + "/healthz").json()
    clips, batches = after["clips"] - before["clips"], after["batches"] - before["batches"]
    assert clips == 16 and batches < clips  # several clips per model call


def test_usage_errors_are_one_line(capsys):
    assert main(["serve", "--replicas", "0"]) == 2
    assert "--replicas" in capsys.readouterr().err


def test_ray_serve_engine_runs_the_same_app_and_stops_cleanly(release_cache, tmp_path):
    # found, not imported: ray (and its gRPC core) imported into this long-lived test process, after the native
    # libraries of the tests before it, crashed it (SIGSEGV while waiting below); Serve runs in its own process
    ray = importlib.util.find_spec("ray")
    if ray is None or not (Path(ray.origin).parent / "serve").is_dir():
        pytest.skip("--engine ray needs ray[serve]")
    psutil = pytest.importorskip("psutil")
    import os

    from .conftest import Server

    release_cache("mn01_as")
    clip = tmp_path / "tone.wav"
    sf.write(clip, (np.sin(np.arange(32000 * 3) * 0.05) * 0.3).astype(np.float32), 32000)
    server = Server(["--engine", "ray", "--model", "mn01_as"], {**os.environ})
    try:
        r = _post(server, "/v1/tag", clip.read_bytes(), "tone.wav", top_k=3)
        assert r.status_code == 200 and len(r.json()["tags"]) == 3
        assert _post(server, "/v1/tag", b"not audio").status_code == 415
        assert httpx.get(server.url + "/v1/models").json()["models"][0]["name"] == "mn01_as"
    finally:
        log = server.stop()  # SIGTERM: Serve and Ray shut down with it
    assert server.proc.returncode == 0, log[-3000:]  # a clean exit, not SIGABRT (-6) from Ray's threads

    def replicas():
        return [p for p in psutil.process_iter(["cmdline"]) if "ServeReplica:dymn" in " ".join(p.info["cmdline"] or [])]

    end = time.monotonic() + 30
    while replicas() and time.monotonic() < end:
        time.sleep(0.5)
    assert not replicas()


def test_a_detector_is_served_too(detector_server, capsys, monkeypatch):
    monkeypatch.setenv("DYMN_CACHE", detector_server.cache)
    clip, model = detector_server.clip, detector_server.model_args
    data = clip.read_bytes()
    described = httpx.get(detector_server.url + "/v1/models", timeout=10).json()["models"][0]
    assert described["level"] == "frame" and described["classes"] == 447
    found = _post(detector_server, "/v1/detect", data, clip.name, threshold=0.1)
    assert found.status_code == 200
    assert main(["detect", str(clip), *model, "--threshold", "0.1", "--format", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)[0]
    assert found.json()["events"] == cli["events"] and found.json()["file"] == clip.name  # the same numbers
    frames = _post(detector_server, "/v1/timeline", data, clip.name, top_k=3)
    assert frames.status_code == 200 and frames.json()["window"] == 0.04 and len(frames.json()["windows"]) == 313
    windows = _post(detector_server, "/v1/timeline", data, clip.name, window=5, hop=5)
    assert [w["start"] for w in windows.json()["windows"]] == [0.0, 5.0, 7.5]
    for path in ("/v1/tag", "/v1/embed"):
        r = _post(detector_server, path, data, clip.name)
        assert r.status_code == 409 and "frame-level detector" in r.json()["error"]["message"]
    bad = _post(detector_server, "/v1/detect", data, clip.name, median=4)
    assert bad.status_code == 422 and "odd" in bad.json()["error"]["message"]


def test_a_tagger_refuses_detect_clearly(real_server):
    r = _post(real_server, "/v1/detect", real_server.clip.read_bytes(), real_server.clip.name)
    assert r.status_code == 409 and "clip tagger" in r.json()["error"]["message"]
