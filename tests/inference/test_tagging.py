import numpy as np
import pytest
import soundfile as sf

import dymn
from dymn.inference.tagging import Tagger, top_tags


@pytest.fixture(scope="module", params=["mn01_as", "dymn04_as"])
def tagger(request):
    model = dymn.load(request.param, pretrained=False)
    if model.arch == "dymn":
        model.set_temperature(1)
    return Tagger(model, batch_size=2)


def test_batched_equals_one_by_one(tagger):
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (32000, 16000, 32000, 32000, 700, 16000)]
    batched = tagger.logits(waves)
    single = np.concatenate([tagger.logits_batch(w[None]) for w in waves])
    np.testing.assert_allclose(batched, single, atol=1e-4, rtol=0)
    probs = tagger.predict(waves)
    assert probs.shape == (6, 527) and (probs >= 0).all() and (probs <= 1).all()


def test_short_clips_of_any_lengths_batch_together(tagger, monkeypatch):
    # all are padded to the training length, so they share batches (a folder of short sounds runs at batch 8)
    rng = np.random.default_rng(2)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (4000, 16001, 700, 320000, 9000)]
    model, sizes = tagger.model, []
    monkeypatch.setattr(tagger, "model", lambda x: (sizes.append(x.shape[0]), model(x))[1])
    batched = tagger.logits(waves)
    assert sizes == [2, 2, 1]  # all five are 10 s once padded: batches of 2 (before: one clip per batch)
    single = np.concatenate([tagger.logits_batch(w[None]) for w in waves])
    np.testing.assert_allclose(batched, single, atol=1e-4, rtol=0)
    with pytest.raises(dymn.UsageError, match="same length"):
        tagger.run_batch([waves[0], np.zeros(330000, np.float32), np.zeros(340000, np.float32)])


def test_top_tags_sorted():
    tags = top_tags(np.array([0.1, 0.9, 0.5]), ["a", "b", "c"], top_k=2)
    assert [(t.label, t.index) for t in tags] == [("b", 1), ("c", 2)]
    assert len(top_tags(np.zeros(3), ["a", "b", "c"], top_k=0)) == 3


def test_tag_files_skips_bad_and_keeps_order(tmp_path, tagger):
    paths = []
    for i, n in enumerate([32000, 8000, 32000]):
        p = tmp_path / f"{i}.wav"
        sf.write(p, np.random.default_rng(i).standard_normal(n) * 0.1, 32000)
        paths.append(p)
    bad = tmp_path / "bad.wav"
    bad.write_text("nope")
    errors = []
    results = list(tagger.tag_files([paths[0], bad, paths[1], paths[2]], top_k=3,
                                    on_error=lambda p, m: errors.append(m), chunk=2))  # fmt: skip
    assert [r.file for r in results] == [str(p) for p in paths]
    assert len(errors) == 1 and "bad.wav" in errors[0]
    assert all(len(r.tags) == 3 for r in results)
    assert results[1].duration == 0.25


def test_cuda_unavailable_is_clear():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="CUDA"):
        Tagger(dymn.load("mn01_as", pretrained=False), device="cuda")


def test_short_clips_are_padded_to_the_training_length(tagger):
    # finding 14: measured on real short sounds (benchmarks/results/short-clips-cpu.md), zero-padding to the
    # 10 s training length is what works; a 35 ms clip is tagged as that clip padded
    x = np.random.default_rng(1).standard_normal(1120).astype(np.float32) * 0.1  # 35 ms
    padded = np.pad(x, (0, 320000 - len(x)))
    np.testing.assert_allclose(tagger.logits([x]), tagger.logits_batch(padded[None]), atol=1e-5, rtol=0)
    raw = Tagger(tagger.model, pad=False, fast=False)
    assert not np.allclose(raw.logits([x]), tagger.logits([x]), rtol=1e-2, atol=0)


def test_tag_results_write_themselves():
    r = dymn.TagResult("a\nb.wav", 1.0, [dymn.Tag("x\x1b[31m", 0, 0.5)])
    text = dymn.TagResult.dumps([r], "text")
    assert "\x1b" not in text and text.count("\n") == 2  # control characters escaped
    assert dymn.TagResult.dumps([r], "json").startswith("[")
    assert dymn.TagResult.dumps([r], "csv").splitlines()[0] == "file,duration,rank,label,index,probability"


def test_files_decoded_together_hold_bounded_audio(tmp_path, monkeypatch):
    # issue 9, finding 2: a batch of long files is decoded a few at a time, not all at once
    from dymn.inference import tagging as inference

    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.wav"
        sf.write(p, np.zeros(8000 * 60, np.int16), 8000)  # 60 s each
        paths.append(str(p))
    monkeypatch.setattr(inference, "CHUNK_SECONDS", 130.0)
    assert [len(c) for c in inference._chunks(paths, 16)] == [2, 2, 1]
    assert [len(c) for c in inference._chunks(paths, 3)] == [2, 1, 2]  # blocks of 3, each cut by seconds
    monkeypatch.setattr(inference, "CHUNK_SECONDS", 1e9)
    assert [len(c) for c in inference._chunks(paths, 3)] == [3, 2]


def test_the_frontend_thread_setting_holds_while_any_caller_is_inside():
    # the frontend runs on one PyTorch thread when the network is in another runtime; concurrent callers (the
    # service's model thread and its timeline requests) share that process-wide setting: it holds until the
    # last one leaves, and is then restored
    import threading

    import torch

    from dymn.inference.tagging import _torch_threads

    before = torch.get_num_threads()
    entered, first_left, seen = threading.Event(), threading.Event(), []

    def first():
        with _torch_threads(1):
            entered.set()
            entered_second.wait()
        first_left.set()

    def second():
        entered.wait()
        with _torch_threads(1):
            entered_second.set()
            first_left.wait()
            seen.append(torch.get_num_threads())  # the first caller has left: still 1 for this one

    entered_second = threading.Event()
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert seen == [1] and torch.get_num_threads() == before
