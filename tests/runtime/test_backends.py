"""Backends under one contract: every installed backend gives the plain network's outputs within 1e-4 (reference
fixtures, the real checkpoint), any batch size and length; "auto" measures once, keeps the fastest that agrees,
and remembers it per machine, architecture, batch size and versions."""

import importlib.util
import json
import re

import numpy as np
import pytest
import torch

import dymn
from dymn.cli.main import main
from dymn.runtime import backends, choice, engines

from ..conftest import FIXTURES, need
from ..models.test_conformance import _fixture_model

RUNTIMES = [b for b in backends.available() if b != "torch"]
needs_runtime = pytest.mark.skipif(not RUNTIMES, reason="no onnxruntime or OpenVINO installed ([fast] extra)")


@pytest.fixture(scope="module")
def _cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _own_cache(_cache, monkeypatch):
    """One cache for the module (converted graphs are reused), no remembered choices at the start of a test."""
    monkeypatch.setenv("DYMN_CACHE", str(_cache))
    monkeypatch.delenv("DYMN_BACKEND", raising=False)
    monkeypatch.setattr(choice, "machine_load", lambda: 0.0)  # a busy test machine must not re-measure mid-test
    (_cache / "backends.json").unlink(missing_ok=True)
    return _cache


@pytest.fixture
def _two_threads():
    """The variants measured depend on the thread count: pinned, so that the parallel ones are built."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("backend", RUNTIMES or ["onnxruntime"])
@pytest.mark.parametrize("name", ["mn04", "dymn04"])
def test_every_backend_matches_the_reference_fixtures(name, backend, synth_state_dict, _two_threads):
    if backend not in backends.available():
        pytest.skip(f"{backend} is not installed")
    data = np.load(need(FIXTURES / f"{name}.npz"))
    model = _fixture_model(name, synth_state_dict)
    model.info = model.info.replace(name=f"fixture-{name}")
    fast = dymn.optimize(model, backend=backend, batch_size=2)  # DyMN on OpenVINO: a graph for batches of 2
    assert fast.backend == backend and fast.info is model.info
    logits, emb = fast(torch.from_numpy(data["input"]))
    np.testing.assert_allclose(logits.numpy(), data["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(emb.numpy(), data["features"], atol=1e-4, rtol=0)
    x = torch.from_numpy(data["input"])
    # every way auto may run a batch of 4: whole, or cut into pieces (OpenVINO: run in parallel streams; DyMN's
    # fixed-batch graph leaves a remainder to PyTorch), at any batch size and length
    pieces = engines.variants(backend, 4)
    assert backend != "openvino" or pieces == [None, 1, 2]
    for micro_batch in pieces:
        fast = choice.compile_model(model, backend, micro_batch=micro_batch, batch_size=4)
        for batch, frames in ((1, 400), (3, 100), (5, 1000), (8, 300)):
            xb = torch.cat([x * s for s in (1.0, 0.5, 0.8, 1.2)])[:batch]  # distinct clips
            xb = torch.cat([xb] * 3, dim=3)[..., :frames]
            with torch.inference_mode():
                ref = model(xb)
            got = fast(xb)
            for a, b in zip(got, ref):
                np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4, rtol=0, err_msg=f"{micro_batch=} {batch=}")
    with pytest.raises(dymn.UsageError, match="feature maps need backend='torch'"):
        fast(x, return_fmaps=True)


@needs_runtime
def test_every_backend_matches_the_real_checkpoint(real_weights):
    model = dymn.load("mn04_as", weights=real_weights)
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(32000 * 10).astype(np.float32) * 0.1 for _ in range(3)]
    ref = dymn.Tagger(model, backend="torch").predict(waves)
    for backend in RUNTIMES:
        got = dymn.Tagger(model, backend=backend).predict(waves)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


@needs_runtime
def test_auto_measures_once_and_remembers(_own_cache, capsys):
    torch.manual_seed(0)
    model = dymn.load("mn01_as", pretrained=False)
    first = dymn.optimize(model, batch_size=2)
    err = capsys.readouterr().err
    assert "measuring the backends for mn01_as at batch 2" in err
    assert re.search(r"dymn: \w+ chosen \([\d.]+ ms per 10 s clip.*\), measured in \d+ s", err)  # what and why
    store = json.loads((_own_cache / "backends.json").read_text())
    (entry,) = store.values()
    assert set(entry["ms_per_clip"]) == set(backends.available()) and entry["batch"] == 2
    assert entry["backend"] == min(entry["ms_per_clip"], key=entry["ms_per_clip"].get)  # the fastest
    chosen = getattr(first, "backend", "torch")
    assert chosen == entry["backend"]
    again = dymn.optimize(model, batch_size=2)
    assert capsys.readouterr().err == "" and getattr(again, "backend", "torch") == chosen  # remembered
    dymn.optimize(model, batch_size=3)  # another batch size is measured on its own
    assert "at batch 3" in capsys.readouterr().err
    other_weights = dymn.load("mn01_as", pretrained=False)  # speed depends on the architecture, not the values
    assert getattr(dymn.optimize(other_weights, batch_size=2), "backend", "torch") == chosen
    assert capsys.readouterr().err == ""
    dymn.optimize(dymn.load("mn01_as", pretrained=False, num_classes=10), batch_size=2)  # another architecture
    assert "measuring" in capsys.readouterr().err


@pytest.mark.skipif("openvino" not in RUNTIMES, reason="OpenVINO is not installed ([fast] extra)")
def test_openvino_loads_its_compiled_model_from_the_cache(_own_cache):
    """A second process (here: a second OpenVINO core) loads the compiled model OpenVINO cached, instead of
    compiling it again: nothing may change the graph file's time between runs (OpenVINO then recompiles)."""
    model = dymn.load("mn01_as", pretrained=False)
    x = torch.randn(1, 1, 128, 100)

    def blobs():
        return {p.name: p.stat().st_mtime_ns for p in (_own_cache / "openvino").rglob("*") if p.is_file()}

    choice.compile_model(model, "openvino", micro_batch=None)(x)
    first = blobs()
    assert first
    choice.compile_model(model, "openvino", micro_batch=None)(x)
    assert blobs() == first


