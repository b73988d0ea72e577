"""`dymn export web`: what the site holds, that its model computes what dymn computes, and its refusals."""

import json

import numpy as np
import pytest
import soundfile as sf

import dymn
from dymn.cli.main import main
from dymn.util.errors import OutputError, UsageError
from dymn.web import ORT_CDN, export_web, find_ort
from dymn.web.site import ORT_FILES, PAGE_FILES

ort = pytest.importorskip("onnxruntime", reason="the web export needs the [export] extra")


@pytest.fixture(scope="module")
def mn01():
    import torch

    torch.manual_seed(0)
    return dymn.load("mn01_as", pretrained=False)


def test_site_holds_the_page_the_model_and_its_settings(mn01, tmp_path):
    site = export_web(mn01, tmp_path / "site")
    assert sorted(p.name for p in site.iterdir()) == sorted([*PAGE_FILES, "model.onnx", "model.json"])
    meta = json.loads((site / "model.json").read_text())
    assert meta["name"] == "mn01_as" and meta["labels"] == list(mn01.info.labels) and meta["sample_rate"] == 32000
    assert meta["activation"] == "sigmoid" and meta["clip_seconds"] == 10.0 and meta["level"] == "clip"
    assert (meta["window_seconds"], meta["hop_seconds"], meta["dtype"]) == (10.0, 1.0, "fp32")
    assert meta["ort"]["base"] == ORT_CDN and "@" + meta["ort"]["version"] + "/" in ORT_CDN
    assert meta["model_bytes"] == (site / "model.onnx").stat().st_size
    # the graph takes waveforms at the model's rate and gives what the Tagger gives (padded to 10 s)
    wave = (0.1 * np.random.default_rng(0).standard_normal(32000 * 3)).astype(np.float32)
    session = ort.InferenceSession(str(site / "model.onnx"))
    padded = np.pad(wave, (0, 32000 * 7))[None]
    logits = session.run(["logits"], {"waveform": padded})[0]
    want = dymn.Tagger(mn01, backend="torch").logits([wave])
    np.testing.assert_allclose(logits, want, atol=1e-4)
    html = (site / "index.html").read_text()
    assert "Content-Security-Policy" in html and '<script type="module" src="page.js">' in html
    assert "<script>" not in html and "style=" not in html  # nothing inline: the strict policy holds


def test_local_onnxruntime_copy_and_live_settings(mn01, tmp_path):
    dist = tmp_path / "node_modules" / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    for f in ORT_FILES:
        (dist / f).write_bytes(b"x")
    assert find_ort(tmp_path) == dist and find_ort(dist.parent) == dist
    site = export_web(mn01, tmp_path / "site", ort=tmp_path, window=5, hop=0.5)
    meta = json.loads((site / "model.json").read_text())
    assert meta["ort"]["base"] == "ort/" and sorted(p.name for p in (site / "ort").iterdir()) == sorted(ORT_FILES)
    assert (meta["window_seconds"], meta["hop_seconds"]) == (5, 0.5)
    with pytest.raises(UsageError, match="npm install onnxruntime-web@"):
        find_ort(tmp_path / "nothing")
    with pytest.raises(UsageError, match="live hop"):
        export_web(mn01, tmp_path / "other", hop=6, window=5)


def test_export_replaces_its_own_site_whole_and_nothing_else(mn01, tmp_path, monkeypatch):
    import dymn.web.site as site_module

    site = export_web(mn01, tmp_path / "site")
    (site / "stale.txt").write_text("from before")
    export_web(mn01, site)
    assert not (site / "stale.txt").exists()  # a new folder, not files written over the old ones

    def broken(*args, **kwargs):
        raise OutputError("disk full")

    before = sorted(p.name for p in site.iterdir())
    monkeypatch.setattr(site_module, "write_pages", broken)
    with pytest.raises(OutputError):
        export_web(mn01, site)
    assert sorted(p.name for p in site.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no half-written folder left
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="not a site dymn wrote"):
        export_web(mn01, tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_int8_site_runs_the_frontend_in_fp32_before_the_int8_network(tmp_path, release_cache):
    pytest.importorskip("nncf", reason="int8 needs the [int8] extra")
    release_cache("mn04_as")
    model = dymn.load("mn04_as")
    rng = np.random.default_rng(0)
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(8):
        sf.write(calib / f"{i}.wav", (0.1 * rng.standard_normal(32000 * 2)).astype(np.float32), 32000)
    site = export_web(model, tmp_path / "site", int8=True, calibration=[calib])
    meta = json.loads((site / "model.json").read_text())
    assert meta["dtype"] == "int8"
    session = ort.InferenceSession(str(site / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["waveform"]
    wave = (0.1 * rng.standard_normal(32000 * 10)).astype(np.float32)
    got = session.run(["logits"], {"waveform": wave[None]})[0]
    # the same int8 network (same calibration) fed by the frontend outside the graph: the same numbers
    from dymn.audio.frontend import MelFrontend
    from dymn.runtime.int8 import quantize

    network = ort.InferenceSession(str(quantize(model, [calib], tmp_path / "net.onnx", any_width=True)))
    spec = MelFrontend.from_config(model.info.frontend).eval()(__import__("torch").from_numpy(wave)[None])
    want = network.run(["logits"], {"spectrogram": spec[:, None].detach().numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-3)
    graph_meta = json.loads(session.get_modelmeta().custom_metadata_map["dymn"])
    assert graph_meta["dtype"] == "int8" and graph_meta["input"] == "waveform"
    with pytest.raises(UsageError, match="offered for MN taggers"):
        export_web(dymn.load("dymn04_as", pretrained=False), tmp_path / "d", int8=True, calibration=[calib])


def test_cli_writes_a_site_and_refuses_in_one_line(tmp_path, release_cache, capsys):
    release_cache("mn01_as")
    dist = tmp_path / "dist"
    dist.mkdir()
    for f in ORT_FILES:
        (dist / f).write_bytes(b"x")
    assert main(["export", "web", str(tmp_path / "site"), "--model", "mn01_as", "--ort", str(dist)]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "python -m http.server" in out and (tmp_path / "site" / "ort").is_dir()
    cases = [
        (["export", "web", "--model", "mn01_as"], "give it once"),
        (["export", "web", str(tmp_path / "a"), "--ort", str(tmp_path / "site")], "holds no onnxruntime-web"),
        (["export", "web", str(tmp_path / "a"), "--window", "0"], "live window"),
        (["export", "web", str(tmp_path / "a"), "--int8"], "needs --calibration"),
        (["export", "onnx", str(tmp_path / "a.onnx")], "-o FILE"),
        (["export", "web", str(tmp_path / "no" / "site"), "--model", "mn01_as"], "does not exist"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (args, err)
