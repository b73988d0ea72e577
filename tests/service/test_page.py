"""The web page in a real headless Chromium (Debian's, driven by Playwright): upload a real clip through the
page, see its top tag and the timeline; the screenshot is kept in test-artifacts/."""

import pytest

from ..conftest import AUDIO
from ..web.conftest import ARTIFACTS, browser  # noqa: F401 (browser: the fixture, one Chromium set-up for both)


def test_upload_through_the_page_shows_tags_and_timeline(real_server, browser):  # noqa: F811
    if not real_server.real:
        pytest.skip("the real mn04_as checkpoint and clip are in ../shared, not part of a clone")
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    failed = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(real_server.url + "/")
    page.wait_for_selector("text=Model mn04_as")
    page.set_input_files("#file", str(AUDIO / "samples" / "applause.wav"))
    page.wait_for_selector("#timeline-section:not(.hidden)", timeout=60_000)
    first = page.locator("#tags .tag .name").first.inner_text()
    assert first == "Applause"
    assert "Done: applause.wav" in page.locator("#status").inner_text()
    assert page.locator("#events tbody tr").count() >= 1 and "Applause" in page.locator("#events").inner_text()
    assert _check_outlines(page) >= 1
    size = page.evaluate("[document.getElementById('heat').width, document.getElementById('heat').height]")
    assert size[0] > 300 and size[1] > 40
    page.hover("#heat", position={"x": 240, "y": 14})
    assert page.locator("#tip").is_visible() and "Applause" in page.locator("#tip").inner_text()
    with page.expect_download() as dl:
        page.click("#download")
    assert dl.value.suggested_filename == "applause.dymn.json"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-page.png"), full_page=True)
    assert not [u for u in failed if not u.startswith(real_server.url)]  # nothing fetched from elsewhere
    # a bad upload shows the service's message, and the page goes on working
    bad = ARTIFACTS / "not-audio.wav"
    bad.write_text("this is not audio")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#status.error")
    assert "not a readable audio file" in page.locator("#status").inner_text()
    page.close()


def _check_outlines(page) -> int:
    """Every event in the table is outlined on its row, from its onset to its offset, and each outline starts and
    ends on the boundaries of drawn windows (the heat map places windows and events on one time axis)."""
    import json

    heat = page.locator("#heat")
    columns = json.loads(heat.get_attribute("data-columns"))
    outlines = json.loads(heat.get_attribute("data-outlines"))
    width = page.evaluate("document.getElementById('heat').width") - 10 - 230
    duration = float(page.locator("#status").inner_text().split(", ")[-1].split(" s")[0])
    rows = [r.locator("td").all_inner_texts() for r in page.locator("#events tbody tr").all()]
    events = [(r[0], float(r[1]), float(r[2])) for r in rows if len(r) == 4]
    assert len(outlines) == len(events) and set(json.loads(heat.get_attribute("data-rows"))) >= {e[0] for e in events}
    lefts, rights = [c[0] for c in columns], [c[1] for c in columns]
    for (label, onset, offset), o in zip(events, outlines):
        assert o["label"] == label
        assert abs(o["x0"] - (230 + width * onset / duration)) < 0.02 * width / duration + 0.5
        assert abs(o["x1"] - (230 + width * offset / duration)) < 0.02 * width / duration + 0.5
        assert min(abs(o["x0"] - x) for x in lefts) < 0.5 and min(abs(o["x1"] - x) for x in rights) < 0.5
    return len(events)


def test_page_without_the_shared_data(browser, release_cache, tmp_path):  # noqa: F811
    """In a plain clone (no real checkpoint): a stand-in model, a generated clip; the page shows what the API
    answers for the same file."""
    import os

    import httpx
    import numpy as np
    import soundfile as sf

    from .conftest import Server

    release_cache("mn01_as")
    clip = tmp_path / "tone.wav"
    sf.write(clip, (0.3 * np.sin(np.arange(32000 * 3) * 0.07)).astype(np.float32), 32000)
    server = Server(["--model", "mn01_as"], {**os.environ})
    try:
        api = httpx.post(server.url + "/v1/tag", files={"file": ("tone.wav", clip.read_bytes())}, timeout=60).json()
        page = browser.new_page()
        page.goto(server.url + "/")
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("#timeline-section:not(.hidden)", timeout=60_000)
        assert page.locator("#tags .tag .name").first.inner_text() == api["tags"][0]["label"]
        assert page.locator("#tags .tag").count() == 10
        page.fill("#threshold", "0.3")
        page.fill("#window", "1")
        page.fill("#hop", "0.5")
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("text=Done: tone.wav")
        page.wait_for_selector("#timeline-section:not(.hidden)", timeout=60_000)
        assert _check_outlines(page) >= 1
        page.close()
    finally:
        server.stop()


def test_page_with_a_detector_shows_frames_and_events(detector_server, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(detector_server.url + "/")
    page.wait_for_selector("text=a sound event detector")
    assert not page.locator("#windowing").is_visible()
    page.fill("#threshold", "0.1")
    page.set_input_files("#file", str(detector_server.clip))
    page.wait_for_selector("#timeline-section:not(.hidden)", timeout=60_000)
    assert "Done: noise.wav, 12.50 s" in page.locator("#status").inner_text()
    assert page.locator("#tags-section").is_hidden()
    assert page.evaluate("document.getElementById('heat').width") > 313 * 3
    page.close()
