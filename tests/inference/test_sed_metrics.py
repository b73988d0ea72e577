"""Detection metrics on small synthetic ground truth with hand-computed values."""

import json

import numpy as np
import pytest

pytest.importorskip("sed_scores_eval", reason="evaluating detection needs the [sed] extra")

from dymn.cli.main import main  # noqa: E402
from dymn.datasets.common import DataError  # noqa: E402
from dymn.inference.sed_metrics import evaluate, read_truth  # noqa: E402

from ..conftest import limited_child  # noqa: E402

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


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--collar", "-1"], "--collar"), (["--threshold", "nan"], "--threshold"), (["--threshold", "2"], "--threshold"),
     (["--median", "4"], "--median")],
)  # fmt: skip
def test_bad_settings_are_refused(tmp_path, capsys, args, message):
    _scores(tmp_path / "pred", "a", {"Speech": (25, 75)})
    truth = _truth(tmp_path / "t.tsv", [("a.wav", 1.0, 3.0, "Speech")])
    assert main(["evaluate-sed", "--pred", str(tmp_path / "pred"), "--truth", str(truth), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_bad_tables_are_one_line_errors(tmp_path, capsys):
    truth = _truth(tmp_path / "t.tsv", [("a.wav", 1.0, 3.0, "Speech")])
    pred = tmp_path / "pred"
    _scores(pred, "a", {"Speech": (25, 75)})
    cases = {}
    both = tmp_path / "both"  # one file's predictions twice: which to keep would be a guess
    _scores(both, "a", {"Speech": (25, 75)})
    (both / "a.tsv").write_text((both / "a.csv").read_text().replace(",", "\t"))
    cases["both"] = (both, truth, [], "both a.csv and a.tsv")
    nan = tmp_path / "nan"
    _scores(nan, "a", {})
    (nan / "a.csv").write_text((nan / "a.csv").read_text().replace("0.0500", "nan", 1))
    cases["nan"] = (nan, truth, [], "not finite")
    latin = tmp_path / "latin"
    _scores(latin, "a", {})
    (latin / "a.csv").write_bytes((latin / "a.csv").read_bytes().replace(b"Speech", b"Sp\xe9ech"))
    cases["latin"] = (latin, truth, [], "not a score table")
    huge = tmp_path / "huge.tsv"
    huge.write_text("filename\tonset\toffset\tevent_label\n" + "a.wav\t1\t1e308\tSpeech\n")
    cases["1e308"] = (pred, huge, [], "line 2: need 0 <= onset <= offset")
    field = tmp_path / "field.tsv"
    field.write_text("filename\tonset\toffset\tevent_label\n" + "a.wav\t1\t2\t" + "x" * 200_000 + "\n")
    cases["field"] = (pred, field, [], "line 2")
    latin_truth = tmp_path / "latin.tsv"
    latin_truth.write_bytes(b"filename\tonset\toffset\tevent_label\na.wav\t1\t2\tSp\xe9ech\n")
    cases["latin truth"] = (pred, latin_truth, [], "not UTF-8")
    for value in ("nan", "-5", "1e308"):
        d = tmp_path / f"durations{value}.tsv"
        d.write_text(f"a.wav\t{value}\n")
        cases[f"durations {value}"] = (pred, truth, ["--durations", str(d)], "the duration of a")
    for name, (p, t, extra, message) in cases.items():
        assert main(["evaluate-sed", "--pred", str(p), "--truth", str(t), *extra]) == 1, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (name, err)


def test_a_huge_ground_truth_of_the_wrong_files_fails_fast_in_bounded_memory(tmp_path):
    """100 MB of events for files without predictions: streamed, stopped at the tenth such file, within 1.5 GB of
    address space (reading it whole first peaked at 3.1 GB)."""
    _scores(tmp_path / "pred", "a", {"Speech": (25, 75)})
    big = tmp_path / "truth.tsv"
    with big.open("w") as f:
        f.write("filename\tonset\toffset\tevent_label\n")
        row = "other{:08d}.wav\t0.5\t1.5\tSpeech\n"
        for i in range(3_200_000):
            f.write(row.format(i))
    assert big.stat().st_size > 100e6
    code = ("from dymn.inference.sed_metrics import read_truth, read_scores\nfrom dymn.util.errors import DataError\n"
            "try:\n    read_truth(sys.argv[1], known=set(read_scores(sys.argv[2])[0]))\n"
            "except DataError as e:\n    print('refused:', e)\n")  # fmt: skip
    done = limited_child(code, str(big), str(tmp_path / "pred"), timeout=120)
    assert done.returncode == 0 and "no score table for 10 (stopped there)" in done.stdout, done.stdout + done.stderr
