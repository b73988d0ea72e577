"""Fine-tuning frame-level detectors on strongly labelled events (onset/offset TSV) through the training engine."""

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import dymn
from dymn.datasets.common import DataError
from dymn.datasets.strong import StrongDataset, frame_targets, read_strong_tsv, strong_split

L = pytest.importorskip("lightning", reason="training tests need the [train] extra")
from dymn.train.datamodule import TaskDataModule  # noqa: E402
from dymn.train.recipes import data_config, train_config  # noqa: E402
from dymn.train.runner import fit  # noqa: E402

from ..conftest import limited_child  # noqa: E402

SR = 16000
BEEP, BUZZ = 1000.0, 300.0
BEEP_BUZZ = ("beep", "buzz")


def _write_set(root: Path, n: int = 8, seconds: float = 10.0, seed: int = 0) -> Path:
    """Quiet noise with a 1 kHz beep and a 300 Hz buzz at known random times; the TSV lists them."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        x = rng.standard_normal(int(seconds * SR)).astype(np.float32) * 0.003
        for label, freq in zip(BEEP_BUZZ, (BEEP, BUZZ)):
            on = float(rng.uniform(0, seconds - 3))
            off = on + float(rng.uniform(0.5, 2.5))
            t = np.arange(int(on * SR), int(off * SR))
            x[t] += 0.3 * np.sin(2 * np.pi * freq * t / SR).astype(np.float32)
            rows.append([f"f{i}.wav", f"{on:.3f}", f"{off:.3f}", label])
        sf.write(root / f"f{i}.wav", x, SR)
    sf.write(root / "silent.wav", np.zeros(SR * 2, np.float32), SR)
    rows.append(["silent.wav", "", "", ""])  # a file without events
    tsv = root / "events.tsv"
    with open(tsv, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["filename", "onset", "offset", "event_label"])
        w.writerows(rows)
    return tsv


@pytest.fixture(scope="module")
def strong_set(tmp_path_factory):
    return _write_set(tmp_path_factory.mktemp("strong"))


def test_frame_targets_follow_the_reference_encoding():
    # frames of 40 ms: onset frame floor(t / 0.04), offset frame ceil(t / 0.04), exclusive
    y = frame_targets([(0.05, 0.17, 1), (9.98, 12.0, 0)], 0.0, 250, 0.04, 2)
    assert np.flatnonzero(y[:, 1]).tolist() == [1, 2, 3, 4]
    assert np.flatnonzero(y[:, 0]).tolist() == [249]
    # the second 10 s chunk of the same file sees the rest of the second event
    y2 = frame_targets([(9.98, 12.0, 0)], 10.0, 250, 0.04, 2)
    assert np.flatnonzero(y2[:, 0]).tolist() == list(range(50))


def test_tsv_reading_and_split(strong_set):
    rows = read_strong_tsv(strong_set)
    assert len(rows) == 9 and rows[-1][1] == []
    tr, te, labels = strong_split(strong_set, val_fraction=0.25, seed=0)
    assert labels == ["beep", "buzz"]
    assert len(tr["paths"]) + len(te["paths"]) == 9 and len(te["paths"]) == 2
    assert all(len(evs) in (0, 2) for evs in tr["events"])


def test_long_files_become_chunks_and_shifts_keep_labels_aligned(tmp_path):
    x = np.zeros(int(25 * SR), np.float32)
    x[int(12 * SR) : int(13 * SR)] = 1.0
    sf.write(tmp_path / "long.wav", x, SR)
    ds = StrongDataset([tmp_path / "long.wav"], [[(12.0, 13.0, 0)]], [25.0], ["click"], train=True,
                       augment=dymn.datasets.common.WaveAugment(roll=2000))  # fmt: skip
    assert len(ds) == 3  # 0-10, 10-20, 20-25 (padded)
    for epoch in range(4):
        ds.set_epoch(epoch)
        item = ds[1]
        frames = np.flatnonzero(item["target"][:, 0])
        loud = np.flatnonzero(np.abs(item["wave"]).reshape(250, -1).max(axis=1) > 0.5)
        assert frames.tolist() == loud.tolist() and len(frames) == 25
    assert ds[2]["wave"].shape == (10 * SR,) and not ds[2]["target"].any()


def test_finetune_a_detector_learns_and_detects(strong_set, tmp_path):
    data = TaskDataModule("strong", strong_set, data_config("strong", {"val_fraction": 0.25}), seed=0)
    assert data.data.level == "frame" and data.num_train == 7
    torch.manual_seed(0)
    model = dymn.load("fmn04", pretrained=False, num_classes=data.num_classes)
    cfg = train_config("strong", "fmn", data.num_train, {"epochs": 30, "batch_size": 4, "lr": 3e-3, "val_every": 30},
                       scratch=True)  # fmt: skip
    _, final = fit(model, data, cfg, tmp_path / "run", progress=False)
    trained = dymn.load(final)
    assert trained.info.level == "frame" and list(trained.info.labels) == ["beep", "buzz"]
    # the trained detector finds the events of a file it has not seen, within a few frames
    new = _write_set(tmp_path / "new", n=1, seed=7)
    truth = {r[3]: (float(r[1]), float(r[2])) for r in csv.reader(open(new), delimiter="\t") if r[3] in BEEP_BUZZ}
    found = dymn.detect(new.parent / "f0.wav", model=trained, threshold=0.5)
    assert found.labels == ["beep", "buzz"] and found.mids is None
    for label, (on, off) in truth.items():
        events = [e for e in found.events if e.label == label]
        assert events, f"no {label} event found: {found.events}"
        best = max(events, key=lambda e: min(e.offset, off) - max(e.onset, on))
        assert min(best.offset, off) - max(best.onset, on) > 0.5 * (off - on), (label, best, on, off)


def test_strong_task_refuses_what_does_not_fit(strong_set, tmp_path):
    with pytest.raises(DataError, match="TSV of events"):
        TaskDataModule("strong", strong_set.parent)
    bad = tmp_path / "bad.tsv"
    bad.write_text("filename\tonset\toffset\tevent_label\nf0.wav\tsoon\t2\tbeep\n")
    with pytest.raises(DataError, match="line 2: onset and offset must be numbers"):
        read_strong_tsv(bad)
    val = strong_set.parent / "val_unknown.tsv"
    val.write_text("f0.wav\t0.1\t0.5\tsiren\n")
    with pytest.raises(DataError, match="not in the training set: siren"):
        strong_split(strong_set, val)
    data = TaskDataModule("strong", strong_set, data_config("strong"))
    tagger = dymn.load("mn", width_mult=0.1, num_classes=2, pretrained=False)
    with pytest.raises(DataError, match="strong task trains frame-level detectors"):
        fit(tagger, data, train_config("strong", "mn", data.num_train, {"epochs": 1}), tmp_path / "x")


def test_cli_finetune_strong(strong_set, tmp_path, capsys):
    from dymn.cli.main import main

    out = tmp_path / "cli"
    rc = main(["finetune", "strong", "--data", str(strong_set), "--model", "fmn04", "--from-scratch", "--epochs", "1",
               "--batch-size", "4", "--out", str(out)])  # fmt: skip
    assert rc == 0
    assert f"dymn detect FILE --model {out / 'model.pt'}" in capsys.readouterr().out
    assert main(["finetune", "strong", "--data", str(strong_set), "--out", str(tmp_path / "y")]) == 2
    assert "--model fmn10_tf256" in capsys.readouterr().err


def test_a_strong_tsv_is_streamed_and_stops_at_the_first_problems(tmp_path):
    """100 MB of missing file names fails after the first ten, in bounded memory (an RLIMIT_AS child); a huge
    onset, a 200,000-character field and bytes that are not UTF-8 are one-line errors."""
    from dymn.datasets.common import DataError

    big = tmp_path / "big.tsv"
    with big.open("w") as f:
        row = "missing/{:09d}.wav\t0.5\t1.5\tbeep\n"
        for i in range(3_600_000):
            f.write(row.format(i))
    assert big.stat().st_size > 100e6
    code = ("from dymn.datasets.strong import read_strong_tsv\nfrom dymn.datasets.common import DataError\n"
            "try:\n    read_strong_tsv(sys.argv[1])\nexcept DataError as e:\n    print('refused:', e)\n")  # fmt: skip
    done = limited_child(code, str(big), timeout=120)
    assert done.returncode == 0 and "names 10 (stopped there) missing" in done.stdout, done.stdout + done.stderr
    for content, message in [(b"a.wav\t1\t1e308\tbeep\n", "line 1: need 0 <= onset <= offset"),
                             (b"a.wav\t1\t2\t" + b"x" * 200_000 + b"\n", "line 1"),
                             (b"a.wav\t1\t2\tb\xe9ep\n", "not UTF-8")]:  # fmt: skip
        bad = tmp_path / "bad.tsv"
        bad.write_bytes(content)
        (tmp_path / "a.wav").write_bytes(b"")
        with pytest.raises(DataError, match=message):
            read_strong_tsv(bad)
