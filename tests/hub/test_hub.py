"""Downloads against a local HTTP server on 127.0.0.1, checkpoint reading and writing."""

import dataclasses
import hashlib
import http.server
import threading
import time

import pytest
import torch

import dymn
from dymn.hub import downloads as hub
from dymn.hub.downloads import download, fetch_pretrained
from dymn.hub.registry import get_pretrained_cfg
from dymn.models.checkpoint import load_checkpoint
from dymn.models.network import save_checkpoint
from dymn.util.errors import WeightsError


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    cut: set = set()
    hits: list = []
    mode: str = ""  # "nolength": no Content-Length; "trickle": a byte every 0.2 s; "endless": never stops

    def do_GET(self):  # noqa: N802
        name = self.path.rsplit("/", 1)[-1]
        self.hits.append(name)
        if name not in self.files:
            self.send_error(404)
            return
        body = self.files[name]
        self.send_response(200)
        if self.mode in ("trickle", "endless"):
            self.end_headers()
            chunk = b"x" if self.mode == "trickle" else b"\0" * 65536
            try:
                for _ in range(150 if self.mode == "trickle" else 100_000):
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    if self.mode == "trickle":
                        time.sleep(0.2)
            except OSError:
                pass
            return
        if self.mode != "nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in self.cut:  # the connection drops half way
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Handler.files, _Handler.cut, _Handler.hits, _Handler.mode = {}, set(), [], ""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", _Handler
    httpd.shutdown()
    httpd.server_close()


def _weights_bytes(model, tmp_path):
    p = tmp_path / "src.pt"
    torch.save(model.state_dict(), p)
    return p.read_bytes()


@pytest.fixture()
def entry(tmp_path, server, monkeypatch):
    """mn01_as pointed at the local server, cache in a temp dir."""
    base, handler = server
    model = dymn.load("mn01_as", pretrained=False)
    data = _weights_bytes(model, tmp_path)
    handler.files["mn01_as_mAP_298.pt"] = data
    monkeypatch.setattr("dymn.models.pretrained.RELEASE_URL", base)
    monkeypatch.setenv("DYMN_CACHE", str(tmp_path / "cache"))
    cfg = dataclasses.replace(get_pretrained_cfg("mn01_as"), sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(dymn.hub.registry._REGISTRY, "mn01_as", cfg)
    return cfg, model, handler


def test_pretrained_download_then_cache(entry, tmp_path):
    cfg, ref, handler = entry
    model = dymn.load("mn01_as")
    cached = tmp_path / "cache" / cfg.filename
    assert cached.is_file() and handler.hits == [cfg.filename]
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)
    dymn.load("mn01_as")
    assert handler.hits == [cfg.filename], "the second call must use the cache"
    assert sorted(p.name for p in cached.parent.iterdir()) == [cfg.filename, cfg.filename + ".sha256"]


def test_cut_off_download_leaves_nothing(entry, tmp_path):
    cfg, _, handler = entry
    handler.cut.add(cfg.filename)
    with pytest.raises(WeightsError, match="cut off|failed"):
        fetch_pretrained(cfg, progress=False)
    assert not list((tmp_path / "cache").iterdir())


