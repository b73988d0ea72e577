"""Checkpoints are untrusted input: metadata is checked before anything is built from it (issue 9)."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import dymn
from dymn.cli.main import main
from dymn.models.checkpoint import CHECKPOINT_FORMAT, load_checkpoint


def _evil(tmp_path, name="evil.pt", state_dict=None, **meta):
    base = {"format": CHECKPOINT_FORMAT, "arch": "mn", "arch_config": {"width_mult": 0.1},
            "frontend": {}, "labels": [], "name": "x"}  # fmt: skip
    base.update(meta)
    base["state_dict"] = state_dict or {"w": torch.zeros(1)}
    path = tmp_path / name
    torch.save(base, path)
    return path


@pytest.mark.parametrize(
    "meta,msg",
    [
        ({"arch_config": {"width_mult": 40}}, "width_mult = 40 is outside the sane range"),
        ({"arch_config": {"num_classes": 2_000_000_000}}, "num_classes = 2000000000 is outside"),
        ({"frontend": {"n_fft": 10**9}}, "frontend in the metadata: n_fft = 1000000000 is outside"),
        ({"arch": "evil"}, "unknown architecture 'evil'"),
        ({"arch_config": None}, "no architecture config"),
        ({"arch_config": {"width_mult": "wide"}}, "width_mult must be a number"),
        ({"arch_config": {"evil": 1}}, "unknown mn option"),
        ({"frontend": {"sample_rate": float("nan")}}, "sample_rate must be a number"),
        ({"labels": "dog"}, "labels in the metadata must be a list of strings"),
        ({"task": "regression"}, "task must be one of"),
        ({"arch_config": {"strides": [2, 2, 2, 99]}}, "strides must be four values"),
    ],
)
def test_bad_metadata_is_one_clear_line(tmp_path, capsys, meta, msg):
    path = _evil(tmp_path, **meta)
    with pytest.raises(dymn.WeightsError, match=msg):
        load_checkpoint(path)
    assert main(["info", "--weights", str(path)]) == 1
    err = capsys.readouterr().err
    assert msg.split(" = ")[0] in err and len(err.splitlines()) == 1


def test_huge_metadata_fails_before_allocating(tmp_path):
    path = _evil(tmp_path, arch_config={"width_mult": 40, "num_classes": 2_000_000_000})
    assert path.stat().st_size < 2000
    code = ("import resource, sys; lim = 3 * 2**30; resource.setrlimit(resource.RLIMIT_AS, (lim, lim)); "
            "from dymn.cli.main import main; sys.exit(main(sys.argv[1:]))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code, "info", "--weights", str(path)], capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1 and "outside the sane range" in r.stderr and "Traceback" not in r.stderr


def test_labels_cannot_forge_output_lines_or_inject_escapes(tmp_path, capsys):
    m = dymn.load("mn01_as", pretrained=False, num_classes=2)
    m.info = m.info.replace(labels=("dog\n/etc/passwd (10.00 s)\n  fake: 1.000", "\x1b[2Jcat"))
    path = m.save(tmp_path / "labels.pt")
    wav = tmp_path / "a.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal(16000) * 0.1, 16000)
    assert main(["tag", str(wav), "--weights", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and len(out.splitlines()) == 3 and "\\n" in out and "\\x1b" in out


def test_onnx_metadata_is_checked(tmp_path):
    pytest.importorskip("onnxruntime")
    import json

    import onnx

    from dymn.runtime.export import ONNX_META_KEY, export_onnx

    path = export_onnx(dymn.load("mn01_as", pretrained=False), tmp_path / "m.onnx")
    proto = onnx.load(path)
    meta = json.loads(proto.metadata_props[0].value)
    meta["labels"] = None
    proto.metadata_props[0].value = json.dumps(meta)
    assert proto.metadata_props[0].key == ONNX_META_KEY
    onnx.save(proto, tmp_path / "null.onnx")
    with pytest.raises(dymn.ExportError, match="invalid dymn metadata"):
        dymn.load(str(tmp_path / "null.onnx"))


def test_output_to_a_full_device_fails(tmp_path, capsys):
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000), 16000)
    path = dymn.load("mn01_as", pretrained=False).save(tmp_path / "m.pt")
    assert main(["tag", str(wav), "--weights", str(path), "-o", "/dev/full", "--format", "json"]) == 1
    assert "No space left" in capsys.readouterr().err
