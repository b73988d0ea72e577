"""int8: NNCF quantization of MN networks, calibrated on audio, run on a runtime; DyMN refused; the CLI's export."""

import importlib.util

import numpy as np
import pytest
import torch

import dymn
from dymn import backends
from dymn.cli import main

RUNTIMES = [b for b in backends.available() if b != "torch"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DYMN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DYMN_BACKEND", raising=False)


needs_int8 = pytest.mark.skipif(
    not RUNTIMES or importlib.util.find_spec("nncf") is None or "openvino" not in RUNTIMES,
    reason="int8 needs the [int8] extra (NNCF, OpenVINO)",
)


@needs_int8
def test_int8_quantizes_mn_and_runs(tmp_path, tone_wav, capsys, release_cache):
    import soundfile as sf

    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        t = np.arange(32000 * 2) / 32000
        x = 0.2 * np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(calib / f"{i}.wav", x.astype(np.float32), 32000)
    torch.manual_seed(0)
    model = dymn.load("mn01_as", pretrained=False)
    q = dymn.optimize(model, dtype="int8", calibration=[calib])
    x = backends._probe_input(model, 2)
    with torch.inference_mode():
        ref = model(x)[0]
    logits, emb = q(x)
    assert logits.shape == ref.shape and emb.shape == (2, model.embed_dim)
    assert float((logits - ref).abs().max()) < 0.5 * max(1.0, float(ref.abs().max()))  # int8, not garbage
    with pytest.raises(dymn.UsageError, match="int8 needs calibration audio"):
        dymn.optimize(model, dtype="int8")
    with pytest.raises(dymn.UsageError, match="offered for MN models"):
        dymn.optimize(dymn.load("dymn04_as", pretrained=False), dtype="int8", calibration=[calib])
    # the CLI: an int8 ONNX file that `dymn tag` runs (on OpenVINO)
    release_cache("mn01_as")
    out = tmp_path / "mn01_int8.onnx"
    assert main(["export", "onnx", "--model", "mn01_as", "--int8", "--calibration", str(calib), "-o", str(out)]) == 0
    assert "int8" in capsys.readouterr().out
    assert main(["tag", str(tone_wav), "--model", str(out), "--top-k", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["export", "onnx", "--model", "mn01_as", "--int8", "-o", str(out)]) == 2
    assert "--int8 needs --calibration" in capsys.readouterr().err
