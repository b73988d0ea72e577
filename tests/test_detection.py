"""Frame-level detection post-processing against the reference decode (../shared/fixtures/sed/postproc*):
median filtering, frame times, events per threshold, and 23.5 s of audio in 10 s chunks through frame_mn06."""

import json

import numpy as np
import pytest
import torch

from dymn.detection import chunk_probabilities, decode, frame_times, median_filter
from dymn.frontend import MelFrontend
from dymn.labels import audioset_names, audioset_strong_labels
from dymn.models.sed import FrameMN, FrameMNConfig, remap_keys

from .conftest import FIXTURES, need
from .models.test_sed import FRONTEND_16K

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
