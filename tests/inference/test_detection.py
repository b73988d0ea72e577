"""Frame-level detection post-processing against the reference decode (../shared/fixtures/sed/postproc*):
median filtering, frame times, events per threshold, and 23.5 s of audio in 10 s chunks through frame_mn06."""

import json

import numpy as np
import pytest
import torch

from dymn.audio.frontend import MelFrontend
from dymn.inference.detection import chunk_probabilities
from dymn.inference.events import decode, frame_times, median_filter
from dymn.models.configs import FrameMNConfig
from dymn.models.labels import audioset_names, audioset_strong_labels
from dymn.models.sed import FrameMN, remap_keys

from ..conftest import FIXTURES, need
from ..models.test_sed import FRONTEND_16K

SED = FIXTURES / "sed"


def test_strong_labels():
    labels = audioset_strong_labels()
    names = [lab.name for lab in labels]
    assert len(labels) == 447 and names == sorted(names) and len(set(names)) == 447
    # by MID, 376 classes are among the taggers' 527 (11 of them under another name there)
    assert sum(lab.in_audioset_527 for lab in labels) == 376
    assert sum(lab.name in set(audioset_names()) for lab in labels) == 365


def test_strong_labels_match_the_reference():
    rows = [line.rstrip("\n").split("\t") for line in need(SED / "labels_447.tsv").read_text().splitlines(True)]
    assert [(int(i), mid, name) for i, mid, name, *_ in rows[1:]] == [(x.index, x.mid, x.name)
                                                                       for x in audioset_strong_labels()]  # fmt: skip


def _events(items):
    return sorted((f, label, round(on, 6), round(off, 6)) for f, label, on, off in items)


def test_decode_matches_the_reference():
    ref = np.load(need(SED / "postproc.npz"))
    expected = json.loads(need(SED / "postproc_events.json").read_text())["batch10s"]
    names = [lab.name for lab in audioset_strong_labels()]
    np.testing.assert_allclose(frame_times(250, 10.0), ref["timestamps"], atol=1e-12)
    got = {t: [] for t in expected}
    for i in range(2):
        probs = ref["probs"][i].T.astype(np.float64)
        filtered, events = decode(probs, names, 10.0, thresholds=[float(t) for t in expected], median=9)
        np.testing.assert_allclose(filtered, ref["probs_median9"][i], atol=1e-7)
        for t in expected:
            got[t] += [(f"clip{i}.wav", e.label, e.onset, e.offset) for e in events[float(t)]]
    for t in expected:
        assert _events(got[t]) == _events(expected[t]), t


def test_long_audio_in_chunks_matches_the_reference(synth_state_dict):
    ref = np.load(need(SED / "postproc.npz"))
    expected = json.loads(need(SED / "postproc_events.json").read_text())["long23s5"]["0.5"]
    layout = json.loads(need(SED / "frame_mn06_layout.json").read_text())
    model = FrameMN(FrameMNConfig(width_mult=0.6)).eval()
    model.load_state_dict(remap_keys(synth_state_dict(layout, 0)), strict=True)
    torch.set_num_threads(1)
    probs = chunk_probabilities(model, MelFrontend.from_config(FRONTEND_16K).eval(), ref["long_wave"][0], 16000)
    torch.set_num_threads(2)
    np.testing.assert_allclose(probs.T, ref["long_probs"][0], atol=1e-4)
    duration = ref["long_wave"].shape[1] / 16000
    np.testing.assert_allclose(frame_times(750, duration), ref["long_timestamps"], atol=1e-12)
    names = [lab.name for lab in audioset_strong_labels()]
    _, events = decode(probs.astype(np.float64), names, duration, thresholds=[0.5])
    assert _events([("long.wav", e.label, e.onset, e.offset) for e in events[0.5]]) == _events(expected)


