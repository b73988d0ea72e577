"""The model contract: every model-like object carries the same ModelInfo and is called the same way."""

import importlib
import pkgutil
from importlib.metadata import version

import numpy as np
import pytest
import soundfile as sf
import torch

import dymn
from dymn.models.info import AudioModel


def _kinds(tmp_path):
    mn = dymn.load("mn01_as", pretrained=False)
    dy = dymn.load("dymn04_as", pretrained=False)
    kinds = {"mn": mn, "dymn": dy, "optimized": dymn.optimize(mn), "ensemble": dymn.Ensemble([mn, mn])}
    if importlib.util.find_spec("onnxruntime") is not None:
        from dymn.runtime.export import export_onnx

        kinds["onnx"] = dymn.load(str(export_onnx(mn, tmp_path / "mn01.onnx")))
    return kinds


def test_every_kind_carries_the_same_info(tmp_path):
    wave = torch.randn(2, 32000) * 0.1
    for kind, model in _kinds(tmp_path).items():
        assert isinstance(model, AudioModel), kind
        info = model.info
        assert isinstance(info, dymn.ModelInfo)
        assert len(info.labels) == 527 and info.labels[0] == "Speech", kind
        assert info.task == "multilabel" and info.activation == "sigmoid"
        assert info.sample_rate == 32000 and info.embed_dim > 0
        # one place turns waveforms into probabilities, whatever the kind
        probs = dymn.Tagger(model).predict([wave[0].numpy(), wave[1].numpy()])
        assert probs.shape == (2, 527) and np.isfinite(probs).all()
        if info.input == "spectrogram":
            mel = dymn.MelFrontend.from_config(info.frontend).eval()
            logits, emb = model(mel(wave).unsqueeze(1))
        else:
            logits, emb = model(wave)
        assert logits.shape == (2, 527) and emb.shape == (2, info.embed_dim), kind


def test_single_label_models_give_softmax_probabilities(tmp_path, capsys):
    # finding 2: a model fine-tuned with cross-entropy must not be read with a sigmoid
    m = dymn.load("mn01_as", pretrained=False, num_classes=3)
    m.info = m.info.replace(labels=("one", "two", "three"), task="singlelabel")
    wave = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    probs = dymn.Tagger(m).predict([wave])
    assert probs.shape == (1, 3) and abs(probs.sum() - 1) < 1e-5
    path = m.save(tmp_path / "ft.pt")
    wav = tmp_path / "a.wav"
    sf.write(wav, wave, 32000)
    from dymn.cli.main import main

    capsys.readouterr()
    assert main(["tag", str(wav), "--weights", str(path), "--format", "json", "--top-k", "0"]) == 0
    import json

    tags = json.loads(capsys.readouterr().out)[0]["tags"]
    assert abs(sum(t["probability"] for t in tags) - 1) < 1e-4


def test_namespace_is_clean():
    # finding 6: no submodule is shadowed by a function of the same name
    for mod in pkgutil.iter_modules(dymn.__path__):
        attr = getattr(dymn, mod.name, None)
        assert attr is None or attr is importlib.import_module(f"dymn.{mod.name}"), mod.name
    embedding = importlib.import_module("dymn.inference.embedding")
    scoring = importlib.import_module("dymn.inference.scoring")
    assert embedding.embed is dymn.embed and scoring.timeline is dymn.timeline
    assert set(dymn.__all__) <= set(dir(dymn))
    assert dymn.__version__ == version("dymn")


def test_info_describes_provenance(tiny_mn_checkpoint):
    assert dymn.load("mn01_as", pretrained=False).info.source == "random initialisation"
    info = dymn.load(weights=tiny_mn_checkpoint).info
    assert info.source == f"file {tiny_mn_checkpoint}" and info.name == "mn01_as"
    assert "mn01_as (mn, 527 classes, multilabel" in info.describe()


def test_only_networks_save(tmp_path):
    mn = dymn.load("mn01_as", pretrained=False)
    with pytest.raises(dymn.UsageError, match="before optimizing"):
        dymn.save_checkpoint(dymn.optimize(mn), tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
