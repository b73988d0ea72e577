import pytest

import dymn
from dymn.models.complexity import count_macs, receptive_field


@pytest.mark.parametrize("name,gmacs", [("mn04_as", 0.11), ("mn10_as", 0.54), ("dymn04_as", 0.12),
                                         ("dymn10_as", 0.58), ("mn10_as_hop_25", 0.22)])  # fmt: skip
def test_macs_match_published(name, gmacs):
    model = dymn.load(name, pretrained=False)
    fe = model.info.frontend
    report = count_macs(model, (1, 1, fe.n_mels, 1 + 319999 // fe.hop_length))
    assert report.gmacs == pytest.approx(gmacs, abs=0.006)
    if name.startswith("dymn"):
        assert report.dynamic_conv > 0.5 * report.total  # what the reference counter leaves out


@pytest.mark.parametrize("strides,rf", [((2, 2, 2, 2), 595), ((2, 2, 2, 1), 467), ((2, 2, 1, 1), 291)])
def test_receptive_field(strides, rf):
    assert receptive_field(dymn.load("mn", strides=strides, pretrained=False)) == (rf, rf)
    assert receptive_field(dymn.load("dymn", width_mult=0.4, strides=strides, pretrained=False)) == (rf, rf)
