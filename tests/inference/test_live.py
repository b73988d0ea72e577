import io

import numpy as np
import pytest

import dymn
from dymn.inference.live import LiveTagger, RollingWindow, pcm_blocks, run_live


def test_rolling_window_yields_every_hop():
    ring = RollingWindow(window=10, hop=4)
    got = [w for chunk in np.split(np.arange(30, dtype=np.float32), [3, 7, 8, 20]) for w in ring.push(chunk)]
    assert [list(w) for w in got] == [list(range(2, 12)), list(range(6, 16)), list(range(10, 20)),
                                      list(range(14, 24)), list(range(18, 28))]  # fmt: skip
    partial = RollingWindow(window=10, hop=4, emit_partial=True)
    assert [len(w) for w in partial.push(np.zeros(12))] == [4, 8, 10]
    with pytest.raises(ValueError):
        RollingWindow(4, 5)


class _FakeTagger:
    sample_rate = 10
    labels = ["dog", "cat"]

    def __init__(self, script):
        self.script = iter(script)

    def predict(self, waves):
        return np.array([next(self.script)])


def test_announces_each_event_once():
    scores = [[0.9, 0.1], [0.8, 0.1], [0.1, 0.1], [0.9, 0.5], [0.85, 0.4]]
    live = LiveTagger(_FakeTagger(scores), window=2.0, hop=1.0, threshold=0.3)
    news = [[a.label for a in new] for _, _, new in live.feed(np.zeros(50, np.float32))]
    assert news == [["dog"], [], [], ["dog", "cat"], []]


def test_pcm_from_stdin_and_run_live():
    x = (np.sin(np.arange(16000) / 5) * 10000).astype("<i2")
    stereo = np.stack([x, x], axis=1).tobytes()
    blocks = list(pcm_blocks(io.BytesIO(stereo), 16000, 32000, "s16le", channels=2, block_seconds=0.3))
    total = np.concatenate(blocks)
    assert abs(len(total) - 32000) <= 2 and abs(total[1000:-1000].max() - 10000 / 32768) < 0.01
    live = LiveTagger(_FakeTagger([[0.5, 0.0]] * 10), window=2.0, hop=0.5, threshold=0.3)
    out = io.StringIO()
    n = run_live([np.zeros(30, np.float32)], live, out=out)
    assert n == 6 and out.getvalue().count("started: dog") == 1


def test_no_microphone_is_a_clear_error(monkeypatch):
    import sys

    from dymn.inference.live import microphone_blocks

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # not installed
    with pytest.raises(dymn.DymnError, match="--stdin"):
        next(microphone_blocks(32000))


def test_cli_listen_stdin(monkeypatch, tiny_mn_checkpoint, capsys):
    import sys

    from dymn.cli.main import main

    pcm = (np.random.default_rng(0).standard_normal(16000 * 3) * 3000).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": io.BytesIO(pcm)})())
    assert main(["listen", "--stdin", "--rate", "16000", "--weights", str(tiny_mn_checkpoint),
                 "--window", "2", "--hop", "1"]) == 0  # fmt: skip
    assert len(capsys.readouterr().out.strip().splitlines()) >= 3
    assert main(["listen", "--stdin", "--weights", str(tiny_mn_checkpoint), "--hop", "5", "--window", "2"]) == 2


def test_text_lines_can_be_read_back_and_jsonl():
    # finding 13: AudioSet labels contain commas, so tags are separated by " | " and end in ": p"
    class Fixed:
        sample_rate, labels = 100, ["Chirp, tweet", "Bird vocalization, bird call, bird song", "Dog"]

        def predict(self, waves):
            return np.array([[0.81, 0.79, 0.1]])

    out = io.StringIO()
    run_live([np.zeros(200, np.float32)], LiveTagger(Fixed(), window=1, hop=1, top_k=2), out)
    line = out.getvalue().splitlines()[-1]
    import re

    body = re.fullmatch(r"\s*[\d.]+ s  (.*)", line).group(1)
    tags = [t.rsplit(": ", 1) for t in body.split(" | ")]
    assert tags == [["Chirp, tweet", "0.81"], ["Bird vocalization, bird call, bird song", "0.79"]]
    out = io.StringIO()
    run_live([np.zeros(200, np.float32)], LiveTagger(Fixed(), window=1, hop=1, top_k=2), out, fmt="jsonl")
    import json

    docs = [json.loads(x) for x in out.getvalue().splitlines()]
    assert docs[0]["tags"][0] == {"label": "Chirp, tweet", "probability": 0.81}


def test_garbage_float_pcm_is_a_clear_error():
    # issue 9, finding 5: text read as f32le gives NaN and absurd values, never "nan" probabilities
    garbage = io.BytesIO(b"this is not float audio at all, but text " * 500)
    with pytest.raises(dymn.AudioError, match="check --pcm-format"):
        list(pcm_blocks(garbage, 16000, 32000, "f32le"))
