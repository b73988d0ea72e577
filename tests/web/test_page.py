"""The exported site in headless Chromium: files tagged as `dymn tag` tags them, the microphone live, detectors'
events as `dymn detect` finds them, and every bad input answered on the page."""

import time

import numpy as np
import pytest
import soundfile as sf

from .conftest import SAMPLES, downloaded, open_site, real_or_stand_in, shot, tag_files

FILES = ["guitar.wav", "thunder.wav", "rain.wav", "birds1.wav", "typing.wav"]  # 44.1 and 48 kHz, stereo


@pytest.fixture(scope="module")
def mn04_site(tmp_path_factory, ort_dist, serve_folder):
    from dymn.web import export_web

    model, real = real_or_stand_in()
    folder = export_web(model, tmp_path_factory.mktemp("web") / "site", ort=ort_dist)
    return serve_folder(folder), model, real


def _clips(tmp_path, real: bool) -> list:
    """The shared samples (and one resampled to 32 kHz by soxr), or generated clips without ../shared."""
    import soxr

    if real and all((SAMPLES / f).exists() for f in FILES):
        files = [SAMPLES / f for f in FILES]
    else:
        rng = np.random.default_rng(0)
        files = []
        for i, sr in enumerate((44100, 48000, 22050)):
            t = np.arange(int(sr * (6 + 3 * i))) / sr
            x = 0.2 * np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(tmp_path / f"gen{i}.wav", np.stack([x, x[::-1]], 1).astype(np.float32), sr)
            files.append(tmp_path / f"gen{i}.wav")
    x, sr = sf.read(files[1], dtype="float32")
    sf.write(tmp_path / "at32k.wav", soxr.resample(x, sr, 32000, quality="HQ"), 32000, subtype="FLOAT")
    return [*files, tmp_path / "at32k.wav"]


def test_files_are_tagged_as_dymn_tag_tags_them_offline(browser, mn04_site, tmp_path):
    import dymn
    from dymn.inference.tagging import TagResult

    url, model, real = mn04_site
    files = _clips(tmp_path, real)
    page = open_site(browser, url)
    assert page.locator("body").get_attribute("data-state") == "ready", page.locator("#status").inner_text()
    assert "nothing is uploaded" in page.locator(".privacy").inner_text()
    page.context.set_offline(True)  # loaded: from here on it needs no network
    tag_files(page, files)
    assert "Done:" in page.locator("#status").inner_text()
    name, results = downloaded(page, tmp_path)
    assert name == "dymn-tags.json" and [r["file"] for r in results] == [f.name for f in files]
    want = list(dymn.Tagger(model, backend="torch").tag_files(files, top_k=10))
    expected = TagResult.dumps(want, "json")  # the same layout as `dymn tag --format json`
    assert [set(r) for r in results] == [set(r) for r in __import__("json").loads(expected)]
    for got, ref in zip(results, want):
        tolerance = 1e-4 if got["file"] == "at32k.wav" else 0.02  # only the browser's decoding may differ
        assert got["duration"] == pytest.approx(ref.duration, abs=1e-3)
        assert [t["label"] for t in got["tags"][:5]] == [t.label for t in ref.tags[:5]], got["file"]
        for g, r in zip(got["tags"], ref.tags):
            if g["label"] == r.label:
                assert g["probability"] == pytest.approx(r.probability, abs=tolerance), (got["file"], g["label"])
    bars = page.locator("#results .tag .fill").first.evaluate("e => e.getBoundingClientRect().width")
    assert bars > 10  # the bars are drawn
    assert "ms per 10 s window" in page.locator("#speed").inner_text()
    shot(page, "web-files.png")
    assert not page.errors
    page.context.close()


