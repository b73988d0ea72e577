"""optimize(): equal outputs to the plain model and to the reference fixtures, for every fast path."""

import copy

import numpy as np
import pytest
import torch

import dymn
from dymn.runtime.api import optimize

from ..conftest import FIXTURES, load_layout, need


@pytest.fixture(scope="module", params=["mn04", "dymn04"])
def fixture_model(request, synth_state_dict):
    name = request.param
    model = dymn.load(name[:-2], width_mult=0.4, pretrained=False)
    model.load_state_dict(synth_state_dict(load_layout(f"{name}_layout.json"), 0))
    if model.arch == "dymn":
        model.set_temperature(1)
    return name, model.eval(), np.load(need(FIXTURES / f"{name}.npz"))


@pytest.mark.parametrize(
    "opts",
    [{}, {"micro_batch": None}, {"micro_batch": 2}, {"channels_last": False},
     {"static_dynamic_convs": True, "micro_batch": None, "channels_last": False}],
)  # fmt: skip
def test_fast_paths_match_fixtures(fixture_model, opts):
    name, model, data = fixture_model
    fast = optimize(model, **opts)
    x = torch.from_numpy(data["input"])
    with torch.inference_mode():
        logits, emb = fast(x)
        np.testing.assert_allclose(logits.numpy(), data["logits"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(emb.numpy(), data["features"], atol=1e-4, rtol=0)
        x3 = torch.cat([x, x[:1, ..., :200].repeat(1, 1, 1, 2)])  # batch 3
        torch.testing.assert_close(fast(x3)[0], model(x3)[0], atol=1e-4, rtol=0)
        one, _ = fast(x[1:2])
        np.testing.assert_allclose(one.numpy(), data["logits"][1:2], atol=1e-4, rtol=0)


def test_original_model_untouched(fixture_model):
    _, model, _ = fixture_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize(model)
    assert fast.info == model.info
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    trainable = copy.deepcopy(model).train()  # a copy: the fixture is shared with later tests
    out = trainable(torch.randn(2, 1, 128, 50))[0]
    out.sum().backward()  # still trainable
    assert all(p.grad is not None for p in trainable.parameters())


def test_bfloat16_close(fixture_model):
    _, model, data = fixture_model
    fast = optimize(model, dtype=torch.bfloat16)
    with torch.inference_mode():
        logits, _ = fast(torch.from_numpy(data["input"]))
    assert logits.dtype == torch.float32
    p, q = torch.sigmoid(logits).numpy(), 1 / (1 + np.exp(-data["logits"]))
    assert np.abs(p - q).max() < 0.1


def test_real_checkpoint_fast_equals_plain(real_weights, metro_clip):
    model = dymn.load("mn04_as", weights=real_weights)
    plain = dymn.Tagger(model, fast=False)
    fast = dymn.Tagger(model)
    wave = dymn.load_audio(metro_clip)
    np.testing.assert_allclose(fast.logits([wave]), plain.logits([wave]), atol=1e-4, rtol=0)


def test_gpu_grouped_path_math_on_cpu(fixture_model):
    """The per-batch grouped convolution optimize() picks on GPUs, checked on the CPU."""
    from dymn.runtime.fusion import FusedDynamicConv

    name, model, data = fixture_model
    fast = optimize(model, micro_batch=None, channels_last=False)
    for m in fast.modules():
        if isinstance(m, FusedDynamicConv):
            m.grouped_batches = True
    with torch.inference_mode():
        logits, _ = fast(torch.from_numpy(data["input"]))
    np.testing.assert_allclose(logits.numpy(), data["logits"], atol=1e-4, rtol=0)