def test_median_window_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        median_filter(np.zeros((5, 2)), 4)
    x = np.arange(5.0)[:, None]
    assert median_filter(x, 3)[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert median_filter(np.array([[0.0], [9.0], [0.0]]), 3)[:, 0].tolist() == [0.0, 0.0, 0.0]


DETECTOR = "fmn04_tf104"  # small; a stand-in of its released layout


@pytest.fixture()
def sed_cache(release_cache):
    return release_cache(DETECTOR)


def _wav(path, seconds, sr=16000, seed=0):
    import soundfile as sf

    rng = np.random.default_rng(seed)
    sf.write(path, (rng.standard_normal(int(seconds * sr)) * 0.1).astype(np.float32), sr)
    return path


def test_detect_streams_long_audio_as_the_reference_chunks_it(sed_cache, tmp_path):
    import dymn
    from dymn.audio.io import load_audio

    clip = _wav(tmp_path / "long.wav", 23.5, sr=22050)
    det = dymn.detect(clip, model=DETECTOR, threshold=0.5)
    assert det.probs.shape == (750, 447) and det.duration == pytest.approx(23.5)
    model = dymn.load(DETECTOR)
    ref = chunk_probabilities(model, MelFrontend.from_config(model.info.frontend).eval(),
                              load_audio(clip, 16000), 16000)  # fmt: skip
    np.testing.assert_allclose(det.probs, ref, atol=1e-5)
    np.testing.assert_allclose(det.times[-1], [23.5, 23.5])  # frames in the padding collapse to the end
    short = dymn.detect(_wav(tmp_path / "tiny.wav", 0.01), model=DETECTOR)  # shorter than one frame
    assert short.probs.shape == (250, 447) and short.times[0, 1] == pytest.approx(0.01)


def test_detect_cli_formats_and_files(sed_cache, tmp_path, capsys):
    from dymn.cli.main import main

    clip = _wav(tmp_path / "a.wav", 4.0)
    base = ["detect", str(clip), "--model", DETECTOR, "--threshold", "0.0"]  # every class: an event each
    assert main(base + ["--format", "json", "--scores", str(tmp_path / "s.csv")]) == 0
    out = json.loads(capsys.readouterr().out)[0]
    assert out["model"] == DETECTOR and len(out["events"]) == 447
    assert {"label", "mid", "onset", "offset", "confidence"} <= set(out["events"][0])
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert len(rows) == 251 and rows[0].startswith("onset,offset,") and rows[0].count(",") >= 448
    assert main(base + ["--format", "tsv"]) == 0
    tsv = capsys.readouterr().out.splitlines()
    assert tsv[0] == "filename\tonset\toffset\tevent_label" and tsv[1].startswith("a.wav\t0.000\t4.000\t")
    assert main(base + ["--format", "csv", "--class-threshold", "Speech=1.0", "--class-threshold", "/m/04rlf=1"]) == 0
    labels = {r.split(",")[1] for r in capsys.readouterr().out.splitlines()[1:]}
    assert "Speech" not in labels and "Music" not in labels and "Rain" in labels  # by name and by MID


def test_detect_bad_input_is_clear(sed_cache, tmp_path, capsys, release_cache):
    from dymn.cli.main import main

    release_cache("mn01_as")
    clip = _wav(tmp_path / "a.wav", 1.0)
    (tmp_path / "bad.wav").write_text("not audio")
    assert main(["detect", str(clip), str(tmp_path / "bad.wav"), "--model", DETECTOR]) == 1
    err = capsys.readouterr().err
    assert "bad.wav: not a readable audio file" in err and "1 of 2 input(s) failed" in err
    assert main(["detect", str(clip), "--model", "mn01_as"]) == 2
    assert "clip-level tagger" in capsys.readouterr().err
    assert main(["tag", str(clip), "--model", DETECTOR]) == 2
    assert "frame-level sound event detector" in capsys.readouterr().err
    assert main(["detect", str(clip), "--model", DETECTOR, "--class-threshold", "Rian=0.3"]) == 2
    assert "did you mean Rain" in capsys.readouterr().err
    assert main(["detect", str(clip), "--model", DETECTOR, "--median", "4"]) == 2


def test_released_key_names_and_wrong_family(sed_cache, tmp_path, capsys, release_cache):
    import dymn
    from dymn.cli.main import main

    model = dymn.load(DETECTOR)
    raw = {("net." + k[len("model.fmn."):] if k.startswith("model.fmn.") else "net." + k): v
           for k, v in model.state_dict().items()}  # fmt: skip
    raw = {("net.model." + k[4:] if k.startswith("net.features.") else k): v for k, v in raw.items()}
    torch.save(raw, tmp_path / "released.pt")
    again = dymn.load(DETECTOR, weights=tmp_path / "released.pt")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)
    release_cache("mn01_as")
    dymn.load("mn01_as").save(tmp_path / "tagger.pt", plain=True)
    assert main(["detect", str(_wav(tmp_path / "a.wav", 1.0)), "--model", "fmn10",
                 "--weights", str(tmp_path / "tagger.pt")]) == 1  # fmt: skip
    assert "do not fit fmn" in capsys.readouterr().err


def test_timeline_of_a_detector_is_its_frames_or_their_peaks(sed_cache, tmp_path, capsys):
    import dymn
    from dymn.cli.main import main

    clip = _wav(tmp_path / "b.wav", 12.3)
    det = dymn.detect(clip, model=DETECTOR)
    frames = dymn.timeline(clip, model=DETECTOR)
    # the frames of the audio (the zero-padding's left out), 40 ms each, the same probabilities
    assert frames.probs.shape == (308, 447) and frames.window == frames.hop == 0.04
    np.testing.assert_allclose(frames.probs, det.probs[:308])
    assert frames.ends[-1] == pytest.approx(12.3) and frames.starts[1] == pytest.approx(0.04)
    pooled = dymn.timeline(clip, model=DETECTOR, window=2.0, hop=1.0)
    assert pooled.starts.tolist()[:3] == [0.0, 1.0, 2.0] and pooled.ends[-1] == pytest.approx(12.3)
    np.testing.assert_allclose(pooled.probs[1], det.probs[25:75].max(axis=0))
    with pytest.raises(dymn.UsageError, match="no window embeddings"):
        dymn.timeline(clip, model=DETECTOR, embeddings=True)
    assert main(["timeline", str(clip), "--model", DETECTOR, "--format", "json", "--top-k", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["window"] == 0.04 and len(out["windows"]) == 308 and out["model"] == DETECTOR


def test_streaming_decoder_equals_decoding_all_frames_at_once():
    from dymn.inference.events import StreamingDecoder, find_events

    rng = np.random.default_rng(0)
    for _ in range(60):
        n, classes, median = int(rng.integers(1, 600)), int(rng.integers(1, 5)), int(rng.choice([1, 3, 9, 21]))
        probs = np.repeat(rng.random((n, classes)).astype(np.float32), int(rng.integers(1, 15)), axis=0)[:n]
        thresholds = rng.random(classes).astype(np.float32)
        filtered = median_filter(probs, median)
        expected = find_events(filtered > thresholds, frame_times(n, n * 0.04), [""] * classes, filtered)
        decoder = StreamingDecoder(thresholds, median)
        start = 0
        while start < n:  # blocks of any size, as chunks and batches arrive
            step = int(rng.integers(1, 250))
            decoder.push(probs[start : start + step])
            start += step
        got = decoder.finish()
        assert [(c, a, b) for c, a, b, _ in got] == [(e.index, round(e.onset / 0.04), round(e.offset / 0.04))
                                                     for e in expected]  # fmt: skip
        np.testing.assert_allclose([p for *_, p in got], [e.peak for e in expected], rtol=1e-6)