def test_bad_files_get_a_message_and_the_page_goes_on(browser, mn04_site, tmp_path):
    url, _, _ = mn04_site
    bad = tmp_path / "not-audio.wav"
    bad.write_text("this is not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "silent.wav", np.zeros(32000, np.float32), 32000)
    sf.write(tmp_path / "short.wav", (0.1 * np.random.default_rng(0).standard_normal(1600)).astype(np.float32), 16000)
    # two hours: 8 kHz 8-bit mono is 58 MB; refused by its header before it is decoded
    sf.write(tmp_path / "two-hours.wav", np.zeros(8000 * 7200, np.float32), 8000, subtype="PCM_U8")
    good = tmp_path / "tone.wav"
    t = np.arange(32000 * 3) / 32000
    sf.write(good, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 32000)
    page = open_site(browser, url)
    started = time.monotonic()
    tag_files(page, [bad, tmp_path / "empty.wav", tmp_path / "two-hours.wav", tmp_path / "silent.wav",
                     tmp_path / "short.wav", good])  # fmt: skip
    assert time.monotonic() - started < 60
    items = {li.locator(".file").inner_text(): li for li in page.locator("#results > li").all()}
    assert "not audio this browser can decode" in items["not-audio.wav"].locator(".error").inner_text()
    assert "empty file" in items["empty.wav"].locator(".error").inner_text()
    long = items["two-hours.wav"].locator(".error").inner_text()
    assert "2.0 h long" in long and "up to 10.0 min" in long and "dymn timeline" in long
    assert "silent" in items["silent.wav"].locator(".note").inner_text()
    assert items["silent.wav"].locator(".tag").count() == 10  # tagged all the same, with the note
    assert "only 100 ms long" in items["short.wav"].locator(".note").inner_text()
    assert items["tone.wav"].get_attribute("data-state") == "done"
    assert page.evaluate("1 + 1") == 2  # the tab still answers
    shot(page, "web-bad-files.png")
    page.context.close()


def test_live_microphone_shows_thunder_then_speech(browser, mn04_site):
    url, _, real = mn04_site
    if not (real and browser.real_mic):
        pytest.skip("needs the real mn04_as checkpoint and the shared thunder and speech clips (../shared)")
    page = open_site(browser, url)
    page.click("#mic")

    def heard() -> tuple[list, list, list]:
        tops = [r.get_attribute("data-top") for r in page.locator("#live-log tbody tr").all()][::-1]
        return tops, [i for i, t in enumerate(tops) if t in ("Thunder", "Thunderstorm")], [
            i for i, t in enumerate(tops) if t == "Speech"]  # fmt: skip

    # the fake microphone plays 6 s of thunder, then 10 s of speech (looped): Speech leads after about 14 s
    deadline = time.monotonic() + 40  # a busy machine skips windows: wait longer rather than fail
    while time.monotonic() < deadline:
        tops, thunder, speech = heard()
        if thunder and speech and thunder[0] < speech[0]:
            break
        time.sleep(0.5)
    status = page.locator("#live-status").inner_text()
    shot(page, "web-live.png")
    page.click("#mic")  # stop
    assert thunder and speech and thunder[0] < speech[0], (tops, status)
    assert "ms for it" in status and "Thunder" in page.locator("#heat").get_attribute("data-rows")
    assert page.locator("#now .tag").count() == 5
    page.context.close()


def test_denied_microphone_and_missing_webassembly_are_explained(browser, mn04_site):
    url, _, _ = mn04_site
    deny = """navigator.mediaDevices.getUserMedia = () =>
        Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"""
    page = open_site(browser, url)
    page.add_init_script(deny)
    page.reload()
    page.wait_for_selector("body[data-state=ready]")
    page.click("#mic")
    page.wait_for_selector("#live-status.error")
    assert "permission was denied" in page.locator("#live-status").inner_text()
    assert page.locator("#mic").is_enabled() and page.locator("#file").is_enabled()  # files still work
    page.context.close()

    ctx = browser.new_context()
    ctx.add_init_script("delete globalThis.WebAssembly;")
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-state=failed]")
    assert "no WebAssembly" in page.locator("#status").inner_text()
    assert page.locator("#file").is_disabled()
    ctx.close()


def test_unreachable_cdn_says_how_to_serve_a_local_copy(browser, tmp_path, serve_folder):
    from dymn.web import ORT_CDN, export_web

    model, _ = real_or_stand_in("mn01_as")
    folder = export_web(model, tmp_path / "cdn-site")
    ctx = browser.new_context()
    ctx.route("**/*", lambda r: r.abort() if r.request.url.startswith(ORT_CDN) else r.continue_())
    page = ctx.new_page()
    page.goto(serve_folder(folder))
    page.wait_for_selector("body[data-state=failed]", timeout=60_000)
    text = page.locator("#status").inner_text()
    assert "cannot load onnxruntime-web from https://cdn.jsdelivr.net" in text and "--ort" in text
    ctx.close()


def test_detector_events_equal_dymn_detect(browser, tmp_path, serve_folder, ort_dist, release_cache):
    import dymn
    from dymn.web import export_web

    release_cache("fmn04")
    model = dymn.load("fmn04")
    url = serve_folder(export_web(model, tmp_path / "fmn-site", ort=ort_dist))
    clip = tmp_path / "noise.wav"  # at the detector's 16 kHz: decoded as it is
    rng = np.random.default_rng(0)
    sf.write(clip, (0.1 * rng.standard_normal(int(16000 * 12.5))).astype(np.float32), 16000)
    page = open_site(browser, url)
    assert "frame-level detector" in page.locator("#model").inner_text()
    assert page.locator("#mic").is_disabled() and "not offered for detectors" in page.locator("#live-hint").inner_text()
    tag_files(page, [clip])
    name, got = downloaded(page, tmp_path)
    want = dymn.detect(clip, model=model).to_dict()
    assert name == "dymn-events.json" and got[0]["file"] == "noise.wav"
    assert {k: v for k, v in got[0].items() if k not in ("file", "events")} == {
        k: v for k, v in want.items() if k not in ("file", "events")}  # fmt: skip
    assert len(got[0]["events"]) == len(want["events"])
    for g, w in zip(got[0]["events"], want["events"]):
        assert (g["label"], g["onset"], g["offset"]) == (w["label"], w["onset"], w["offset"])
        assert g["confidence"] == pytest.approx(w["confidence"], abs=2e-4)
    assert page.locator("#results .events tbody tr").count() == min(200, len(want["events"]))
    shot(page, "web-detector.png")
    page.context.close()