@pytest.mark.skipif("openvino" not in RUNTIMES, reason="OpenVINO is not installed ([fast] extra)")
@pytest.mark.parametrize("name", ["mn01_as", "dymn04_as"])
def test_openvino_static_graphs_for_10_s_clips_give_the_same_outputs(name, tmp_path, monkeypatch, _two_threads):
    """Batches of 10 s clips (and single clips) run on graphs made for exactly their shape; other shapes (a
    remainder batch, another length) on the general graph: the outputs are the plain network's either way."""
    monkeypatch.setenv("DYMN_CACHE", str(tmp_path))  # only this test's graphs
    torch.manual_seed(0)
    model = dymn.load(name, pretrained=False).eval()
    module = choice.compile_model(model, "openvino", micro_batch=None, batch_size=2)
    for shape in [(2, 1, 128, 1000), (1, 1, 128, 1000), (3, 1, 128, 1000), (2, 1, 128, 600)]:
        x = torch.randn(shape)
        with torch.inference_mode():
            ref, ref_emb = model(x)
            logits, emb = module(x)
        scale = max(1.0, float(ref.abs().max()))
        assert float((logits - ref).abs().max()) / scale < 1e-4, shape
        assert float((emb - ref_emb).abs().max()) < 1e-4, shape
    made = {p.name.split("-static-")[1] for p in (tmp_path / "compiled").glob(f"{name}-*-static-*.xml")}
    assert "2x1x128x1000.xml" in made and not any("600" in m or m.startswith("3x") for m in made)


