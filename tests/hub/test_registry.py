import pytest

import dymn
from dymn.hub.registry import get_pretrained_cfg, list_models
from dymn.models.complexity import count_params

ALL = list_models()
_built: dict = {}


def _model(name):
    cfg = get_pretrained_cfg(name)
    key = (cfg.arch, tuple(sorted(cfg.arch_config.items())))
    if key not in _built:  # entries of the same architecture share one build
        _built.clear()
        _built[key] = dymn.load(name, pretrained=False)
    return _built[key]


def test_every_released_name_is_registered():
    expected = {
        "mn01_as", "mn02_as", "mn04_as", "mn05_as", "mn10_as", "mn20_as", "mn30_as", "mn40_as",
        "mn40_as(2)", "mn40_as(3)", "mn40_as_ext", "mn40_as_ext(2)", "mn40_as_ext(3)",
        "mn40_as_no_im_pre", "mn40_as_no_im_pre(2)", "mn40_as_no_im_pre(3)",
        "mn10_as_hop_5", "mn10_as_hop_15", "mn10_as_hop_20", "mn10_as_hop_25",
        "mn10_as_mels_40", "mn10_as_mels_64", "mn10_as_mels_256",
        "mn10_as_fc", "mn10_as_fc_s2221", "mn10_as_fc_s2211", "mn10_im_pytorch",
        "mn01_im", "mn02_im", "mn04_im", "mn05_im", "mn10_im", "mn20_im", "mn30_im", "mn40_im",
        "dymn04_im", "dymn10_im", "dymn20_im", "dymn04_as", "dymn10_as", "dymn20_as",
        "dymn20_as(1)", "dymn20_as(2)", "dymn20_as(3)", "dymn04_replace_se_as", "dymn10_replace_se_as",
    }  # fmt: skip
    assert expected <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_entry_builds_with_its_params(name):
    cfg = get_pretrained_cfg(name)
    model = _model(name)
    assert model.arch == cfg.arch
    assert count_params(model) == cfg.params
    assert model.config.width_mult == cfg.width_mult
    assert " " not in cfg.url  # the reference's dymn10_replace_se_as URL has a stray space
    if cfg.arch == "fmn":  # frame-level detectors: PretrainedSED and EfficientSED releases, 16 kHz
        assert cfg.url.startswith(("https://github.com/fschmid56/PretrainedSED/releases/download/v0.0.1/",
                                   "https://github.com/theMoro/EfficientSED/releases/download/v0.0.1/"))  # fmt: skip
        assert cfg.frontend.sample_rate == 16000 and cfg.num_classes == 447 and model.info.level == "frame"
        return
    assert cfg.url.startswith("https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/")
    assert cfg.frontend.sample_rate == 32000


def test_variant_frontends_and_heads():
    assert get_pretrained_cfg("mn10_as_hop_5").frontend.hop_length == 160
    assert get_pretrained_cfg("mn10_as_hop_25").frontend.hop_length == 800
    assert get_pretrained_cfg("mn10_as_mels_64").frontend.n_mels == 64
    fc = dymn.load("mn10_as_fc_s2211", pretrained=False)
    assert fc.config.head_type == "fully_convolutional" and fc.config.strides == (2, 2, 1, 1)
    assert dymn.load("mn10_as_mels_40", pretrained=False).info.frontend.n_mels == 40
    assert get_pretrained_cfg("dymn10_replace_se_as").arch_config["use_dy_blocks"] == "replace_se"


def test_width_from_entry_not_from_name():
    assert get_pretrained_cfg("mn40_as(2)").width_mult == 4.0
    assert get_pretrained_cfg("dymn20_as(3)").width_mult == 2.0


def test_sha_and_map():
    assert get_pretrained_cfg("mn04_as").sha256 == "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"
    assert get_pretrained_cfg("dymn10_as").map == 47.7
    assert get_pretrained_cfg("dymn10_as").macs_g == 0.58


def test_list_models_patterns_and_aliases():
    assert set(list_models("dymn*")) == {n for n in ALL if n.startswith("dymn")}
    assert "mn10_as_hop_5" in list_models("hop")
    assert not any(n.endswith("_im") for n in list_models(taggers_only=True))
    assert get_pretrained_cfg("mn40_as_2").name == "mn40_as(2)"
    with pytest.raises(KeyError, match="did you mean"):
        get_pretrained_cfg("mn10_a")
