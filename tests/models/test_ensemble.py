import numpy as np
import pytest
import torch

import dymn
from dymn.models.ensemble import Ensemble


def test_members_with_own_frontends_average_logits():
    a = dymn.load("mn01_as", pretrained=False)
    b = dymn.load("mn10_as_mels_64", width_mult=0.1, pretrained=False)  # a mel variant joins with its own frontend
    ens = Ensemble([a, b]).eval()
    wave = torch.randn(2, 32000) * 0.1
    with torch.inference_mode():
        logits, emb = ens(wave)
        la = a(dymn.MelFrontend.from_config(a.info.frontend).eval()(wave).unsqueeze(1))[0]
        lb = b(dymn.MelFrontend(n_mels=64).eval()(wave).unsqueeze(1))[0]
    torch.testing.assert_close(logits, (la + lb) / 2)
    assert emb.shape == (2, 96 + 96)
    tagger = dymn.Tagger(ens)
    assert tagger.predict([wave[0].numpy()]).shape == (1, 527)
    tl = dymn.timeline(np.zeros(40000, np.float32), window=1.0, hop=0.5, tagger=tagger)
    assert tl.probs.shape == (2, 527) and list(tl.starts) == [0.0, 0.25]  # last window end-aligned


def test_bad_ensembles():
    a = dymn.load("mn01_as", pretrained=False)
    b = dymn.load("mn", width_mult=0.1, num_classes=10, pretrained=False)
    with pytest.raises(ValueError, match="label sets differ"):
        Ensemble([a, b])
    with pytest.raises(KeyError, match="unknown model name"):
        dymn.load("mn01_as,nonexistent")
    with pytest.raises(ValueError):
        Ensemble([])


def test_cli_ensemble_errors(capsys):
    from dymn.cli.main import main

    assert main(["tag", "x.wav", "--model", "mn01_as,bogus"]) == 2
    assert "unknown model name 'bogus'" in capsys.readouterr().err