def test_sha_mismatch_rejected(entry, tmp_path, monkeypatch):
    cfg, _, _ = entry
    bad = dataclasses.replace(cfg, sha256="0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        fetch_pretrained(bad, progress=False)
    assert not list((tmp_path / "cache").iterdir())


def test_offline_error_names_url_and_place(tmp_path, monkeypatch):
    monkeypatch.setattr("dymn.models.pretrained.RELEASE_URL", "http://127.0.0.1:9/")  # nothing listens there
    monkeypatch.setenv("DYMN_CACHE", str(tmp_path))
    cfg = get_pretrained_cfg("dymn10_as")
    with pytest.raises(WeightsError) as err:
        fetch_pretrained(cfg, progress=False)
    msg = str(err.value)
    assert "http://127.0.0.1:9/dymn10_as.pt" in msg and str(tmp_path / "dymn10_as.pt") in msg


def test_http_404(server, tmp_path):
    base, _ = server
    with pytest.raises(Exception, match="404"):
        download(base + "missing.pt", tmp_path / "x.pt", progress=False)
    assert not list(tmp_path.iterdir())


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DYMN_CACHE", str(tmp_path))
    assert hub.cache_dir() == tmp_path
    monkeypatch.delenv("DYMN_CACHE")
    assert hub.cache_dir().parts[-2:] == (".cache", "dymn")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_self_describing_round_trip(tmp_path, suffix):
    model = dymn.load("dymn", width_mult=0.4, num_classes=3, pretrained=False)
    model.info = model.info.replace(labels=("dog", "cat", "bird"), task="singlelabel", clip_seconds=4.0)
    model.set_temperature(1.0)
    path = save_checkpoint(model, tmp_path / f"m{suffix}")
    ckpt = load_checkpoint(path)
    assert ckpt.self_describing and ckpt.meta["labels"] == ["dog", "cat", "bird"]
    again = dymn.load(weights=path)
    assert again.labels == ("dog", "cat", "bird") and again.temperature == 1.0
    assert again.info.task == "singlelabel" and again.info.clip_seconds == 4.0
    x = torch.randn(1, 1, 128, 60)
    with torch.no_grad():
        torch.testing.assert_close(again(x)[0], model(x)[0])


def test_plain_export_loads_like_official(tmp_path):
    model = dymn.load("mn02_as", pretrained=False)
    path = save_checkpoint(model, tmp_path / "plain.pt", plain=True)
    obj = torch.load(path, weights_only=True)
    assert list(obj) == list(model.state_dict())
    assert not load_checkpoint(path).self_describing


class Evil:
    """Stands for any pickled object: loading it could run code."""


def test_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(WeightsError, match="refused"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_garbage_files(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsError):
        load_checkpoint(path)


def test_missing_weights_file(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        load_checkpoint(tmp_path / "nope.pt")


def test_atomic_save_keeps_previous_on_failure(tmp_path, monkeypatch):
    model = dymn.load("mn01_as", pretrained=False)
    path = save_checkpoint(model, tmp_path / "m.pt")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


@pytest.fixture()
def unpublished(tmp_path, server, monkeypatch):
    """mn01_as without a published sha256 (as 45 of the 46 entries), served locally."""
    base, handler = server
    data = _weights_bytes(dymn.load("mn01_as", pretrained=False), tmp_path)
    handler.files["mn01_as_mAP_298.pt"] = data
    monkeypatch.setattr("dymn.models.pretrained.RELEASE_URL", base)
    monkeypatch.setenv("DYMN_CACHE", str(tmp_path / "cache"))
    cfg = get_pretrained_cfg("mn01_as")
    assert cfg.sha256 is None
    return cfg, handler, data


def _cache_files(tmp_path):
    d = tmp_path / "cache"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_cut_off_without_length_is_not_cached(unpublished, tmp_path):
    # issue 9, finding 6: no sha256 and no Content-Length: the file must prove to be the weights
    cfg, handler, data = unpublished
    handler.mode = "nolength"
    handler.files[cfg.filename] = data[: len(data) // 2]
    with pytest.raises(dymn.DownloadError, match="no weights for mn01_as"):
        fetch_pretrained(cfg, progress=False)
    assert _cache_files(tmp_path) == []
    handler.files[cfg.filename] = data  # the server is healthy again: the next run works
    assert dymn.load("mn01_as").info.source.startswith("released weights")


def test_html_page_is_not_cached(unpublished, tmp_path):
    cfg, handler, _ = unpublished
    handler.files[cfg.filename] = b"<!DOCTYPE html><html><body>Rate limited</body></html>"
    with pytest.raises(dymn.DownloadError) as err:
        fetch_pretrained(cfg, progress=False)
    assert "HTML page" in str(err.value) and "weights_only" not in str(err.value)
    assert _cache_files(tmp_path) == []


def test_wrong_model_is_not_cached(unpublished, tmp_path):
    cfg, handler, _ = unpublished
    handler.files[cfg.filename] = _weights_bytes(dymn.load("mn02_as", pretrained=False), tmp_path)
    with pytest.raises(dymn.DownloadError, match="not the mn01_as weights"):
        fetch_pretrained(cfg, progress=False)
    assert _cache_files(tmp_path) == []


def test_replaced_cache_file_is_detected_and_fetched_again(unpublished, tmp_path, capsys):
    cfg, handler, data = unpublished
    path = fetch_pretrained(cfg, progress=False)
    bad = dymn.load("mn01_as", pretrained=False).state_dict()
    bad = {k: v.float() * float("nan") if v.is_floating_point() else v for k, v in bad.items()}
    torch.save(bad, path)  # someone replaced the cached file
    model = dymn.load("mn01_as")
    assert "cannot be trusted" in capsys.readouterr().err and len(handler.hits) == 2
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())


def test_nan_weights_are_a_loading_error(tmp_path):
    m = dymn.load("mn01_as", pretrained=False)
    sd = {k: (v * float("nan") if k == "features.0.0.weight" else v) for k, v in m.state_dict().items()}
    torch.save(sd, tmp_path / "nan.pt")
    with pytest.raises(WeightsError, match="NaN or infinite"):
        dymn.load("mn01_as", weights=tmp_path / "nan.pt")
    sd = {k: (v.to(torch.int32) if v.is_floating_point() else v) for k, v in m.state_dict().items()}
    torch.save(sd, tmp_path / "int.pt")
    with pytest.raises(WeightsError, match="wrong type"):
        dymn.load("mn01_as", weights=tmp_path / "int.pt")


def test_endless_and_trickling_downloads_stop(unpublished, tmp_path, monkeypatch):
    cfg, handler, _ = unpublished
    handler.mode = "endless"
    with pytest.raises(dymn.DownloadError, match="exceeded"):
        fetch_pretrained(cfg, progress=False)
    handler.mode = "trickle"
    monkeypatch.setattr(hub, "DOWNLOAD_DEADLINE", 1.0)
    with pytest.raises(dymn.DownloadError, match="longer than 1 s"):
        fetch_pretrained(cfg, progress=False)
    assert _cache_files(tmp_path) == []


def test_sigterm_leaves_no_partial_file(unpublished, tmp_path):
    import signal
    import subprocess
    import sys

    cfg, handler, _ = unpublished
    handler.mode = "trickle"
    code = (
        "import dymn, dymn.hub.downloads as h, dymn.models.pretrained as p; "
        f"p.RELEASE_URL = {dymn.models.pretrained.RELEASE_URL!r}; "
        "h.fetch_pretrained(dymn.get_pretrained_cfg('mn01_as'), progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not any(n.endswith(".part") for n in _cache_files(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(n.endswith(".part") for n in _cache_files(tmp_path)), "the download never started"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert b"Traceback" not in proc.stderr.read()
    assert _cache_files(tmp_path) == []


def test_unwritable_cache_is_not_a_network_problem(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")  # unwritable even for root
    monkeypatch.setenv("DYMN_CACHE", str(blocker / "cache"))
    with pytest.raises(WeightsError, match="cannot write to the weights cache"):
        fetch_pretrained(get_pretrained_cfg("mn01_as"), progress=False)
