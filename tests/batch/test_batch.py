"""Corpus jobs on Ray: inputs, shards, resume, faults, a two-node cluster, equality with the single-process
commands. Each test starts and stops its own Ray (a local instance, or a cluster of two nodes on this machine)."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import dymn

if importlib.util.find_spec("ray") is None:  # found, not imported: Ray runs only in the jobs' own processes
    pytest.skip("batch jobs need the [batch] extra (ray)", allow_module_level=True)
pq = pytest.importorskip("pyarrow.parquet")

from dymn.batch.jobs import BatchError, expand_inputs, plan_shards  # noqa: E402
from dymn.cli.main import main  # noqa: E402

from ..conftest import REAL_WEIGHTS  # noqa: E402
from ..train.tinydata import tone  # noqa: E402
from .child import in_child, run_job  # noqa: E402

MODEL = "mn01_as"  # tiny, no published sha256: a stand-in works in subprocesses too
SLOW = "dymn10_as"  # slow enough on 10 s clips for a job to be stopped or hurt half-way


def _corpus(root: Path, n: int = 7, seconds: float = 1.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(root / f"clip{i:03d}.wav", tone(200 + 50 * i, seconds + 0.1 * (i % 3), seed=i), 32000)
    (root / "broken.wav").write_bytes(b"RIFF not really audio")
    return root


def _rows(out: Path) -> list[dict]:
    files = sorted(out.glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def _one_thread(fn):
    """Run ``fn`` with PyTorch on one thread, as a batch job's model actors run (see dymn.batch)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def test_inputs_folders_globs_manifests(tmp_path):
    data = _corpus(tmp_path / "a", 3)
    (tmp_path / "notes.txt").write_text("x")
    folder = expand_inputs([str(data)])
    assert [Path(p).name for p in folder] == ["broken.wav", "clip000.wav", "clip001.wav", "clip002.wav"]
    assert expand_inputs([str(data / "clip*.wav"), str(data / "clip000.wav")]) == folder[1:]  # no duplicates
    (tmp_path / "m.csv").write_text("path,other\na/clip001.wav,x\na/missing.wav,y\n")
    listed = expand_inputs([str(tmp_path / "m.csv")])
    assert listed == [str(data / "clip001.wav"), str(data / "missing.wav")]  # relative to the manifest, kept
    import pyarrow as pa

    pq.write_table(pa.table({"path": [str(data / "clip002.wav")]}), tmp_path / "m.parquet")
    assert expand_inputs([str(tmp_path / "m.parquet")]) == [str(data / "clip002.wav")]
    (tmp_path / "bad.csv").write_text("file\nx.wav\n")
    with pytest.raises(BatchError, match="needs a 'path' column"):
        expand_inputs([str(tmp_path / "bad.csv")])
    with pytest.raises(BatchError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.flac")])
    a, b = plan_shards(folder, 3), plan_shards(folder, 3)
    assert [s.name for s in a] == [s.name for s in b] and len(a) == 2 and a[0].name.startswith("part-000000-")


def test_tag_embed_timeline_equal_the_single_process_commands(tmp_path, release_cache, capsys):
    name = "mn04_as" if REAL_WEIGHTS.exists() else MODEL
    release_cache(name)
    data = _corpus(tmp_path / "data")
    out = tmp_path / "tags"
    summary = run_job("tag", [str(data), str(tmp_path / "gone.wav")], str(out), model=name, shard_size=3,
                  batch_size=2, all_probabilities=True, progress=False)  # fmt: skip
    # shards hold whole chunks of `dymn tag` (16 files at batch 2): 3 asked, 16 used
    assert (summary.done, summary.failed, summary.skipped, summary.shards) == (9, 2, 0, 1)
    rows = _rows(out)
    assert sorted(r["path"] for r in rows) == sorted(expand_inputs([str(data), str(tmp_path / "gone.wav")]))
    bad = {Path(r["path"]).name: r["error"] for r in rows if r["status"] == "error"}
    assert set(bad) == {"broken.wav", "gone.wav"} and "no such file" in bad["gone.wav"]
    assert all(r["labels"] is None and r["all_probabilities"] is None for r in rows if r["status"] == "error")
    assert main(["tag", str(data), "--model", name, "--format", "json", "-o", str(tmp_path / "t.json")]) == 1
    single = {r["file"]: r for r in json.loads((tmp_path / "t.json").read_text())}
    ref = _one_thread(lambda: main(["tag", str(data), "--model", name, "--format", "json", "-o",
                                    str(tmp_path / "t1.json"), "--batch-size", "2"]))  # fmt: skip
    assert ref == 1
    single = {r["file"]: r for r in json.loads((tmp_path / "t1.json").read_text())}
    for r in rows:
        if r["status"] == "ok":
            s = single[r["path"]]
            assert r["labels"] == [t["label"] for t in s["tags"]] and r["duration"] == s["duration"]
            assert r["probabilities"] == [np.float32(t["probability"]) for t in s["tags"]]  # the same numbers
            assert len(r["all_probabilities"]) == 527
    # embeddings
    run_job("embed", [str(data)], str(tmp_path / "emb"), model=name, progress=False)
    _one_thread(lambda: main(["embed", str(data), "--model", name, "--out", str(tmp_path / "e.npz")]))
    ref = np.load(tmp_path / "e.npz")
    got = {r["path"]: r["embedding"] for r in _rows(tmp_path / "emb") if r["status"] == "ok"}
    for f, e in zip(ref["files"], ref["embeddings"]):
        np.testing.assert_array_equal(np.asarray(got[str(f)], np.float32), e)
    # timelines: windows and events as `dymn timeline --format json`
    clip = data / "clip004.wav"
    run_job("timeline", [str(clip)], str(tmp_path / "tl"), model=name, window=0.5, hop=0.25, progress=False)
    (row,) = _rows(tmp_path / "tl")
    capsys.readouterr()
    _one_thread(lambda: main(["timeline", str(clip), "--model", name, "--window", "0.5", "--hop", "0.25",
                              "--format", "json", "--top-k", "10"]))  # fmt: skip
    ref = json.loads(capsys.readouterr().out)
    assert len(row["window_start"]) == len(ref["windows"]) > 1
    for w, win in enumerate(ref["windows"]):
        assert row["window_top_labels"][w] == list(win["scores"]) and row["window_start"][w] == win["start"]
        assert [round(float(p), 4) for p in row["window_top_probabilities"][w]] == list(win["scores"].values())
    assert [(e["label"], e["onset"], e["offset"]) for e in row["events"]] == [
        (e["label"], e["onset"], e["offset"]) for e in ref["events"]
    ]


def test_output_folder_of_another_job_is_refused(tmp_path, release_cache):
    release_cache(MODEL)
    data = _corpus(tmp_path / "data", 2)
    # through pyarrow's filesystems (as s3:// or gs:// would go): listing, reading, writing the shards
    uri = run_job("tag", [f"file://{data}"], f"file://{tmp_path / 'uri'}", model=MODEL, progress=False)
    assert (uri.done, uri.failed) == (3, 1)
    assert sorted(r["path"] for r in _rows(tmp_path / "uri")) == [
        f"file://{data}/{n}" for n in ("broken.wav", "clip000.wav", "clip001.wav")
    ]
    run_job("tag", [str(data)], str(tmp_path / "out"), model=MODEL, progress=False)
    again = run_job("tag", [str(data)], str(tmp_path / "out"), model=MODEL, progress=False)
    assert again.done == 0 and again.skipped == 3  # nothing twice
    with pytest.raises(BatchError, match="different job .*top_k|different job .*options"):
        run_job("tag", [str(data)], str(tmp_path / "out"), model=MODEL, top_k=3, progress=False)
    with pytest.raises(BatchError, match="different job .*command"):
        run_job("embed", [str(data)], str(tmp_path / "out"), model=MODEL, progress=False)
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "x.parquet").write_bytes(b"")
    with pytest.raises(BatchError, match="not a dymn batch job"):
        run_job("tag", [str(data)], str(stray), model=MODEL, progress=False)
    t = time.monotonic()
    assert main(["batch", "tag", str(data), "-o", str(tmp_path / "o2"), "--address", "127.0.0.1:9"]) == 1
    assert time.monotonic() - t < 30


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dymn.cli", "batch", *args]