@pytest.mark.skipif("openvino" not in RUNTIMES, reason="OpenVINO is not installed ([fast] extra)")
def test_a_cache_that_cannot_take_the_static_graph_runs_the_general_one(monkeypatch, tmp_path):
    import openvino as ov

    monkeypatch.setenv("DYMN_CACHE", str(tmp_path))  # a cache without the static graph yet

    def full(*args, **kwargs):
        raise RuntimeError("No space left on device")

    monkeypatch.setattr(ov, "save_model", full)
    model = dymn.load("mn01_as", pretrained=False).eval()
    module = choice.compile_model(model, "openvino", micro_batch=None, batch_size=2)
    x = torch.randn(2, 1, 128, 1000)
    with torch.inference_mode():
        assert float((module(x)[0] - model(x)[0]).abs().max()) < 1e-4
    assert not list((tmp_path / "compiled").glob("mn01_as-*-static-*")) and not list(
        (tmp_path / "compiled").glob(".*")
    )  # nothing half-written


@needs_runtime
def test_a_backend_that_disagrees_is_never_chosen(monkeypatch, _own_cache):
    real = choice.compile_model

    def wrong(model, backend, graph=None, **kwargs):
        module = real(model, backend, graph, **kwargs)
        if backend != "torch":
            run = module.run
            module.run = lambda arr: tuple(o + 0.01 for o in run(arr))  # fast but wrong
        return module

    monkeypatch.setattr(choice, "compile_model", wrong)
    fast = dymn.optimize(dymn.load("mn01_as", pretrained=False), batch_size=2)
    assert getattr(fast, "backend", "torch") == "torch"
    (entry,) = json.loads((_own_cache / "backends.json").read_text()).values()
    assert set(entry["rejected"]) == set(RUNTIMES)
    assert all(why.startswith("diff ") for why in entry["rejected"].values())  # ran, and were refused


def test_backend_settings_are_checked(monkeypatch, tiny_mn_checkpoint, capsys):
    model = dymn.load("mn01_as", pretrained=False)
    monkeypatch.setenv("DYMN_BACKEND", "torch")
    assert dymn.optimize(model).plan.backend == "torch"  # the PyTorch module, nothing measured
    monkeypatch.setenv("DYMN_BACKEND", "fastest")
    with pytest.raises(dymn.UsageError, match="DYMN_BACKEND='fastest'"):
        dymn.optimize(model)
    monkeypatch.delenv("DYMN_BACKEND")
    with pytest.raises(dymn.UsageError, match="unknown backend 'tpu'"):
        dymn.optimize(model, backend="tpu")
    with pytest.raises(SystemExit):
        main(["tag", "x.wav", "--backend", "tpu"])
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


@needs_runtime
def test_cli_tag_on_each_backend_gives_the_same_tags(tmp_path, tone_wav, capsys, release_cache):
    release_cache("mn01_as")
    outs = {}
    for backend in ["torch", *RUNTIMES]:
        assert main(["tag", str(tone_wav), "--model", "mn01_as", "--backend", backend, "--format", "json"]) == 0
        outs[backend] = json.loads(capsys.readouterr().out)[0]["tags"]
    for backend in RUNTIMES:
        assert [t["label"] for t in outs[backend]] == [t["label"] for t in outs["torch"]]
        np.testing.assert_allclose([t["probability"] for t in outs[backend]],
                                   [t["probability"] for t in outs["torch"]], atol=1e-4)  # fmt: skip


needs_int8 = pytest.mark.skipif(
    not RUNTIMES or importlib.util.find_spec("nncf") is None or "openvino" not in RUNTIMES,
    reason="int8 needs the [int8] extra (NNCF, OpenVINO)",
)


