"""An ONNX file's dymn metadata is checked as a checkpoint's is (one frontend validator) and against the graph it
describes, before anything runs: every mismatch is a one-line ExportError, never a traceback or silent results."""

import json

import numpy as np
import pytest
import soundfile as sf

import dymn
from dymn.cli.main import main
from dymn.runtime.export import ONNX_META_KEY, export_onnx
from dymn.runtime.onnxfile import OnnxModel
from dymn.util.errors import ExportError

onnx = pytest.importorskip("onnx", reason="ONNX tests need the [export] extra")
pytest.importorskip("onnxruntime", reason="ONNX tests need the [export] extra")


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "mn01.onnx"
    export_onnx(dymn.load("mn01_as", pretrained=False), path, exporter="torchscript")
    return path


def _edited(graph, tmp_path, name="edited.onnx", drop_output=False, **changes):
    proto = onnx.load(graph)
    entry = next(p for p in proto.metadata_props if p.key == ONNX_META_KEY)
    meta = json.loads(entry.value)
    for key, value in changes.items():
        if key.startswith("frontend_"):
            meta["frontend"][key[len("frontend_") :]] = value
        else:
            meta[key] = value
    entry.value = json.dumps(meta)
    if drop_output:
        proto.graph.output.pop()
    out = tmp_path / name
    onnx.save(proto, out)
    return out


BAD = [
    ({"labels": [f"c{i}" for i in range(10)]}, "10 labels in the metadata for a graph with 527 outputs"),
    ({"input": "waveform"}, "says waveform input"),
    ({"input": "pictures"}, "input must be one of"),
    ({"frontend_n_fft": 10**9}, "n_fft"),
    ({"frontend_hop_length": 1}, "hop_length"),
    ({"frontend_n_mels": 10**6}, "n_mels"),
    ({"frontend_sample_rate": 1}, "sample_rate"),
    ({"frontend_sample_rate": "x"}, "sample_rate must be a number"),
    ({"frontend_win_length": -5}, "win_length"),
    ({"clip_seconds": 1e6}, "clip_seconds"),
    ({"clip_seconds": "x"}, "clip_seconds"),
    ({"task": "regression"}, "task must be one of"),
    ({"embed_dim": -1}, "embed_dim"),
    ({"frontend": "x"}, "frontend must be a mapping"),
]


@pytest.mark.parametrize(("changes", "message"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_metadata_that_does_not_fit_is_refused_at_load(graph, tmp_path, changes, message):
    with pytest.raises(ExportError, match=message):
        OnnxModel(_edited(graph, tmp_path, **changes))


def test_a_graph_with_one_output_is_refused(graph, tmp_path):
    with pytest.raises(ExportError, match="has two outputs"):
        OnnxModel(_edited(graph, tmp_path, drop_output=True))


def test_cli_reports_a_mismatched_onnx_file_in_one_line(graph, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal(32000) * 0.1, 32000)
    bad = _edited(graph, tmp_path, labels=[f"c{i}" for i in range(10)])
    for cmd in ("tag", "timeline"):
        assert main([cmd, str(wav), "--backend", "onnx", "--weights", str(bad)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "10 labels in the metadata for a graph with 527 outputs" in err[0]


def test_a_detector_exports_its_frames_and_is_not_taken_for_a_tagger(tmp_path, capsys):
    """A detector's graph: frame logits (B, C, T) every 40 ms and clip logits; the tagging runtime refuses it."""
    import torch

    model = dymn.load("fmn04", pretrained=False).eval()
    path = export_onnx(model, tmp_path / "fmn.onnx", with_frontend=True, exporter="torchscript")
    session = __import__("onnxruntime").InferenceSession(str(path))
    assert [o.name for o in session.get_outputs()] == ["frame_logits", "logits"]
    wave = (0.1 * np.random.default_rng(0).standard_normal((1, 160000))).astype(np.float32)
    frames, clip = session.run(None, {"waveform": wave})
    from dymn.audio.frontend import MelFrontend

    with torch.inference_mode():
        want = model(MelFrontend.from_config(model.info.frontend).eval()(torch.from_numpy(wave)).unsqueeze(1))
    np.testing.assert_allclose(frames, want[0].numpy(), atol=1e-4)
    assert frames.shape == (1, 447, 250) and json.loads(onnx.load(path).metadata_props[0].value)["level"] == "frame"
    with pytest.raises(ExportError, match="detector's graph"):
        OnnxModel(path)
