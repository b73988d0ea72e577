import pytest
import torch

import dymn
from dymn.models.network import save_checkpoint
from dymn.util.errors import WeightsError


def test_arch_names_and_overrides():
    m = dymn.load("mn", width_mult=0.2, num_classes=5, head_type="fully_convolutional", pretrained=False)
    assert m.config.width_mult == 0.2 and m.labels == tuple(f"class_{i}" for i in range(5))
    assert not m.training
    d = dymn.load("dymn", width_mult=0.4, pretrained=False)
    assert d.temperature == 30  # fresh models start at T_max
    with pytest.raises(ValueError, match="unknown option"):
        dymn.load("mn", head="mlp", pretrained=False)
    with pytest.raises(KeyError):
        dymn.load("resnet50", pretrained=False)


def test_architecture_names_are_random_registry_names_released():
    m = dymn.load("mn", width_mult=0.1)  # an architecture is an explicit request for random weights
    assert m.info.source == "random initialisation" and not m.info.trained
    r = dymn.load("mn01_as", pretrained=False)
    assert r.info.pretrained_cfg.name == "mn01_as" and r.info.source == "random initialisation"


def test_real_checkpoint_strict(real_weights):
    m = dymn.load("mn04_as", weights=real_weights)
    assert m.labels[0] == "Speech" and len(m.labels) == 527
    with pytest.raises(WeightsError, match="width_mult=0.4"):
        dymn.load("mn10_as", weights=real_weights)
    with pytest.raises(WeightsError, match="not in the model"):
        dymn.load("mn04_as", weights=real_weights, se_dims="none")
    with pytest.raises(WeightsError, match="looks like head_type=mlp"):
        dymn.load("mn04_as", weights=real_weights, head_type="fully_convolutional", num_classes=527)
    with pytest.raises(WeightsError, match="looks like an MN"):
        dymn.load("dymn04_as", weights=real_weights)


def test_num_classes_replaces_only_last_layer(real_weights):
    ref = dymn.load("mn04_as", weights=real_weights)
    m = dymn.load("mn04_as", weights=real_weights, num_classes=10)
    sd, rsd = m.state_dict(), ref.state_dict()
    assert sd["classifier.5.weight"].shape == (10, 512)
    for k in rsd:
        if not k.startswith("classifier.5."):
            torch.testing.assert_close(sd[k], rsd[k])
    assert m.labels == tuple(f"class_{i}" for i in range(10))


def test_plain_state_dict_of_finetuned_model_keeps_class_count(tmp_path):
    m = dymn.load("mn", width_mult=0.1, num_classes=12, pretrained=False)
    path = save_checkpoint(m, tmp_path / "ft.pt", plain=True)
    again = dymn.load("mn01_as", weights=path)
    assert again.config.num_classes == 12


def test_dymn_temperature_rules(tmp_path):
    src = dymn.load("dymn", width_mult=0.4, pretrained=False)
    plain = save_checkpoint(src, tmp_path / "plain.pt", plain=True)
    assert dymn.load("dymn04_as", weights=plain).temperature == 1  # AudioSet weights
    assert dymn.load("dymn04_im", weights=plain).temperature == 30  # ImageNet init: T_max
    assert dymn.load("dymn", width_mult=0.4, weights=plain).temperature == 1


def test_self_describing_arch_conflict(tiny_mn_checkpoint):
    with pytest.raises(ValueError, match="holds a self-describing mn model"):
        dymn.load("dymn", weights=tiny_mn_checkpoint)
    assert dymn.load(weights=tiny_mn_checkpoint).config.width_mult == 0.1


def test_a_checkpoint_path_is_a_spec(tiny_mn_checkpoint):
    m = dymn.load(str(tiny_mn_checkpoint))
    assert m.info.name == "mn01_as" and m.info.source == f"file {tiny_mn_checkpoint}"
    assert m.info.trained
    # weights given explicitly win over pretrained=True: nothing is downloaded
    assert dymn.load("mn01_as", weights=tiny_mn_checkpoint).config.width_mult == 0.1
