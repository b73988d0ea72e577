"""The in-browser site in a real headless Chromium (Debian's, driven by Playwright), served by a local static
file server; onnxruntime-web comes from the npm package that `.ci/run` installs into .web/ (or $DYMN_ORT_WEB)."""

import functools
import http.server
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ..conftest import AUDIO, REAL_WEIGHTS, ROOT, SHARED

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip
ARTIFACTS = ROOT / "test-artifacts"
ORT_WEB = Path(os.environ.get("DYMN_ORT_WEB", ROOT / ".web" / "node_modules" / "onnxruntime-web" / "dist"))
SAMPLES = AUDIO / "samples"


@pytest.fixture(scope="session")
def ort_dist() -> Path:
    from dymn.util.errors import UsageError
    from dymn.web import ORT_VERSION, find_ort

    try:
        return find_ort(ORT_WEB)
    except UsageError:
        pytest.skip(f"no onnxruntime-web at {ORT_WEB} (npm install --prefix .web onnxruntime-web@{ORT_VERSION})")


class StaticServer:
    """A folder served on 127.0.0.1, as any static file host would (`python -m http.server`)."""

    def __init__(self, folder: Path):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        handler = functools.partial(Quiet, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def serve_folder():
    servers = []

    def start(folder: Path) -> str:
        servers.append(StaticServer(folder))
        return servers[-1].url

    yield start
    for s in servers:
        s.stop()


def thunder_then_speech(path: Path) -> Path | None:
    """6 s of the shared thunder clip, then 10 s of spoken digits (FSDD): what the fake microphone plays."""
    import soundfile as sf
    import soxr

    digits = sorted((SHARED / "data" / "fsdd" / "recordings").glob("*_jackson_*.wav"))[:40]
    if not (SAMPLES / "thunder.wav").exists() or not digits:
        return None
    x, sr = sf.read(SAMPLES / "thunder.wav", dtype="float32")
    thunder = soxr.resample(x.mean(axis=1), sr, 48000)[: 6 * 48000]
    speech = []
    for f in digits:
        y, s = sf.read(f, dtype="float32")
        speech += [soxr.resample(y, s, 48000), np.zeros(4800, np.float32)]
    speech = np.concatenate(speech)[: 10 * 48000]
    sf.write(path, np.concatenate([thunder, 0.5 * speech / np.abs(speech).max()]), 48000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Chromium with a fake microphone that plays thunder, then speech (a tone without ../shared)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright ([dev])")
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    folder = tmp_path_factory.mktemp("mic")
    wav = thunder_then_speech(folder / "mic.wav")
    if wav is None:
        import soundfile as sf

        wav = folder / "mic.wav"
        t = np.arange(48000 * 4) / 48000
        sf.write(wav, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000, subtype="PCM_16")
    mic = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
           f"--use-file-for-fake-audio-capture={wav}"]  # fmt: skip
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS + mic)
        b.real_mic = wav.stat().st_size > 48000 * 2 * 10  # the 16 s thunder-then-speech file
        yield b
        b.close()


def open_site(browser, url: str, **context):
    """A new page on the site, once its model is loaded (or failed); requests it made are in ``page.requests``."""
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 1200}, **context)
    page = ctx.new_page()
    page.requests = []
    page.errors = []
    ctx.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-state=ready], body[data-state=failed]", timeout=60_000)
    return page


def tag_files(page, files, timeout: float = 120) -> None:
    """Upload ``files`` through the file input and wait until each has a result or an error."""
    before = page.locator("#results > li").count()
    page.set_input_files("#file", [str(f) for f in files])
    deadline = time.monotonic() + timeout
    while (page.locator("#results > li").count() < before + len(files)
           or page.locator("#results > li[data-state=working]").count()):  # fmt: skip
        assert time.monotonic() < deadline, "the page did not finish the files"
        time.sleep(0.2)


def downloaded(page, tmp_path: Path):
    import json

    with page.expect_download() as dl:
        page.click("#download")
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    return dl.value.suggested_filename, json.loads(path.read_text())


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def real_or_stand_in(name: str = "mn04_as"):
    """The real mn04_as checkpoint when ../shared has it, else the same architecture with seeded random weights."""
    import torch

    import dymn

    if name == "mn04_as" and REAL_WEIGHTS.exists():
        return dymn.load(name, weights=REAL_WEIGHTS), True
    torch.manual_seed(0)
    return dymn.load(name, pretrained=False), False
