"""ONNX and TorchScript exports against PyTorch and the reference fixtures (several lengths, batches)."""

import copy

import numpy as np
import pytest
import torch

import dymn
from dymn.runtime.export import export_onnx, export_torchscript
from dymn.runtime.onnxfile import OnnxModel
from dymn.util.errors import ExportError

from ..conftest import FIXTURES, load_layout, need

ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need the [export] extra")


# "torchscript": the exporter of PyTorch before 2.5 (taken there automatically), and of the backends' graphs
@pytest.fixture(scope="module", params=["mn04", "dymn04", "mn04-torchscript", "dymn04-torchscript"])
def exported(request, synth_state_dict, tmp_path_factory):
    name, _, exporter = request.param.partition("-")
    model = dymn.load(name[:-2], width_mult=0.4, pretrained=False)
    model.load_state_dict(synth_state_dict(load_layout(f"{name}_layout.json"), 0))
    if model.arch == "dymn":
        model.set_temperature(1)
    model.eval()
    out = tmp_path_factory.mktemp("onnx") / f"{name}.onnx"
    path = export_onnx(model, out, exporter=exporter or "auto")
    return name, model, path


def test_onnx_matches_fixtures_and_pytorch(exported):
    name, model, path = exported
    data = np.load(need(FIXTURES / f"{name}.npz"))
    onnx_model = OnnxModel(path)
    logits, emb = onnx_model(torch.from_numpy(data["input"]))
    np.testing.assert_allclose(logits.numpy(), data["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(emb.numpy(), data["features"], atol=1e-4, rtol=0)
    inp = torch.from_numpy(data["input"])
    model64 = copy.deepcopy(model).double()
    for batch, frames in [(1, 1), (1, 7), (3, 63), (2, 150), (1, 1000)]:
        x = inp[:1, ..., : min(frames, 400)].repeat(batch, 1, 1, 1 + frames // 400)[..., :frames]
        with torch.inference_mode():
            # a few frames make the synthetic weights ill-conditioned in float32: compare with float64
            ref = model64(x.double())[0].float() if frames < 63 else model(x)[0]
        got = onnx_model(x)[0]
        tol = 1e-4 if frames >= 63 else 5e-3
        np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=tol, rtol=0, err_msg=f"{batch}x{frames}")
    assert onnx_model.info.labels == model.info.labels and onnx_model.info.task == model.info.task


def test_torchscript(exported, tmp_path):
    name, model, _ = exported
    data = np.load(need(FIXTURES / f"{name}.npz"))
    path = export_torchscript(model, tmp_path / f"{name}.pt")
    loaded = torch.jit.load(str(path))
    for x in (torch.from_numpy(data["input"]), torch.from_numpy(data["input"])[:1, ..., :250]):
        with torch.inference_mode():
            torch.testing.assert_close(loaded(x)[0], model(x)[0], atol=1e-4, rtol=0)


def test_onnx_with_frontend_tags_like_pytorch(tmp_path, real_weights, metro_clip):
    model = dymn.load("mn04_as", weights=real_weights)
    path = export_onnx(model, tmp_path / "mn04w.onnx", with_frontend=True)
    onnx_tagger = dymn.Tagger(OnnxModel(path))
    torch_tagger = dymn.Tagger(model)
    wave = dymn.load_audio(metro_clip)
    waves = [wave, wave[:48000], wave[:700]]
    np.testing.assert_allclose(onnx_tagger.predict(waves), torch_tagger.predict(waves), atol=1e-3, rtol=0)
    res = next(onnx_tagger.tag_files([metro_clip], top_k=1))
    assert res.tags[0].label == "Train" and abs(res.tags[0].probability - 0.727) < 0.01


def test_conv_stft_frontend_equals_reference():
    data = np.load(need(FIXTURES / "frontend.npz"))
    fe = dymn.MelFrontend().eval()
    fe.conv_stft = True
    out = fe(torch.from_numpy(data["wave"])).numpy()
    np.testing.assert_allclose(out, data["mel_default"], atol=1e-4, rtol=0)


def test_export_errors(tmp_path):
    model = dymn.load("mn01_as", pretrained=False)
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(model, tmp_path / "missing" / "m.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_text("not onnx")
    with pytest.raises(ExportError, match="not a valid ONNX model"):
        OnnxModel(bad)
    with pytest.raises(ExportError, match="no such ONNX file"):
        OnnxModel(tmp_path / "none.onnx")


def test_cli_export_and_onnx_backend(tmp_path, capsys, release_cache):
    from dymn.cli.main import main

    release_cache("mn01_as")
    out = tmp_path / "mn01.onnx"
    assert main(["export", "onnx", "--model", "mn01_as", "-o", str(out)]) == 0
    # finding 1: the README's form exports the released weights (here the cached stand-in), not random ones
    released = dymn.load("mn01_as")
    x = torch.randn(2, 1, 128, 100)
    with torch.no_grad():
        torch.testing.assert_close(OnnxModel(out)(x)[0], released(x)[0], atol=1e-4, rtol=1e-4)
    assert "released weights" in capsys.readouterr().out
    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, np.random.default_rng(0).standard_normal(16000) * 0.1, 16000)
    capsys.readouterr()
    assert main(["tag", str(wav), "--backend", "onnx", "--weights", str(out), "--top-k", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["export", "onnx", "--model", "nope", "-o", str(out)]) == 2
    assert main(["export", "onnx", "--model", "mn01_as", "-o", str(tmp_path / "no" / "x.onnx")]) == 1
    assert main(["tag", str(wav), "--backend", "onnx", "--weights", str(wav)]) == 1
    assert "not a checkpoint: it is an audio file" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_text("not onnx")
    assert main(["tag", str(wav), "--backend", "onnx", "--weights", str(bad)]) == 1
    assert "not a valid ONNX model" in capsys.readouterr().err


def test_checked_export_keeps_the_fast_graph_only_when_it_matches(tmp_path, monkeypatch):
    """The TorchScript-based exporter's graph is kept when onnxruntime gives PyTorch's numbers, else exported again
    by torch.export (it misread the transformer detectors' attention)."""
    from dymn.runtime import api

    model = dymn.load("mn01_as", pretrained=False)
    calls = []
    real = api.export_onnx

    def spy(model, path, with_frontend=False, exporter="auto"):
        calls.append(exporter)
        return real(model, path, with_frontend=with_frontend, exporter="torchscript")  # fast, for the test

    monkeypatch.setattr(api, "export_onnx", spy)
    api.export_onnx_checked(model, tmp_path / "a.onnx", with_frontend=True)
    assert calls == ["torchscript"]  # it matched
    graph = tmp_path / "a.onnx"
    graph.write_bytes(b"not a graph")
    assert not api._matches(model, graph, True)
    monkeypatch.setattr(api, "_matches", lambda *args: False)
    calls.clear()
    api.export_onnx_checked(model, tmp_path / "b.onnx")
    assert calls == ["torchscript", "auto"]
