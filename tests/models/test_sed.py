"""Frame-level SED networks against the reference fixtures (../shared/fixtures/sed): the 16 kHz frontend, every
fixture model's strong/weak outputs on 10 s, short and long inputs, and every released layout loading strictly."""

import json

import numpy as np
import pytest
import torch

import dymn
from dymn.audio.frontend import FrontendConfig, MelFrontend
from dymn.models.configs import FrameMNConfig
from dymn.models.sed import FrameMN, remap_keys

from ..conftest import FIXTURES, need

SED = FIXTURES / "sed"
FRONTEND_16K = FrontendConfig(sample_rate=16000, n_mels=128, win_length=400, hop_length=160, n_fft=512,
                              log_floor=1e-7)  # fmt: skip
FIXTURE_MODELS = ["frame_mn06", "frame_mn10", "fmn10", "fmn10_tf256", "fmn10_gru256", "fmn10_hybrid256"]


def _config(cfg: dict) -> FrameMNConfig:
    kind, dim, depth = cfg.get("seq_model_type"), cfg.get("seq_model_dim"), cfg.get("seq_model_layers") or 2
    return FrameMNConfig(width_mult=cfg["width_mult"], seq_model_type=kind, seq_model_dim=dim, seq_model_layers=depth)


def test_frontend_16k_matches_the_reference():
    ref = np.load(need(SED / "frontend16k.npz"))
    fe = MelFrontend.from_config(FRONTEND_16K).eval()
    np.testing.assert_allclose(fe.mel_basis.numpy(), ref["mel_basis"], atol=1e-7)
    for suffix in ("", "_short", "_long"):
        mel = fe(torch.from_numpy(ref["wave" + suffix])).unsqueeze(1).numpy()
        assert mel.shape == ref["mel" + suffix].shape
        np.testing.assert_allclose(mel, ref["mel" + suffix], atol=1e-4, err_msg=suffix)


@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_outputs_match_the_reference(name, synth_state_dict):
    torch.set_num_threads(1)
    layout = json.loads(need(SED / f"{name}_layout.json").read_text())
    ref = np.load(need(SED / f"{name}.npz"))
    model = FrameMN(_config(layout["config"])).eval()
    model.load_state_dict(remap_keys(synth_state_dict(layout, 0)), strict=True)
    with torch.inference_mode():
        seq = model.sequence(torch.from_numpy(ref["input"]))
        if "seq_out" in ref:
            np.testing.assert_allclose(seq.numpy(), ref["seq_out"], atol=1e-4)
        for suffix in ("", "_short", "_long"):
            strong, weak = model(torch.from_numpy(ref["input" + suffix]))
            np.testing.assert_allclose(strong.numpy(), ref["output" + suffix], atol=1e-4, err_msg=suffix)
            np.testing.assert_allclose(weak.numpy(), ref["output_weak" + suffix], atol=1e-4, err_msg=suffix)
    torch.set_num_threads(2)


LAYOUTS = sorted(p.name for p in (SED / "layouts").glob("*.json")) if (SED / "layouts").exists() else []


@pytest.mark.parametrize("layout_file", LAYOUTS or ["(none)"])
def test_every_released_layout_loads_strictly(layout_file):
    layout = json.loads(need(SED / "layouts" / layout_file).read_text())
    cfg = layout["config"]
    with torch.device("meta"):
        model = FrameMN(_config(cfg))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v) for k, v in remap_keys(layout["shapes"]).items()}
    assert ours == theirs
    assert sum(p.numel() for p in model.parameters()) == layout["parameters"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == layout["trainable_parameters"]


def test_released_key_names_are_remapped():
    raw = {"net.model.features.0.0.weight": 1, "net.seq_model.0.weight": 2, "net.strong_head.bias": 3,
           "model.model.features.1.block.0.0.weight": 4, "model.seq_model.1.norm.gamma": 5, "model.weak_head.weight": 6,
           "model.frame_mn.features.2.block.1.1.bias": 7, "model.fmn.features.3.block.0.0.weight": 8,
           "strong_head.weight": 9}  # fmt: skip
    assert remap_keys(raw) == {
        "model.fmn.features.0.0.weight": 1, "seq_model.0.weight": 2, "strong_head.bias": 3,
        "model.fmn.features.1.block.0.0.weight": 4, "seq_model.1.norm.gamma": 5, "weak_head.weight": 6,
        "model.fmn.features.2.block.1.1.bias": 7, "model.fmn.features.3.block.0.0.weight": 8, "strong_head.weight": 9,
    }  # fmt: skip


def test_output_has_250_frames_for_any_length():
    model = FrameMN(FrameMNConfig(width_mult=0.4, seq_model_type="tf", seq_model_dim=104)).eval()
    with torch.inference_mode():
        for frames in (37, 1000, 1008):
            strong, weak = model(torch.randn(1, 1, 128, frames))
            assert strong.shape == (1, 447, 250) and weak.shape == (1, 447)
    assert model.seq_model[1].layers[0][0].heads == 4  # below 128 dims the reference uses 4 heads


def test_weights_of_another_sequence_model_say_so(tmp_path):
    import dymn

    dymn.load("fmn04_gru104", pretrained=False).save(tmp_path / "gru.pt", plain=True)
    with pytest.raises(dymn.WeightsError, match="the file has a gru sequence model"):
        dymn.load("fmn04", weights=tmp_path / "gru.pt")
    dymn.load("fmn04", pretrained=False).save(tmp_path / "plain.pt", plain=True)
    with pytest.raises(dymn.WeightsError, match="the file has no sequence model"):
        dymn.load("fmn04_tf104", weights=tmp_path / "plain.pt")


@pytest.mark.parametrize("name", ["fmn04", "fmn04_gru104"])
def test_self_describing_checkpoint_round_trips(name, tmp_path):
    # a detector without a sequence model records seq_model_dim None: it must load back (it once did not)
    torch.manual_seed(0)
    model = dymn.load(name, pretrained=False, num_classes=3)
    model.info = model.info.replace(labels=("a", "b", "c"))
    path = dymn.save_checkpoint(model, tmp_path / "det.pt")
    back = dymn.load(path)
    assert back.info.level == "frame" and list(back.info.labels) == ["a", "b", "c"]
    x = torch.randn(1, 1, 128, 300)
    for a, b in zip(model(x), back(x)):
        torch.testing.assert_close(a, b)
