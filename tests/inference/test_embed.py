import numpy as np
import pytest
import soundfile as sf
import torch

import dymn
from dymn.cli.main import main
from dymn.inference import hear
from dymn.inference.embedding import embed


@pytest.fixture()
def clips(tmp_path):
    paths = []
    for i, sec in enumerate([1.0, 2.5]):
        p = tmp_path / f"c{i}.wav"
        sf.write(p, np.random.default_rng(i).standard_normal(int(sec * 32000)) * 0.1, 32000)
        paths.append(p)
    return paths


def test_clip_and_window_embeddings(clips, tmp_path):
    model = dymn.load("mn01_as", pretrained=False)
    res = embed(clips, model=model, timestamps=True, window=1.0, hop=0.5)
    assert res.clip.shape == (2, 96) and list(res.durations) == [1.0, 2.5]
    assert list(res.window_file) == [0] + [1, 1, 1, 1]
    assert list(res.window_start) == [0.0, 0.0, 0.5, 1.0, 1.5]
    # a clip embedding equals the model's embedding of the whole clip
    tagger = dymn.Tagger(model)
    np.testing.assert_allclose(res.clip[1], tagger.run_batch(dymn.load_audio(clips[1])[None])[1][0], atol=1e-5)
    path = res.save(tmp_path / "e.npz")
    data = np.load(path)
    assert data["embeddings"].shape == (2, 96) and data["window_embeddings"].shape == (5, 96)


def test_cli_embed_with_bad_file(clips, tmp_path, tiny_mn_checkpoint, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_text("x")
    out = tmp_path / "out.npz"
    rc = main(["embed", *map(str, clips), str(bad), "--weights", str(tiny_mn_checkpoint), "--out", str(out),
               "--timestamps", "--window", "1", "--hop", "0.5"])  # fmt: skip
    assert rc == 1 and np.load(out)["embeddings"].shape == (2, 96)
    assert "bad.wav" in capsys.readouterr().err
    assert main(["embed", str(clips[0]), "--out", str(tmp_path / "no" / "x.npz")]) == 1  # an output failure
    # -o, as every other command writes its output
    assert main(["embed", str(clips[0]), "--weights", str(tiny_mn_checkpoint), "-o", str(tmp_path / "o.npz")]) == 0
    assert np.load(tmp_path / "o.npz")["embeddings"].shape == (1, 96)


def test_hear_api(tiny_mn_checkpoint):
    model = hear.load_model(str(tiny_mn_checkpoint))
    assert model.sample_rate == 32000 and model.scene_embedding_size == 96 == model.timestamp_embedding_size
    audio = torch.randn(2, 32000) * 0.1
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape == (2, 21, 96) and ts.shape == (2, 21)
    assert ts[0, 1].item() == pytest.approx(50.0) and ts[0, -1].item() == pytest.approx(1000.0)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (2, 96)
    long = hear.get_scene_embeddings(torch.randn(1, 32000 * 15) * 0.1, model)
    assert long.shape == (1, 96) and torch.isfinite(long).all()
    with pytest.raises(ValueError):
        hear.get_scene_embeddings(torch.randn(32000), model)
