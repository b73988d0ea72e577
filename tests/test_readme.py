"""The README's examples run, so it cannot promise what the code does not do.

Python blocks run as written; `dymn ...` lines of bash blocks run through the CLI; the console example is
compared with the real checkpoint's output; every flag in the command synopsis exists. Downloads are served
from a cache of stand-in weights (random, in the released layouts), except the console example, which uses
the real mn04_as checkpoint from ../shared. Commands that need public datasets (ESC-50, AudioSet) are
skipped: they are covered by the training tests on generated data in the same layouts.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import dymn
from dymn.cli.main import build_parser, main

from .conftest import AUDIO, REAL_WEIGHTS, ROOT
from .hub.hubserver import HubStandIn
from .train.tinydata import tone

README = (ROOT / "README.md").read_text(encoding="utf-8")
NEEDS_DATASETS = ("ESC-50/", "audioset_hdf5/")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def commands(block: str) -> list[str]:
    text = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.startswith("dymn ")]


def _clip(path: Path, seconds: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, (rng.standard_normal(int(seconds * 16000)) * 0.05).astype(np.float32), 16000)
    return path


@pytest.fixture()
def workdir(tmp_path, monkeypatch, release_cache):
    release_cache("dymn10_as", "mn10_as", "dymn04_as", "mn04_as", "fmn10_tf256")
    monkeypatch.chdir(tmp_path)
    for name, secs, seed in (("a.wav", 3, 0), ("clip.wav", 4, 2), ("new_clip.wav", 2, 3)):
        _clip(tmp_path / name, secs, seed)
    sf.write(tmp_path / "b.flac", np.random.default_rng(1).standard_normal(32000).astype(np.float32) * 0.05, 16000)
    sf.write(tmp_path / "hour.flac", np.random.default_rng(4).standard_normal(16000 * 25) * 0.05, 16000)
    for c, f in (("dog", 300), ("bell", 900)):
        (tmp_path / "my_sounds" / c).mkdir(parents=True)
        for i in range(5):
            sf.write(tmp_path / "my_sounds" / c / f"{i}.wav", tone(f + 10 * i, 0.5, seed=i), 32000)
    rows = ["filename,labels"] + [f"my_sounds/{c}/{i}.wav,{c};loud" for c in ("dog", "bell") for i in range(5)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    events = ["filename\tonset\toffset\tevent_label", "a.wav\t0.5\t1.2\tknock", "clip.wav\t1.0\t2.5\tknock",
              "clip.wav\t2.0\t3.0\tbell", "b.flac\t0.1\t0.9\tbell"]  # fmt: skip
    (tmp_path / "events.tsv").write_text("\n".join(events) + "\n")
    return tmp_path


def test_python_examples_run(workdir):
    code = "\n\n".join(blocks("python"))
    assert "dymn.load(" in code
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (workdir / "hour.png").stat().st_size > 0


# the command in a process of its own, with the registry entries this process serves stand-in weights for
_WITH_STAND_INS = """import ast, dataclasses, sys
import dymn.hub.registry as r
for name in ast.literal_eval(sys.argv[1]):
    r._REGISTRY[name] = dataclasses.replace(r._REGISTRY[name], sha256=None)
from dymn.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _stand_ins() -> list[str]:
    return [n for n in dymn.list_models() if dymn.get_pretrained_cfg(n).sha256 is None]


def _own_process(argv: list[str]) -> bool:
    """Ray and the Hub client run in a process of their own: Ray shut down inside a test process that had run the
    rest of the suite died with SIGSEGV in ray.shutdown() (depending on the tests before it), and huggingface_hub
    reads HF_ENDPOINT once, when imported."""
    return argv[:1] in (["batch"], ["hub"]) or "--push-to-hub" in argv or any(a.startswith("hf-hub:") for a in argv)