def _wait_for(cond, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_stopped_job_resumes_to_the_uninterrupted_result(tmp_path, release_cache):
    release_cache(SLOW)
    data = _corpus(tmp_path / "data", 111, seconds=10.0)  # 112 files with the broken one: 7 shards
    args = ["tag", str(data), "--model", SLOW, "--shard-size", "16", "--batch-size", "1"]
    # Ctrl-C once the first shard is written: exit status 130, no traceback, never a half-written shard. Ray Data
    # may hand the driver its results in a burst, so the job can also be complete before the signal lands.
    part = tmp_path / "part"
    proc = subprocess.Popen(_cli(*args, "-o", str(part)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for(lambda: len(list(part.glob("*.parquet"))) >= 1, 180), proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    done = len(list(part.glob("*.parquet")))
    assert (proc.returncode == 130 and done < 7) or (proc.returncode == 1 and done == 7), (proc.returncode, done)
    assert "Traceback" not in err, err[-2000:]
    assert not [p for p in part.iterdir() if p.name.endswith(".tmp")]  # complete shards only
    # a job that died after some shards: those are kept, the rest done, and the result is the uninterrupted one
    full = run_job("tag", [str(data)], str(tmp_path / "full"), model=SLOW, shard_size=16, batch_size=1, progress=False)
    assert full.done == 112 and full.shards == 7
    shards = sorted(p.name for p in (tmp_path / "full").glob("*.parquet"))
    for name in [p.name for p in part.glob("*.parquet")]:
        (part / name).unlink()
    for name in shards[:3]:  # the state of a job killed after three shards
        shutil.copy(tmp_path / "full" / name, part / name)
    again = subprocess.run(_cli(*args, "-o", str(part)), capture_output=True, text=True, timeout=300)
    assert "48 skipped as already done" in again.stdout, again.stdout + again.stderr[-2000:]
    assert sorted(p.name for p in part.glob("*.parquet")) == shards
    assert _rows(part) == _rows(tmp_path / "full")


def test_killed_model_actor_is_retried_and_every_input_appears_once(tmp_path, release_cache):
    psutil = pytest.importorskip("psutil")
    release_cache(SLOW)
    data = _corpus(tmp_path / "data", 111, seconds=10.0)
    out = tmp_path / "out"
    cmd = _cli("tag", str(data), "--model", SLOW, "--shard-size", "16", "--batch-size", "1", "-o", str(out))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def actors():
        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "ModelWorker" in cmd and "ray::" in cmd:
                found.append(p)
        return found

    assert _wait_for(lambda: len(list(out.glob("*.parquet"))) >= 1 and actors(), 180), "no model actor seen"
    killed = actors()
    for p in killed:
        try:
            p.kill()  # SIGKILL: the process is gone mid-job
        except psutil.NoSuchProcess:
            pass
    stdout, stderr = proc.communicate(timeout=300)
    assert killed and len(list(out.glob("*.parquet"))) == 7
    assert proc.returncode == 1 and "112 files done (1 failed)" in stdout, stderr[-3000:]
    paths = [r["path"] for r in _rows(out)]
    assert len(paths) == len(set(paths)) == 112


def test_two_node_cluster(tmp_path, release_cache):
    release_cache(MODEL)
    data = _corpus(tmp_path / "data", 39)
    summary = in_child("tests.batch.child.two_node_job", str(data), str(tmp_path / "out"), MODEL)
    assert (summary.done, summary.failed, summary.shards) == (40, 1, 3)
    assert sorted(r["path"] for r in _rows(tmp_path / "out")) == expand_inputs([str(data)])


def test_cli_help_and_usage(capsys):
    with pytest.raises(SystemExit):
        main(["batch", "--help"])
    text = capsys.readouterr().out
    assert "--address" in text and "--gpus-per-worker" in text and "default" in text
    assert main(["batch", "tag", "x.wav", "-o", "o", "--batch-size", "0"]) == 2
    assert os.path.exists("o") is False


def test_detectors_detect_and_timeline_as_the_single_process_commands(tmp_path, release_cache, capsys):
    detector = "fmn04_tf104"
    release_cache(detector, MODEL)
    data = _corpus(tmp_path / "data", n=2, seconds=3.0)
    sf.write(data / "long.wav", tone(900, 12.0, sr=16000), 16000)
    run_job("detect", [str(data)], str(tmp_path / "det"), model=detector, events={"threshold": 0.2}, progress=False)
    rows = {Path(r["path"]).name: r for r in _rows(tmp_path / "det")}
    assert rows["broken.wav"]["status"] == "error" and rows["broken.wav"]["events"] is None
    for name in ("clip000.wav", "long.wav"):
        args = ["detect", str(data / name), "--model", detector, "--threshold", "0.2", "--format", "json"]
        _one_thread(lambda: main(args))  # noqa: B023 (called at once)
        ref = json.loads(capsys.readouterr().out)[0]
        assert rows[name]["duration"] == ref["duration"]
        assert [(e["label"], e["onset"], e["offset"]) for e in rows[name]["events"]] == [
            (e["label"], e["onset"], e["offset"]) for e in ref["events"]]  # fmt: skip
    run_job("timeline", [str(data / "long.wav")], str(tmp_path / "tl"), model=detector, progress=False)
    (row,) = _rows(tmp_path / "tl")
    assert len(row["window_start"]) == 300 and row["window_end"][0] == pytest.approx(0.04)  # its 40 ms frames
    with pytest.raises(dymn.UsageError, match="frame-level detector: use `dymn batch detect`"):
        run_job("tag", [str(data)], str(tmp_path / "x"), model=detector, progress=False)
    with pytest.raises(dymn.UsageError, match="clip-level tagger"):
        run_job("detect", [str(data)], str(tmp_path / "y"), model=MODEL, progress=False)


def test_an_existing_path_is_not_a_pattern(tmp_path):
    literal = tmp_path / "take[1].wav"
    sf.write(literal, tone(300, 0.5, seed=0), 32000)
    sf.write(tmp_path / "take1.wav", tone(300, 0.5, seed=1), 32000)
    assert expand_inputs([str(literal)]) == [str(literal)]
    folder = tmp_path / "set[a]"
    folder.mkdir()
    sf.write(folder / "x.wav", tone(300, 0.5, seed=2), 32000)
    assert expand_inputs([str(folder)]) == [str(folder / "x.wav")]
    assert expand_inputs([str(tmp_path / "take?.wav")]) == [str(tmp_path / "take1.wav")]  # a pattern still is one


def _damage(path: Path, how: str, other: Path) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbled":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 64]) + data[mid + 64 :])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # another shard's rows under this shard's name
        path.write_bytes(other.read_bytes())


def test_a_damaged_shard_is_done_again_and_odd_names_are_kept(tmp_path, release_cache):
    """Resume counts a shard as done only when it reads back whole and holds exactly its inputs; a file name that
    is not UTF-8 is tagged like any other and kept exactly (path_bytes), shown escaped (path). The first run is
    the CLI in a log, not on a terminal: the one-time backend measurement happens on the driver, with its
    messages, and each written shard gets a line (before, a job was silent for minutes while its workers
    measured)."""
    cache = release_cache(MODEL)
    data = _corpus(tmp_path / "data", 78, seconds=0.5)
    odd = os.fsdecode(bytes(data) + b"/caf\xe9-\xff.wav")  # Latin-1 bytes: not UTF-8
    sf.write(data / "odd.wav", tone(440, 0.5, seed=9), 32000)
    os.rename(data / "odd.wav", odd)  # libsndfile's own open takes UTF-8 names only
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "DYMN_BACKEND"}  # auto: measured once, on the driver
    env["DYMN_CACHE"] = str(cache)
    args = _cli("tag", str(data), "--model", MODEL, "--shard-size", "16", "--batch-size", "2", "-o", str(out))
    first = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 1, first.stderr[-3000:]  # the broken file
    assert "80 files done (1 failed)" in first.stdout and "5 shards" in first.stdout
    assert "measuring the backends for mn01_as at batch 2" in first.stderr and "chosen" in first.stderr
    assert "dymn: batch tag: 1 of 5 shard(s) written" in first.stderr
    assert "5 of 5 shard(s) written (80 files, 1 failed" in first.stderr
    rows = _rows(out)
    assert len(rows) == 80
    (row,) = [r for r in rows if r["path_bytes"] == os.fsencode(odd)]
    assert row["status"] == "ok" and row["path"].endswith("caf\\xe9-\\xff.wav") and row["labels"]
    reference = {r["path_bytes"]: r for r in rows}
    shards = sorted(out.glob("*.parquet"))
    for shard, how in zip(shards[1:], ("truncated", "garbled", "empty", "duplicate")):
        _damage(shard, how, shards[0])
    again = run_job("tag", [str(data)], str(out), model=MODEL, shard_size=16, batch_size=2, progress=False)
    assert again.skipped == 16 and again.done == 64 and again.damaged == [s.name for s in shards[1:]]
    assert {r["path_bytes"]: r for r in _rows(out)} == reference
    (out / "copy.parquet").write_bytes(shards[0].read_bytes())
    with pytest.raises(BatchError, match="not this job's shards"):
        run_job("tag", [str(data)], str(out), model=MODEL, shard_size=16, batch_size=2, progress=False)
