import pytest
import torch

import dymn
from dymn.hub import WeightsError, save_checkpoint


def test_arch_names_and_overrides():
    m = dymn.create_model("mn", width_mult=0.2, num_classes=5, head_type="fully_convolutional")
    assert m.config.width_mult == 0.2 and m.labels == [f"class_{i}" for i in range(5)]
    assert not m.training
    d = dymn.create_model("dymn", width_mult=0.4)
    assert d.temperature == 30  # fresh models start at T_max
    with pytest.raises(ValueError, match="unknown option"):
        dymn.create_model("mn", head="mlp")
    with pytest.raises(KeyError):
        dymn.create_model("resnet50")


def test_pretrained_needs_registry_name():
    with pytest.raises(ValueError, match="registry"):
        dymn.create_model("mn", pretrained=True)


def test_real_checkpoint_strict(real_weights):
    m = dymn.create_model("mn04_as", weights=real_weights)
    assert m.labels[0] == "Speech" and len(m.labels) == 527
    with pytest.raises(WeightsError, match="width_mult=0.4"):
        dymn.create_model("mn10_as", weights=real_weights)
    with pytest.raises(WeightsError, match="not in the model"):
        dymn.create_model("mn04_as", weights=real_weights, se_dims="none")
    with pytest.raises(WeightsError, match="looks like head_type=mlp"):
        dymn.create_model("mn04_as", weights=real_weights, head_type="fully_convolutional", num_classes=527)
    with pytest.raises(WeightsError, match="looks like an MN"):
        dymn.create_model("dymn04_as", weights=real_weights)


def test_num_classes_replaces_only_last_layer(real_weights):
    ref = dymn.create_model("mn04_as", weights=real_weights)
    m = dymn.create_model("mn04_as", weights=real_weights, num_classes=10)
    sd, rsd = m.state_dict(), ref.state_dict()
    assert sd["classifier.5.weight"].shape == (10, 512)
    for k in rsd:
        if not k.startswith("classifier.5."):
            torch.testing.assert_close(sd[k], rsd[k])
    assert m.labels == [f"class_{i}" for i in range(10)]


def test_plain_state_dict_of_finetuned_model_keeps_class_count(tmp_path):
    m = dymn.create_model("mn", width_mult=0.1, num_classes=12)
    path = save_checkpoint(m, tmp_path / "ft.pt", plain=True)
    again = dymn.create_model("mn01_as", weights=path)
    assert again.config.num_classes == 12


def test_dymn_temperature_rules(tmp_path):
    src = dymn.create_model("dymn", width_mult=0.4)
    plain = save_checkpoint(src, tmp_path / "plain.pt", plain=True)
    assert dymn.create_model("dymn04_as", weights=plain).temperature == 1  # AudioSet weights
    assert dymn.create_model("dymn04_im", weights=plain).temperature == 30  # ImageNet init: T_max
    assert dymn.create_model("dymn", width_mult=0.4, weights=plain).temperature == 1


def test_self_describing_arch_conflict(tiny_mn_checkpoint):
    with pytest.raises(ValueError, match="holds a mn model"):
        dymn.create_model("dymn", weights=tiny_mn_checkpoint)
    assert dymn.create_model(weights=tiny_mn_checkpoint).config.width_mult == 0.1


def test_both_pretrained_and_weights(tiny_mn_checkpoint):
    with pytest.raises(ValueError, match="not both"):
        dymn.create_model("mn01_as", pretrained=True, weights=tiny_mn_checkpoint)
