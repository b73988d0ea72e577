"""Detection metrics on small synthetic ground truth with hand-computed values."""

import json

import numpy as np
import pytest

pytest.importorskip("sed_scores_eval", reason="evaluating detection needs the [sed] extra")

from dymn.cli.main import main  # noqa: E402
from dymn.datasets.common import DataError  # noqa: E402
from dymn.inference.sed_metrics import evaluate, read_truth  # noqa: E402

CLASSES = ["Speech", "Dog", "Music"]


def _scores(folder, name, active: dict, frames=250, hop=0.04):
    """A score table: 0.9 where a class is active (frame ranges), 0.05 elsewhere."""
    s = np.full((frames, len(CLASSES)), 0.05)
    for label, (a, b) in active.items():
        s[a:b, CLASSES.index(label)] = 0.9
    folder.mkdir(exist_ok=True)
    rows = ["onset,offset," + ",".join(CLASSES)]
    rows += [f"{i * hop:.3f},{(i + 1) * hop:.3f}," + ",".join(f"{v:.4f}" for v in s[i]) for i in range(frames)]
    (folder / f"{name}.csv").write_text("\n".join(rows) + "\n")


def _truth(path, rows):
    path.write_text("filename\tonset\toffset\tevent_label\n" + "".join(f"{f}\t{a}\t{b}\t{c}\n" for f, a, b, c in rows))
    return path


def test_perfect_detection_scores_one(tmp_path):
    _scores(tmp_path / "pred", "a", {"Speech": (25, 75), "Dog": (100, 150)})
    truth = _truth(tmp_path / "t.tsv", [("a.wav", 1.0, 3.0, "Speech"), ("a.wav", 4.0, 6.0, "Dog")])
    m = evaluate(tmp_path / "pred", truth)
    assert m["psds1"] == pytest.approx(1.0) and m["psds1_macro"] == pytest.approx(1.0)
    assert m["pauroc"] == pytest.approx(1.0) and m["f1_macro"] == pytest.approx(1.0)
    assert m["classes"] == 2 and m["files"] == 1  # the classes in the ground truth


def test_collar_f1_by_hand(tmp_path):
    # Speech truth: 1-3 s and 5-7 s. Detected: 1.12-3.12 s (within the 0.2 s onset collar and the
    # max(0.2 s, 20 % of 2 s) offset collar: a hit) and 8.0-9.0 s (a false alarm); 5-7 s missed.
    # TP 1, FP 1, FN 1: F1 = 2 / (2 + 1 + 1) = 0.5
    _scores(tmp_path / "pred", "a", {"Speech": (28, 78)})
    s = tmp_path / "pred" / "a.csv"
    lines = s.read_text().splitlines()
    for i in range(200, 225):
        cells = lines[1 + i].split(",")
        cells[2] = "0.9000"
        lines[1 + i] = ",".join(cells)
    s.write_text("\n".join(lines) + "\n")
    truth = _truth(tmp_path / "t.tsv", [("a.wav", 1.0, 3.0, "Speech"), ("a.wav", 5.0, 7.0, "Speech")])
    m = evaluate(tmp_path / "pred", truth, median=1)
    assert m["f1_macro"] == pytest.approx(0.5) and m["f1_micro"] == pytest.approx(0.5)
    silent = tmp_path / "silent"
    _scores(silent, "a", {})
    assert evaluate(silent, truth, median=1)["psds1"] == pytest.approx(0.0)


def test_truth_merges_overlaps_and_bad_input_is_clear(tmp_path, capsys):
    truth = _truth(tmp_path / "t.tsv", [("x.wav", 1.0, 3.0, "Dog"), ("x.wav", 2.0, 4.0, "Dog"),
                                        ("x.wav", 5.0, 6.0, "Dog")])  # fmt: skip
    assert read_truth(truth) == {"x": [(1.0, 4.0, "Dog"), (5.0, 6.0, "Dog")]}
    _scores(tmp_path / "pred", "x", {})
    bad = _truth(tmp_path / "bad.tsv", [("x.wav", 1.0, 2.0, "Unicorn")])
    with pytest.raises(DataError, match="class\\(es\\) the predictions do not have: Unicorn"):
        evaluate(tmp_path / "pred", bad)
    assert main(["evaluate-sed", "--pred", str(tmp_path / "pred"), "--truth", str(bad)]) == 1
    assert "Unicorn" in capsys.readouterr().err
    other = _truth(tmp_path / "other.tsv", [("y.wav", 1.0, 2.0, "Dog")])
    with pytest.raises(DataError, match="no score table"):
        evaluate(tmp_path / "pred", other)
    assert main(["evaluate-sed", "--pred", str(tmp_path / "pred"), "--truth", str(truth), "--format", "json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) >= {"psds1", "psds1_macro", "pauroc", "f1_macro"}


def test_detect_scores_feed_the_evaluation(tmp_path, release_cache):
    import soundfile as sf

    release_cache("fmn04_tf104")
    sf.write(tmp_path / "c.wav", (np.random.default_rng(0).standard_normal(16000 * 3) * 0.1).astype(np.float32),
             16000)  # fmt: skip
    (tmp_path / "pred").mkdir()
    assert main(["detect", str(tmp_path / "c.wav"), "--model", "fmn04_tf104", "--scores",
                 str(tmp_path / "pred" / "c.csv")]) == 0  # fmt: skip
    truth = _truth(tmp_path / "t.tsv", [("c.wav", 0.5, 1.5, "Speech")])
    m = evaluate(tmp_path / "pred", truth)
    assert 0.0 <= m["psds1"] <= 1.0 and m["classes"] == 1
