import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dymn.train.losses import kd_loss, label_loss, mix, mixup_lambdas
from dymn.train.metrics import accuracy, d_prime, mean_average_precision, roc_auc
from dymn.train.schedule import exp_warmup_linear_down

sklearn = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((200, 12)) < 0.2).astype(int)
    y[:, 3] = 0  # a class without positives is left out of the macro mean
    s = np.round(rng.random((200, 12)) + 0.5 * y, 2)  # rounding makes ties
    keep = y.sum(0) > 0
    ap = sklearn.average_precision_score(y[:, keep], s[:, keep], average=None).mean()
    auc = sklearn.roc_auc_score(y[:, keep], s[:, keep], average=None).mean()
    assert mean_average_precision(y, s) == pytest.approx(ap, abs=1e-12)
    assert roc_auc(y, s) == pytest.approx(auc, abs=1e-12)
    mask = (rng.random((200, 12)) < 0.7).astype(float)
    ap_w = np.mean([sklearn.average_precision_score(y[:, c], s[:, c], sample_weight=mask[:, c])
                    for c in np.nonzero(keep)[0]])  # fmt: skip
    assert mean_average_precision(y, s, mask) == pytest.approx(ap_w, abs=1e-12)
    single = rng.integers(0, 5, 100)
    scores = rng.random((100, 5))
    assert accuracy(np.eye(5)[single], scores) == sklearn.accuracy_score(single, scores.argmax(1))
    assert d_prime(0.5) == pytest.approx(0) and d_prime(0.98) == pytest.approx(2.904, abs=1e-3)


def test_schedule_multipliers_match_reference():
    f = exp_warmup_linear_down(8, 80, 95, 0.01)
    expected = {0: 0.0123, 1: 0.0218, 4: 0.2865, 7: 0.9248, 8: 1.0, 81: 0.9896, 100: 0.7916, 174: 0.0204, 190: 0.01}
    for e, v in expected.items():
        assert f(e) == pytest.approx(v, abs=1e-4)
    g = exp_warmup_linear_down(10, 10, 65, 0.01)
    assert g(0) == pytest.approx(0.011, abs=1e-3) and g(40) == pytest.approx(0.5431, abs=1e-4)


def test_mixup_and_losses_by_hand():
    gen = torch.Generator().manual_seed(0)
    perm, lam = mixup_lambdas(6, 0.3, gen)
    assert sorted(perm.tolist()) == list(range(6)) and (lam >= 0.5).all() and (lam <= 1).all()
    x = torch.randn(6, 1, 4, 5)
    mixed = mix(x, perm, lam)
    i = 2
    torch.testing.assert_close(mixed[i], lam[i] * x[i] + (1 - lam[i]) * x[perm[i]])

    logits, target = torch.randn(6, 4), torch.rand(6, 4)
    by_hand = -(target * torch.log(torch.sigmoid(logits)) + (1 - target) * torch.log(1 - torch.sigmoid(logits)))
    torch.testing.assert_close(label_loss(logits, target, True), by_hand.mean())
    mask = (torch.rand(6, 4) > 0.5).float()
    torch.testing.assert_close(label_loss(logits, target, True, mask), (by_hand * mask).sum() / mask.sum())
    soft = torch.softmax(torch.randn(6, 4), 1)
    torch.testing.assert_close(label_loss(logits, soft, False), -(soft * F.log_softmax(logits, 1)).sum(1).mean())

    teacher = torch.rand(6, 4)
    valid = torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)
    per_clip = -(teacher * torch.log(torch.sigmoid(logits)) + (1 - teacher) * torch.log(1 - torch.sigmoid(logits)))
    torch.testing.assert_close(kd_loss(logits, teacher, valid), per_clip.mean(1)[valid].mean())
    # KD with mixup == BCE against the lambda-mixed teacher probabilities (BCE is linear in the target)
    mixed_t = mix(teacher, perm, lam)
    a = kd_loss(logits, mixed_t)
    b = (
        lam * F.binary_cross_entropy_with_logits(logits, teacher, reduction="none").mean(1)
        + (1 - lam) * F.binary_cross_entropy_with_logits(logits, teacher[perm], reduction="none").mean(1)
    ).mean()
    assert math.isclose(a.item(), b.item(), rel_tol=1e-5)
