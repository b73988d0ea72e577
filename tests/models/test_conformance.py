"""Outputs and state-dict layouts against the reference implementation's fixtures."""

import json

import numpy as np
import pytest
import torch

from dymn.models.dymn import DyMN
from dymn.models.mn import MN

from ..conftest import FIXTURES, load_layout, need

ARCH = {"mn": MN, "dymn": DyMN}


def _fixture_model(name, synth_state_dict):
    layout = load_layout(f"{name}_layout.json")
    model = (DyMN if name.startswith("dymn") else MN)(width_mult=0.4)
    model.load_state_dict(synth_state_dict(layout, 0), strict=True)
    model.eval()
    if name.startswith("dymn"):
        model.set_temperature(1)
    return model


@pytest.mark.parametrize("name", ["mn04", "dymn04"])
def test_outputs_match_reference(name, synth_state_dict):
    data = np.load(need(FIXTURES / f"{name}.npz"))
    model = _fixture_model(name, synth_state_dict)
    x = torch.from_numpy(data["input"])
    with torch.no_grad():
        logits, emb = model(x)
        np.testing.assert_allclose(logits.numpy(), data["logits"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(emb.numpy(), data["features"], atol=1e-4, rtol=0)
        for i in range(x.shape[0]):  # batch 1 gives the same, with the batch axis kept
            lo, em = model(x[i : i + 1])
            assert lo.shape == (1, 527) and em.shape == (1, 384)
            np.testing.assert_allclose(lo.numpy(), data["logits"][i : i + 1], atol=1e-4, rtol=0)


def test_dymn_temperature_30_matches_reference(synth_state_dict):
    data = np.load(need(FIXTURES / "dymn04.npz"))
    model = _fixture_model("dymn04", synth_state_dict)
    model.set_temperature(30)
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(data["input"]))
    np.testing.assert_allclose(logits.numpy(), data["logits_temperature30"], atol=1e-4, rtol=0)
    assert not np.allclose(data["logits_temperature30"], data["logits"], atol=1e-3)


@pytest.mark.parametrize("name", ["mn04", "dymn04"])
@pytest.mark.parametrize("frames", [1, 7, 63, 100, 401])
def test_any_input_length_and_batch_consistency(name, frames, synth_state_dict):
    model = _fixture_model(name, synth_state_dict)
    data = np.load(need(FIXTURES / f"{name}.npz"))
    # spectrogram-like input: crops of the fixture input at several offsets
    inp = torch.from_numpy(data["input"])
    x = torch.cat([inp[:1, ..., :frames], inp[1:, ..., :frames], inp[:1, ..., -frames:]])
    with torch.no_grad():
        batched, emb = model(x)
        single = torch.cat([model(x[i : i + 1])[0] for i in range(3)])
        assert batched.shape == (3, 527) and emb.shape == (3, 384)
        if frames >= 63:
            np.testing.assert_allclose(batched.numpy(), single.numpy(), atol=1e-4, rtol=0)
        # a few frames make the synthetic weights ill-conditioned in float32 (both paths differ from
        # float64 by ~1e-3 there); in float64 batched and one-by-one must agree exactly
        model = model.double()
        x = x.double()
        batched = model(x)[0]
        single = torch.cat([model(x[i : i + 1])[0] for i in range(3)])
        np.testing.assert_allclose(batched.numpy(), single.numpy(), atol=1e-9, rtol=0)


LAYOUTS = sorted(p.name for p in FIXTURES.glob("layouts/*.json")) if FIXTURES.exists() else ["absent"]


@pytest.mark.parametrize("layout_file", LAYOUTS)
def test_state_dict_layout(layout_file):
    layout = json.loads(need(FIXTURES / "layouts" / layout_file).read_text())
    cfg = dict(layout["config"])
    model = ARCH[cfg.pop("kind")](**cfg)
    sd = model.state_dict()
    assert list(sd) == list(layout["shapes"]), "keys and their order must equal the released files'"
    for k, shape in layout["shapes"].items():
        assert list(sd[k].shape) == shape, k
    assert sum(p.numel() for p in model.parameters()) == layout["parameters"]
    # strict load of a state dict with exactly that layout
    fresh = {k: torch.zeros(s, dtype=sd[k].dtype) for k, s in layout["shapes"].items()}
    model.load_state_dict(fresh, strict=True)