def test_shell_examples_run(workdir, capsys):
    ran = 0
    with HubStandIn() as hub:  # the Hub that `dymn hub push` and hf-hub: names reach
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(workdir / "hf-cache"), HF_TOKEN="hf_stand_in",
                   HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")  # fmt: skip
        for block in blocks("bash"):
            for cmd in commands(block):
                argv = shlex.split(cmd)[1:]
                if argv[:1] in (["install"], ["serve"]) or any(d in cmd for d in NEEDS_DATASETS):
                    continue  # `dymn serve` runs until stopped: test_serve_example_runs
                if _own_process(argv):
                    proc = subprocess.run([sys.executable, "-c", _WITH_STAND_INS, repr(_stand_ins()), *argv],
                                          capture_output=True, text=True, timeout=900, env=env)  # fmt: skip
                    assert proc.returncode == 0, f"README command failed: {cmd}\n{proc.stderr[-3000:]}"
                else:
                    assert main(argv) == 0, f"README command failed: {cmd}\n{capsys.readouterr().err}"
                ran += 1
        assert [r for r, _, _ in hub.pushed] == ["your-name/my-sounds", "your-name/my-sounds"]
    assert ran >= 4
    out = capsys.readouterr().out
    assert "clip.wav" in out and "new_clip.wav" in out
    assert (workdir / "my-sounds" / "model.safetensors").is_file() and (workdir / "released" / "mn04_as").is_dir()


def test_console_example_is_real_output(tmp_path, monkeypatch, capsys):
    real = AUDIO / "metro_station-paris.wav"
    if not (REAL_WEIGHTS.exists() and real.exists()):
        pytest.skip("the real mn04_as checkpoint and clip are in ../shared, not part of a clone")
    (block,) = blocks("console")
    cmd, *expected = block.strip().splitlines()
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(REAL_WEIGHTS, cache / dymn.get_pretrained_cfg("mn04_as").filename)
    shutil.copy(real, tmp_path / real.name)
    monkeypatch.setenv("DYMN_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(cmd.removeprefix("$ "))[1:]) == 0
    assert capsys.readouterr().out.splitlines() == expected


def test_synopsis_flags_exist():
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    (synopsis,) = [b for b in blocks("text") if b.startswith("dymn tag")]
    command = parser_of = None
    for line in synopsis.splitlines():
        if line.startswith("dymn "):
            command = line.split()[1]
            parser_of = sub.choices[command]
            nested = [a for a in parser_of._actions if isinstance(a, argparse._SubParsersAction)]
            if nested:  # dymn hub save ...: the action's own flags
                parser_of = nested[0].choices[line.split()[2]]
        known = {s for a in parser_of._actions for s in a.option_strings}
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-o)\b", line.split("#")[0]):
            assert flag in known, f"README synopsis: dymn {command} has no {flag}"


def test_serve_example_runs(workdir, release_cache):
    """The `dymn serve` block: the server as a real process (on a free port), then its curl lines."""
    import os
    import subprocess

    pytest.importorskip("fastapi", reason="the service needs the [serve] extra")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    from .service.conftest import Server

    (block,) = [b for b in blocks("bash") if "dymn serve" in b]
    serve_cmd = next(c for c in commands(block) if c.startswith("dymn serve"))
    args = shlex.split(serve_cmd)[2:]
    if not REAL_WEIGHTS.exists():  # a stand-in of mn04_as cannot pass its published sha256 in another process
        release_cache("mn01_as")
        args = ["mn01_as" if a == "mn04_as" else a for a in args]
    server = Server(args, {**os.environ})  # Server adds --port
    try:
        curls = [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("curl ")]
        assert len(curls) >= 2
        for line in curls:
            line = line.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
            out = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=120, cwd=workdir)
            assert out.returncode == 0 and '"model"' in out.stdout and '"error"' not in out.stdout, out.stdout
    finally:
        server.stop()


def test_counts_come_from_the_code():
    """Every count of models the README states is the registry's."""
    names = dymn.list_models()
    cfgs = [dymn.get_pretrained_cfg(n) for n in names]
    assert int(re.search(r"`dymn models --all` lists all (\d+) released entries", README)[1]) == len(names)
    published, files = map(int, re.search(r"\((\d+) of the (\d+) files\)", README).groups())
    assert (published, files) == (sum(1 for c in cfgs if c.sha256), len({c.filename for c in cfgs}))
    assert int(re.search(r"all (\d+) released detectors", README)[1]) == sum(1 for c in cfgs if c.arch == "fmn")
    claims = re.findall(r"lists (?:all |the )?(\d+)", README)
    assert len(claims) == 1, f"a count of models the test does not check: {claims}"
