import json

import numpy as np
import pytest
import soundfile as sf

import dymn
from dymn.audio.io import stream_audio
from dymn.inference.events import EventConfig, detect_events, median_filter
from dymn.inference.scoring import timeline
from dymn.inference.tagging import Tagger
from dymn.inference.timelines import Timeline, plot_timeline, window_starts

from ..conftest import AUDIO, need


@pytest.fixture(scope="module")
def real_tagger(real_weights):
    return Tagger(dymn.load("mn04_as", weights=real_weights), batch_size=8)


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """5 s silence, the metro clip, 5 s silence, the applause clip, written at 44.1 kHz."""
    metro = dymn.load_audio(need(AUDIO / "metro_station-paris.wav"), 44100)
    applause = dymn.load_audio(need(AUDIO / "samples" / "applause.wav"), 44100)
    sil = np.zeros(5 * 44100, np.float32)
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.concatenate([sil, metro, sil, applause]), 44100, subtype="FLOAT")
    return path


def test_finds_train_and_applause_at_the_right_times(long_file, real_tagger):
    tl = timeline(long_file, window=10.0, hop=1.0, tagger=real_tagger)
    assert abs(tl.duration - 30.5) < 0.05
    events = detect_events(tl, EventConfig(threshold=0.4))
    train = [e for e in events if e.label == "Train"]
    applause = [e for e in events if e.label == "Applause"]
    assert train and applause
    # metro audio is at 5-15 s, applause at 20-30.5 s
    assert all(5 <= (e.onset + e.offset) / 2 <= 15 for e in train)
    assert all(20 <= (e.onset + e.offset) / 2 <= 30.5 for e in applause)
    best = tl.probs[:, tl.labels.index("Train")].argmax()
    assert tl.starts[best] == 5.0  # the window that holds exactly the metro clip scores highest


def test_window_scores_equal_tag_on_the_excerpt(long_file, real_tagger, tmp_path):
    tl = timeline(long_file, window=10.0, hop=1.0, tagger=real_tagger)
    wave = dymn.load_audio(long_file, 32000)
    for i in (0, 5, len(tl.starts) - 1):
        s = int(round(tl.starts[i] * 32000))
        excerpt = tmp_path / f"x{i}.wav"
        sf.write(excerpt, wave[s : s + 320000], 32000, subtype="FLOAT")
        tagged = next(real_tagger.tag_files([excerpt], top_k=0))
        probs = np.zeros(527)
        for t in tagged.tags:
            probs[t.index] = t.probability
        np.testing.assert_allclose(tl.probs[i], probs, atol=2e-3)


def test_events_consistent_with_window_scores(long_file, real_tagger):
    tl = timeline(long_file, window=10.0, hop=2.0, tagger=real_tagger)
    cfg = EventConfig(threshold=0.3, low=0.2)
    edges = tl.edges
    for ev in detect_events(tl, cfg):
        inside = (edges[:-1] >= ev.onset - 1e-9) & (edges[1:] <= ev.offset + 1e-9)
        col = tl.probs[inside, ev.index]
        assert abs(col.max() - ev.peak) < 1e-6
        assert (col >= 0.2 - 1e-6).all() and col.max() >= 0.3


def test_window_layout():
    assert window_starts(100, 30, 10) == [0, 10, 20, 30, 40, 50, 60, 70]
    assert window_starts(105, 30, 10)[-1] == 75  # end-aligned last window covers the tail
    assert window_starts(20, 30, 10) == [0]


def test_short_audio_is_one_window_equal_to_tag(tiny_tagger):
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    tl = timeline(wave, window=10.0, hop=1.0, tagger=tiny_tagger)
    assert len(tl.starts) == 1 and tl.ends[0] == 0.5
    np.testing.assert_allclose(tl.probs[0], tiny_tagger.predict([wave])[0], atol=1e-6)


def test_streaming_matches_whole_file(tmp_path):
    x = np.random.default_rng(1).standard_normal(44100 * 7).astype(np.float32) * 0.1
    path = tmp_path / "a.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    streamed = np.concatenate(list(stream_audio(path, 32000, block_seconds=0.9)))
    whole = dymn.load_audio(path, 32000)
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    np.testing.assert_allclose(streamed[:n], whole[:n], atol=1e-4)


