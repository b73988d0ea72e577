import numpy as np
import pytest
import torch

from dymn.audio.frontend import FrontendConfig, MelFrontend, kaldi_mel_banks

from ..conftest import FIXTURES, need

SETTINGS = {
    "mel_default": {},
    "mel_n64_hop480": {"n_mels": 64, "hop_length": 480},
    "mel_n256": {"n_mels": 256},
}


@pytest.mark.parametrize("key", SETTINGS)
def test_matches_reference_frontend(key):
    data = np.load(need(FIXTURES / "frontend.npz"))
    fe = MelFrontend(**SETTINGS[key]).eval()
    out = fe(torch.from_numpy(data["wave"])).numpy()
    assert out.shape == data[key].shape
    np.testing.assert_allclose(out, data[key], atol=1e-4, rtol=0)


def test_frame_count_and_default_fmax():
    fe = MelFrontend().eval()
    assert fe.fmax == 15000
    assert fe(torch.zeros(1, 320000)).shape == (1, 128, 1000)
    assert fe.num_frames(320000) == 1000


def test_mel_banks_properties():
    banks = kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0)
    assert banks.shape == (128, 513)
    assert np.all(banks[:, -1] == 0)  # Nyquist bin unused
    assert np.count_nonzero(banks[0]) == 1 and abs(banks[0, 1] - 0.1886) < 1e-3
    assert kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0) is banks  # cached, not rebuilt


def test_bad_band_edges():
    with pytest.raises(ValueError, match="fmin"):
        MelFrontend(fmin=9000, fmax=8000)
    with pytest.raises(ValueError):
        MelFrontend(fmin_aug_range=0)


@pytest.mark.parametrize("n", [1, 10, 300, 512, 513, 514])
def test_short_inputs_are_padded_not_crashing(n):
    fe = MelFrontend().eval()
    out = fe(torch.randn(2, n))
    assert out.shape[:2] == (2, 128) and out.shape[2] >= 1
    assert torch.isfinite(out).all()


def test_eval_is_deterministic_and_batch_independent():
    fe = MelFrontend().eval()
    x = torch.randn(3, 16000)
    np.testing.assert_allclose(fe(x)[1:2].numpy(), fe(x[1:2]).numpy(), atol=1e-6)


@pytest.mark.parametrize("seconds", [1.0, 10.0])
def test_a_batch_in_pieces_equals_the_whole_batch(monkeypatch, seconds):
    """On CPU a batch is computed a few clips at a time (faster: the whole batch's STFT spills the caches);
    the values are those of the whole batch at once."""
    import dymn.audio.frontend

    fe = MelFrontend().eval()
    x = torch.randn(12, int(32000 * seconds), generator=torch.Generator().manual_seed(0))
    pieces = fe(x)
    monkeypatch.setattr(dymn.audio.frontend, "_PIECE_SAMPLES", 10**12)
    torch.testing.assert_close(pieces, fe(x), atol=1e-6, rtol=0)


def test_train_mode_draws_per_example():
    torch.manual_seed(0)
    fe = MelFrontend(freqm=48, timem=192).train()
    x = torch.randn(1, 32000).repeat(8, 1)  # identical examples
    out = fe(x)
    masked = (out == 0.9).float().sum(dim=(1, 2))  # masked cells hold (0 + 4.5) / 5
    assert len(set(masked.tolist())) > 1, "masks must differ between examples"
    # frequency augmentation: identical inputs get different filterbanks
    fe_nomask = MelFrontend(freqm=0, timem=0).train()
    out = fe_nomask(x)
    assert not torch.allclose(out[0], out[1])


def test_masking_shapes():
    torch.manual_seed(1)
    fe = MelFrontend(freqm=20, timem=30, fmin_aug_range=1, fmax_aug_range=1).train()
    out = fe(torch.randn(4, 32000))
    for b in range(4):
        rows = (out[b] == 0.9).all(dim=1).sum().item()
        cols = (out[b] == 0.9).all(dim=0).sum().item()
        assert rows <= 20 and cols <= 30  # as torchaudio: [floor(start), floor(start + width))


def test_from_config_variants():
    fe = MelFrontend.from_config(FrontendConfig(hop_length=160, n_mels=64))
    assert fe.eval()(torch.zeros(1, 32000)).shape == (1, 64, 200)
    assert fe.freqm == 0 and fe.timem == 0


@pytest.mark.parametrize("floor", [None, 1e-7])
@pytest.mark.parametrize("n", [1, 300, 700, 16000, 319000, 320000, 330000])
def test_padded_skips_the_silent_frames_with_the_same_values(n, floor):
    # short clips are tagged padded to 10 s: only the frames that reach the clip are computed
    fe = MelFrontend(log_floor=floor).eval()
    x = torch.randn(2, n) * 0.1
    full = fe(torch.nn.functional.pad(x, (0, max(0, 320000 - n))))
    got = fe.padded(x, 320000)
    assert got.shape == full.shape
    np.testing.assert_allclose(got.numpy(), full.numpy(), atol=2e-6, rtol=0)
    assert torch.equal(got[..., -1], full[..., -1])  # the silence constant, exactly
