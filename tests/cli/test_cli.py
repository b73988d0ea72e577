import json
import os

import numpy as np
import pytest
import soundfile as sf

import dymn
from dymn.cli.main import main

EXPECTED = {"Train": 0.727, "Rail transport": 0.578, "Railroad car, train wagon": 0.560,
            "Subway, metro, underground": 0.493}  # fmt: skip


def test_tag_real_checkpoint_text(real_weights, metro_clip, capsys):
    assert main(["tag", str(metro_clip), "--model", "mn04_as", "--weights", str(real_weights), "--top-k", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("(10.00 s)")
    got = {line.strip().rsplit(": ", 1)[0]: float(line.rsplit(": ", 1)[1]) for line in out[1:]}
    assert got.keys() == EXPECTED.keys()
    for k, v in EXPECTED.items():
        assert abs(got[k] - v) <= 0.01


def test_tag_json_and_csv(real_weights, metro_clip, capsys, tmp_path):
    args = ["tag", str(metro_clip), "--model", "mn04_as", "--weights", str(real_weights)]
    assert main(args + ["--format", "json", "--top-k", "0"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["file"] == str(metro_clip) and abs(data[0]["duration"] - 10) < 0.01
    tags = data[0]["tags"]
    assert len(tags) == 527 and tags[0]["label"] == "Train" and tags[0]["index"] == 329
    assert all(a["probability"] >= b["probability"] for a, b in zip(tags, tags[1:]))
    out = tmp_path / "tags.csv"
    assert main(args + ["--format", "csv", "--top-k", "2", "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "file,duration,rank,label,index,probability" and len(lines) == 3


def test_tag_directory_with_bad_files(tiny_mn_checkpoint, tmp_path, capsys):
    d = tmp_path / "clips"
    (d / "sub").mkdir(parents=True)
    for name in ["a.wav", "sub/b.flac"]:
        sf.write(d / name, np.random.default_rng(0).standard_normal(16000) * 0.1, 16000)
    sf.write(d / "short.wav", np.ones(160, dtype=np.float32) * 0.1, 32000)  # 5 ms
    (d / "empty.wav").write_bytes(b"")
    (d / "text.wav").write_text("hello")
    nan = np.zeros(1000, dtype=np.float32)
    nan[5] = np.nan
    sf.write(d / "nan.wav", nan, 32000, subtype="FLOAT")
    good = (d / "a.wav").read_bytes()
    (d / "trunc.wav").write_bytes(good[: len(good) // 3])
    rc = main(["tag", str(d), str(tmp_path / "missing.wav"), "--weights", str(tiny_mn_checkpoint),
               "--format", "json"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 1
    tagged = {r["file"].rsplit("/", 1)[-1] for r in json.loads(captured.out)}
    assert tagged == {"a.wav", "b.flac", "short.wav"}
    err = captured.err.strip().splitlines()
    for name in ["empty.wav", "text.wav", "nan.wav", "trunc.wav", "missing.wav"]:
        assert sum(name in line for line in err) == 1, name
    assert any("short.wav" in line and "unreliable" in line for line in err)
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    "args,msg",
    [
        (["tag", "x.wav", "--model", "nonexistent"], "unknown model name"),
        (["tag", "x.wav", "--top-k", "-1"], "--top-k"),
        (["tag", "x.wav", "--batch-size", "0"], "--batch-size"),
        (["info", "nonexistent"], "unknown model name"),
    ],
)
def test_usage_errors_are_one_line(args, msg, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_plain_weights_need_model_name(real_weights, metro_clip, capsys):
    assert main(["tag", str(metro_clip), "--weights", str(real_weights)]) == 2
    assert "--model" in capsys.readouterr().err


def test_imagenet_model_refused(tiny_mn_checkpoint, capsys, tmp_path):
    assert main(["tag", "x.wav", "--model", "mn01_im", "--weights", str(tiny_mn_checkpoint)]) == 2
    assert "ImageNet initialisation" in capsys.readouterr().err
    assert main(["tag", "x.wav", "--model", "mn"]) == 2  # random weights tag nothing meaningful
    assert "randomly initialised" in capsys.readouterr().err


def test_models_and_info(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dymn10_as" in out and "47.7" in out and "mn01_im" not in out
    assert main(["models", "--all", "im"]) == 0
    assert "mn01_im" in capsys.readouterr().out
    assert main(["info", "dymn10_as"]) == 0
    out = capsys.readouterr().out
    assert "10,548,479" in out and "0.582 G" in out and "595" in out
    assert main(["info", "fmn10_tf256"]) == 0  # a detector: the spec's parameter count, its PSDS1
    out = capsys.readouterr().out
    assert "5,028,286" in out and "447 classes per frame" in out and "43.86 (AudioSet Strong)" in out


def test_missing_weights_file_is_a_failed_input(capsys):
    assert main(["tag", "x.wav", "--weights", "/nonexistent/w.pt"]) == 1
    err = capsys.readouterr().err
    assert "no such weights file" in err and len(err.splitlines()) == 1


def test_network_failure_is_exit_1_not_usage(monkeypatch, tmp_path, tone_wav, capsys):
    # finding 8: a failed download is a failed run (1), not a usage error (2)
    import dymn.models.pretrained

    monkeypatch.setenv("DYMN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(dymn.models.pretrained, "RELEASE_URL", "http://127.0.0.1:9/")  # nothing listens there
    assert main(["tag", str(tone_wav), "--model", "mn01_as"]) == 1
    err = capsys.readouterr().err
    assert "could not download the weights of mn01_as" in err and len(err.splitlines()) == 1


def test_info_on_checkpoints(tiny_mn_checkpoint, tmp_path, capsys):
    # finding 4: a self-describing checkpoint needs no name; a plain one gets the names that fit
    assert main(["info", "--weights", str(tiny_mn_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "mn01_as (mn)" in out and "file " in out
    plain = dymn.save_checkpoint(dymn.load("mn04_as", pretrained=False), tmp_path / "plain.pt", plain=True)
    assert main(["info", "--weights", str(plain)]) == 2
    err = capsys.readouterr().err
    assert "fits mn04_as" in err and len(err.splitlines()) == 1
    assert main(["info", "mn04_as", "--weights", str(plain)]) == 0
    for bad in (["--seconds", "-5"], ["--seconds", "100000"]):
        assert main(["info", "mn01_as", *bad]) == 2


def test_text_file_as_weights_says_what_it_is(tmp_path, tone_wav, capsys):
    # finding 5: no "pickled objects", no ANSI codes, no torch text cut off
    txt = tmp_path / "weights.pt"
    txt.write_text("these are not weights\n")
    assert main(["tag", str(tone_wav), "--model", "mn01_as", "--weights", str(txt)]) == 1
    err = capsys.readouterr().err
    assert "not a checkpoint: it is a text file" in err and "state dict" in err
    assert "\x1b" not in err and "pickled" not in err and len(err.splitlines()) == 1


def test_output_that_is_an_input_is_refused(tiny_mn_checkpoint, tone_wav, capsys):
    before = tone_wav.read_bytes()
    assert main(["tag", str(tone_wav), "--weights", str(tiny_mn_checkpoint), "-o", str(tone_wav)]) == 2
    assert tone_wav.read_bytes() == before and "one of the input files" in capsys.readouterr().err


def test_unknown_name_suggestions(capsys):
    # finding 9: mn4 must suggest mn04_as
    assert main(["tag", "x.wav", "--model", "mn4"]) == 2
    assert "did you mean mn04_as" in capsys.readouterr().err


def test_every_flag_has_help_and_shows_its_default():
    # finding 10
    import argparse

    from dymn.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sp in sub.choices.items():
        for action in sp._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"dymn {name} {action.option_strings or action.dest} has no help"
        text = sp.format_help()
        if name == "tag":
            assert "(default: 10)" in text and "(default: 8)" in text


def test_argument_mistakes_are_one_line(tmp_path, tone_wav, tiny_mn_checkpoint, capsys):
    # issue 9, finding 10
    assert main(["tag", str(tone_wav), "--weights", str(tiny_mn_checkpoint), "--device", "foo"]) == 2
    assert "unknown device 'foo'" in capsys.readouterr().err
    assert main(["tag", str(tone_wav), "--weights", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is a directory, not a weights file" in err and len(err.splitlines()) == 1


def test_console_entry_exits_with_the_commands_status(tiny_mn_checkpoint, tone_wav, tmp_path):
    """`dymn` (the console script) freezes the heap before exiting, to skip the last collection: the
    status and the output must be those of main."""
    import subprocess
    import sys

    entry = "import sys; from dymn.cli.main import entry; sys.argv[1:] = {!r}; entry()"
    ok = subprocess.run([sys.executable, "-c", entry.format(["tag", str(tone_wav), "--weights",
                         str(tiny_mn_checkpoint), "--format", "json"])], capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["file"] == str(tone_wav)
    bad = subprocess.run([sys.executable, "-c", entry.format(["tag", str(tmp_path / "missing.wav"), "--weights",
                          str(tiny_mn_checkpoint)])], capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "missing.wav" in bad.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_results_that_cannot_be_written_are_one_line_errors(tiny_mn_checkpoint, tone_wav, tmp_path, fmt, capsys):
    import subprocess
    import sys

    entry = "import sys; from dymn.cli.main import entry; sys.argv[1:] = {!r}; entry()"
    args = ["tag", str(tone_wav), "--weights", str(tiny_mn_checkpoint), "--format", fmt]
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", entry.format(args)], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == ("dymn: error: cannot write the results to standard output (No "
                                                    "space left on device)")  # fmt: skip
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    # an output folder that does not exist is an output failure too: exit 1, as the README says
    assert main([*args, "-o", str(tmp_path / "nonexistent" / "x.json")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_no_pad_gives_the_unpadded_scores(tone_wav, tmp_path, capsys):
    """`--no-pad` is Tagger(pad=False): a 2 s clip is fed as it is, which changes its scores."""
    import torch

    torch.manual_seed(0)
    model = dymn.load("mn01_as", pretrained=False)
    for m in model.modules():  # statistics of a trained network: outputs that depend on the input
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    tiny_mn_checkpoint = tmp_path / "m.pt"
    dymn.save_checkpoint(model, tiny_mn_checkpoint)
    args = ["tag", str(tone_wav), "--weights", str(tiny_mn_checkpoint), "--format", "json", "--top-k", "0"]
    assert main(args) == 0
    padded = {t["label"]: t["probability"] for t in json.loads(capsys.readouterr().out)[0]["tags"]}
    assert main([*args, "--no-pad"]) == 0
    unpadded = {t["label"]: t["probability"] for t in json.loads(capsys.readouterr().out)[0]["tags"]}
    tagger = dymn.Tagger(dymn.load(tiny_mn_checkpoint), pad=False, backend="torch")
    (result,) = tagger.tag_files([tone_wav], top_k=0)
    assert unpadded == pytest.approx({t.label: t.probability for t in result.tags}, abs=1e-4)
    assert max(abs(padded[k] - unpadded[k]) for k in padded) > 0  # (a random network: small differences)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["timeline", "x.wav", "--median", "200001"], "median"),
        (["timeline", "x.wav", "--window", "0.001"], "window"),
        (["timeline", "x.wav", "--hop", "0.001"], "hop"),
        (["embed", "x.wav", "--out", "e.npz", "--timestamps", "--window", "0.0001"], "window"),
        (["listen", "--stdin", "--rate", "1"], "--rate"),
        (["listen", "--stdin", "--channels", "1000000"], "--channels"),
        (["listen", "--stdin", "--hop", "0.001"], "hop"),
    ],
)
def test_ranges_that_would_cost_hours_or_gigabytes_are_usage_errors(tiny_mn_checkpoint, tone_wav, monkeypatch,
                                                                     args, message, capsys):  # fmt: skip
    """As the service's: one line, exit 2, before any audio is read or memory sized from the value."""
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\0" * 64000)))
    args = [a if a != "x.wav" else str(tone_wav) for a in args]
    assert main([*args, "--weights", str(tiny_mn_checkpoint)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
