"""A model whose outputs overflow (finite weights, infinite or NaN logits) is an error on every backend and every
command, never scores of 0 or 1, and JSON never holds NaN."""

import asyncio

import numpy as np
import pytest
import soundfile as sf
import torch

import dymn
from dymn.cli.main import main
from dymn.inference.scoring import timeline
from dymn.runtime.backends import available


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory):
    """A trained-looking mn01 whose last layer overflows float32 for any input: +inf, -inf and NaN logits."""
    torch.manual_seed(0)
    model = dymn.load("mn01_as", pretrained=False)
    sd = model.state_dict()
    with torch.no_grad():
        sd["classifier.2.weight"].mul_(1e8)
        sd["classifier.5.weight"].copy_(torch.sign(torch.randn_like(sd["classifier.5.weight"])) * 3e38)
    path = tmp_path_factory.mktemp("overflow") / "overflow.pt"
    dymn.save_checkpoint(model, path)
    clip = path.parent / "clip.wav"
    t = np.arange(32000 * 3) / 32000
    sf.write(clip, 0.3 * np.sin(2 * np.pi * 440 * t), 32000)
    return path, clip


def test_probabilities_of_non_finite_logits_are_nan():
    info = dymn.load("mn01_as", pretrained=False).info
    logits = np.zeros((3, 527), np.float32)
    logits[1, 4] = np.inf  # a sigmoid alone would call this class certain
    logits[2, 0] = np.nan
    probs = info.probabilities(logits)
    assert np.isfinite(probs[0]).all() and np.isnan(probs[1]).all() and np.isnan(probs[2]).all()
    with pytest.raises(dymn.ScoresError, match="not finite"):
        dymn.models.info.check_scores(probs, "x.wav")


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_tag_refuses_overflowing_scores_on_every_backend(overflowing, backend, capsys):
    if backend not in available():
        pytest.skip(f"{backend} is not installed")
    path, clip = overflowing
    assert main(["tag", str(clip), "--model", str(path), "--backend", backend]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "not finite" in err


def test_timeline_and_json_refuse_overflowing_scores(overflowing, capsys, tmp_path):
    path, clip = overflowing
    out = tmp_path / "t.json"
    assert main(["timeline", str(clip), "--model", str(path), "--format", "json", "-o", str(out)]) == 1
    assert not out.exists() and "not finite" in capsys.readouterr().err
    with pytest.raises(dymn.ScoresError):
        timeline(str(clip), model=str(path))
    tl = dymn.inference.timelines.Timeline(["a"], np.zeros(1), np.ones(1), np.full((1, 1), np.nan), 1.0, 1.0, 1.0)
    with pytest.raises(ValueError):  # a bug that let NaN through would fail loudly, not write invalid JSON
        tl.to_json()


def test_service_answers_422_for_overflowing_scores(overflowing):
    from dymn.service.core import ServiceCore, ServiceError

    path, clip = overflowing
    core = ServiceCore(str(path), batching=False, backend="torch")

    async def go():
        with pytest.raises(ServiceError) as tag:
            await core.tag(clip.read_bytes(), "clip.wav")
        with pytest.raises(ServiceError) as tl:
            await core.timeline(clip.read_bytes(), "clip.wav")
        return tag.value, tl.value

    tag, tl = asyncio.run(go())
    assert tag.status == 422 and "not finite" in str(tag) and tl.status == 422