@needs_int8
def test_int8_quantizes_mn_and_runs(tmp_path, tone_wav, capsys, release_cache):
    import soundfile as sf

    from dymn.runtime.int8 import quantize

    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        t = np.arange(32000 * 2) / 32000
        x = 0.2 * np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(calib / f"{i}.wav", x.astype(np.float32), 32000)
    torch.manual_seed(0)
    model = dymn.load("mn10_as", pretrained=False)
    q = dymn.optimize(model, dtype="int8", calibration=[calib])
    x = choice.probe_input(model, 2)
    with torch.inference_mode():
        ref = model(x)[0]
    logits, emb = q(x)
    assert logits.shape == ref.shape and emb.shape == (2, model.embed_dim)
    assert float((logits - ref).abs().max()) < 0.5 * max(1.0, float(ref.abs().max()))  # int8, not garbage
    with pytest.raises(dymn.UsageError, match="int8 needs calibration audio"):
        dymn.optimize(model, dtype="int8")
    with pytest.raises(dymn.UsageError, match="offered for MN models of width 1.0 and up"):
        dymn.optimize(dymn.load("dymn04_as", pretrained=False), dtype="int8", calibration=[calib])
    # narrow MN models gain too little to be offered int8 (benchmarks/bench_int8.py), unless asked to measure it
    narrow = dymn.load("mn01_as", pretrained=False)
    with pytest.raises(dymn.UsageError, match=r"mn01_as is narrower \(width 0.1"):
        dymn.optimize(narrow, dtype="int8", calibration=[calib])
    assert quantize(narrow, [calib], tmp_path / "narrow.onnx", any_width=True).is_file()
    # the CLI: an int8 ONNX file with the fp32 frontend in front (waveform in) that `dymn tag` runs
    release_cache("mn10_as")
    out = tmp_path / "mn10_int8.onnx"
    assert main(["export", "onnx", "--model", "mn10_as", "--int8", "--with-frontend", "--calibration", str(calib),
                 "-o", str(out)]) == 0  # fmt: skip
    assert "int8" in (said := capsys.readouterr().out) and "input waveform" in said
    assert main(["tag", str(tone_wav), "--model", str(out), "--top-k", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["export", "onnx", "--model", "mn10_as", "--int8", "-o", str(out)]) == 2
    assert "--int8 needs --calibration" in capsys.readouterr().err


BAD_ENTRIES = [[], "x", 5, {"backend": 5}, {"backend": ["torch"]}, {"backend": "torch", "micro_batch": -3},
               {"backend": "torch", "micro_batch": "x"}, {"backend": "torch", "micro_batch": 1.5},
               {"backend": "torch", "micro_batch": 10**9}, {"backend": "torch", "micro_batch": True}]  # fmt: skip


@pytest.mark.parametrize("entry", BAD_ENTRIES)
def test_a_bad_remembered_choice_is_not_used(entry):
    assert not choice._usable(entry, ["torch", "onnxruntime"], 2)
    assert choice._usable({"backend": "torch", "micro_batch": 2}, ["torch"], 2)


def test_a_bad_remembered_choice_is_measured_again(_own_cache, capsys, monkeypatch):
    model = dymn.load("mn01_as", pretrained=False)
    monkeypatch.setattr(backends, "available", lambda: ["torch"])
    monkeypatch.setattr(choice, "available", lambda: ["torch"])
    key = choice.choice_key(model, 2, False)
    for entry in (BAD_ENTRIES[0], BAD_ENTRIES[3], BAD_ENTRIES[5]):
        (_own_cache / "backends.json").write_text(json.dumps({key: entry, "other": "kept"}))
        backend, _ = choice.choose(model, batch_size=2)
        assert "measuring the backends" in capsys.readouterr().err
        store = json.loads((_own_cache / "backends.json").read_text())
        assert store[key]["backend"] == backend == "torch" and store["other"] == "kept"
    (_own_cache / "backends.json").write_bytes(b"\xff\x00 not json")
    assert choice.choose(model, batch_size=2)[0] == "torch"


def test_a_choice_measured_on_a_busy_machine_is_measured_again_when_quiet(_own_cache, capsys, monkeypatch):
    model = dymn.load("mn01_as", pretrained=False)
    monkeypatch.setattr(choice, "available", lambda: ["torch"])
    monkeypatch.setattr(choice, "machine_load", lambda: 3.0)
    choice.choose(model, batch_size=2)
    err = capsys.readouterr().err
    assert "measuring the backends" in err and "the machine was busy" in err
    choice.choose(model, batch_size=2)  # still busy: the remembered choice serves
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(choice, "machine_load", lambda: 0.0)
    choice.choose(model, batch_size=2)
    assert "measuring the backends for mn01_as at batch 2 on this machine again" in capsys.readouterr().err
    choice.choose(model, batch_size=2)  # measured quiet: kept
    assert capsys.readouterr().err == ""
    (entry,) = json.loads((_own_cache / "backends.json").read_text()).values()
    assert entry["busy"] is False
