import pytest
import torch
import torch.nn.functional as F

from dymn.models.configs import DyMNConfig
from dymn.models.dy_blocks import DynamicConv, DyReLUB
from dymn.models.dymn import DyMN


def test_context_dims_match_spec():
    for width, expected in [
        (0.4, [16, 16, 16, 16, 16, 16, 24, 24, 24, 24, 48, 48, 48, 48, 48]),
        (1.0, [32, 32, 32, 32, 32, 32, 64, 48, 48, 48, 120, 128, 128, 128, 128]),
        (2.0, [64, 64, 64, 64, 64, 64, 120, 104, 96, 96, 240, 256, 256, 256, 256]),
    ]:
        m = DyMN(width_mult=width)
        assert [b.context_gen.joint_conv.out_channels for b in m.layers] == expected


@pytest.mark.parametrize("k,groups,stride", [(1, 1, 1), (3, 8, 1), (3, 8, 2), (5, 8, 2), (3, 1, 1), (1, 1, 2)])
def test_dynamic_conv_equals_per_example_conv(k, groups, stride):
    torch.manual_seed(0)
    conv = DynamicConv(8, 16 if groups == 1 else 8, context_dim=12, kernel_size=k, stride=stride,
                       padding=(k - 1) // 2, groups=groups, temperature=3.0)  # fmt: skip
    x, h = torch.randn(3, 8, 11, 13), torch.randn(3, 12, 1, 1)
    out = conv(x, (h, None, None))
    w = conv.kernels(h)
    for b in range(3):
        ref = F.conv2d(x[b : b + 1], w[b], stride=stride, padding=(k - 1) // 2, groups=groups)
        torch.testing.assert_close(out[b : b + 1], ref, atol=1e-5, rtol=1e-5)


def test_dyrelu_is_relu_at_init():
    act = DyReLUB(4, 8)
    torch.nn.init.zeros_(act.coef_net[0].weight)
    torch.nn.init.zeros_(act.coef_net[0].bias)
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(act(x, (torch.randn(2, 8, 1, 1),)), torch.relu(x))


def test_temperature_schedule():
    m = DyMN(width_mult=0.4)
    assert m.temperature == 30  # fresh models start at T_max
    assert [m.update_temperature(e) for e in (0, 1, 28, 29, 100)] == [30, 29, 2, 1, 1]
    assert all(c.temperature == 1 for c in m.dynamic_convs())
    m.set_temperature(5)
    assert m.temperature == 5
    with pytest.raises(ValueError):
        m.set_temperature(0)
    slow = DyMN(DyMNConfig(width_mult=0.4, T_max=10, T0_slope=1, T1_slope=0.5, T_min=2))
    assert slow.temperature_at(20) == max(10 - 20, 1 + 0.5 * 9 - 0.5 * 20, 2)


@pytest.mark.parametrize(
    "opts",
    [{}, {"no_dyrelu": True}, {"no_dyconv": True}, {"no_ca": True}, {"use_dy_blocks": "replace_se"},
     {"strides": (2, 2, 1, 1)}, {"dyconv_k": 2, "dyrelu_k": 3}, {"context_ratio": 8, "max_context_size": 64},
     {"head_type": "fully_convolutional"}],
)  # fmt: skip
def test_options_run(opts):
    m = DyMN(DyMNConfig(width_mult=0.4, num_classes=7, **opts)).eval()
    with torch.no_grad():
        logits, emb = m(torch.randn(2, 1, 128, 50))
    assert logits.shape == (2, 7) and emb.shape == (2, 384)


def test_no_dyconv_keys():
    sd = DyMN(width_mult=0.4, no_dyconv=True).state_dict()
    assert "layers.1.exp_conv.module.weight" in sd


def test_fmaps_and_gradients():
    m = DyMN(width_mult=0.4, num_classes=3).train()
    logits, emb, fmaps = m(torch.randn(2, 1, 64, 40), return_fmaps=True)
    assert len(fmaps) == 17
    logits.sum().backward()
    assert m.layers[3].depth_conv.weight.grad is not None
    assert m.layers[3].depth_conv.residuals[0].weight.grad is not None