@pytest.mark.parametrize("window,hop", [(10, 0), (10, -1), (0, 1), (5, 6), (float("nan"), 1)])
def test_bad_window_hop(window, hop, tiny_tagger):
    with pytest.raises(ValueError):
        timeline(np.zeros(32000, np.float32), window=window, hop=hop, tagger=tiny_tagger)


def test_hysteresis_median_and_merge():
    probs = np.array([0.1, 0.6, 0.35, 0.6, 0.1, 0.1, 0.7, 0.1])[:, None]
    tl = Timeline(["a"], np.arange(8.0), np.arange(8.0) + 1, probs, 9.0, 1.0, 1.0)
    assert len(detect_events(tl, EventConfig(threshold=0.5, median=1))) == 3
    assert len(detect_events(tl, EventConfig(threshold=0.5, low=0.3, median=1))) == 2
    merged = detect_events(tl, EventConfig(threshold=0.5, low=0.3, merge_gap=2.0, median=1))
    assert len(merged) == 1 and merged[0].peak == 0.7
    assert median_filter(probs, 3)[2, 0] == 0.6
    with pytest.raises(ValueError):
        detect_events(tl, EventConfig(threshold={"nope": 0.5}))
    with pytest.raises(ValueError):
        detect_events(tl, EventConfig(threshold=0.3, low=0.5))
    ev = detect_events(tl, EventConfig(threshold={"a": 0.65}, median=1))
    assert len(ev) == 1 and (ev[0].onset, ev[0].offset) == (6.0, 7.0)


def test_cli_timeline(long_file, real_weights, tmp_path, capsys):
    from dymn.cli.main import main

    args = ["timeline", str(long_file), "--model", "mn04_as", "--weights", str(real_weights), "--hop", "2"]
    plot, scores, out = tmp_path / "t.png", tmp_path / "s.csv", tmp_path / "e.json"
    assert main(args + ["--format", "json", "-o", str(out), "--plot", str(plot), "--scores", str(scores),
                        "--threshold", "0.4"]) == 0  # fmt: skip
    doc = json.loads(out.read_text())
    assert {e["label"] for e in doc["events"]} >= {"Train", "Applause"}
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    assert scores.read_text().splitlines()[0].startswith("start,end,Speech,")
    assert main(args + ["--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("file,label,index,onset,offset,peak")
    for bad in (["--hop", "20"], ["--window", "0"], ["--median", "2"], ["--threshold", "2"]):
        assert main(args + bad) == 2
    assert main(["timeline", str(tmp_path / "missing.wav")]) == 1  # the input failed, not the usage
    err = capsys.readouterr().err
    assert "Traceback" not in err and "missing.wav: no such file" in err


def test_json_top_k_is_per_window_and_plot_shows_event_classes(tmp_path):
    # finding 7: each window lists its own top classes; classes with events are always plotted
    labels = [f"c{i}" for i in range(12)]
    probs = np.full((6, 12), 0.01)
    probs[:3, 0] = 0.9  # c0 early, c1 late
    probs[3:, 1] = 0.8
    probs[:, 2:11] = np.linspace(0.2, 0.4, 9)  # high-ish everywhere but never an event
    probs[2:4, 11] = 0.6  # short event of a class with a low peak ranking
    tl = Timeline(labels, np.arange(6.0), np.arange(6.0) + 1, probs, 6.0, 1.0, 1.0, source="x.wav")
    doc = json.loads(tl.to_json(top_k=1))
    assert [list(w["scores"]) for w in doc["windows"]] == [["c0"]] * 3 + [["c1"]] * 3
    events = detect_events(tl, EventConfig(threshold=0.5, median=1))
    assert {e.label for e in events} == {"c0", "c1", "c11"}
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = []
    real = plt.Axes.set_yticklabels
    plt.Axes.set_yticklabels = lambda self, names, **kw: shown.extend(names) or real(self, names, **kw)
    try:
        plot_timeline(tl, tmp_path / "t.png", top=2, events=events)
    finally:
        plt.Axes.set_yticklabels = real
    assert set(shown) == {"c0", "c1", "c11"}
    one = Timeline(labels, np.zeros(1), np.ones(1), probs[:1], 1.0, 10.0, 1.0, source="y.wav")
    assert "1 window of 10 s" in one.to_text([])


def test_event_defaults_smooth_over_three_windows():
    assert EventConfig().median == 3
    with pytest.raises(dymn.UsageError, match="odd"):
        EventConfig(median=2)
