import pytest
import torch

from dymn.models.configs import MNConfig
from dymn.models.layers import make_divisible
from dymn.models.mn import MN


def _run(model, frames=100, n_mels=128, batch=2):
    model.eval()
    with torch.no_grad():
        return model(torch.randn(batch, 1, n_mels, frames))


def test_make_divisible_rule():
    assert [make_divisible(v) for v in (16 * 0.4, 72 * 0.4, 1280 * 0.1, 4)] == [8, 32, 128, 8]
    assert make_divisible(1280 * 0.4) == 512


@pytest.mark.parametrize("head", ["mlp", "fully_convolutional", "multihead_attention_pooling"])
def test_heads(head):
    m = MN(width_mult=0.4, head_type=head, num_classes=10)
    logits, emb = _run(m)
    assert logits.shape == (2, 10) and emb.shape == (2, 384)


@pytest.mark.parametrize("se_dims", ["c", "f", "t", "cf", "ft", "cft", "none"])
@pytest.mark.parametrize("agg", ["max", "avg", "add", "min"])
def test_se_variants(se_dims, agg):
    # 'f' crashes in the reference (double squeeze); here every combination runs
    m = MN(width_mult=0.2, se_dims=se_dims, se_agg=agg, input_dim_f=64, input_dim_t=100)
    logits, _ = _run(m, frames=100, n_mels=64)
    assert logits.shape == (2, 527) and torch.isfinite(logits).all()


def test_time_se_needs_its_input_length():
    m = MN(width_mult=0.2, se_dims="t", input_dim_t=100)
    with pytest.raises(ValueError, match="time squeeze-excitation"):
        _run(m, frames=90)


@pytest.mark.parametrize("strides,size", [((2, 2, 2, 2), (4, 32)), ((2, 2, 2, 1), (8, 63)), ((2, 2, 1, 1), (16, 125))])
def test_strides_set_final_map(strides, size):
    m = MN(width_mult=0.1, strides=strides).eval()
    with torch.no_grad():
        _, _, fmaps = m(torch.randn(1, 1, 128, 1000), return_fmaps=True)
    assert len(fmaps) == 17
    assert tuple(fmaps[-1].shape[2:]) == size


def test_batch_one_keeps_batch_axis_single_class():
    m = MN(width_mult=0.1, num_classes=1).eval()
    logits, emb = _run(m, batch=1)
    assert logits.shape == (1, 1) and emb.shape == (1, 96)
    logits, _ = _run(m, batch=3)
    assert logits.shape == (3, 1)


@pytest.mark.parametrize(
    "bad",
    [
        {"se_dims": "x"},
        {"se_agg": "mean"},
        {"head_type": "gap"},
        {"strides": (2, 2, 3, 2)},
        {"strides": (2, 2)},
        {"num_classes": 0},
    ],
)
def test_bad_options_fail_clearly(bad):
    with pytest.raises(ValueError):
        MN(MNConfig(**bad))


def test_reduced_tail_and_dilated_build():
    m = MN(width_mult=1.0, reduced_tail=True, dilated=True)
    logits, emb = _run(m)
    assert logits.shape == (2, 527) and emb.shape == (2, 480)


def test_trains_one_step():
    m = MN(width_mult=0.1, num_classes=3).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x, y = torch.randn(4, 1, 64, 50), torch.tensor([0, 1, 2, 0])
    loss = torch.nn.functional.cross_entropy(m(x)[0], y)
    loss.backward()
    opt.step()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
