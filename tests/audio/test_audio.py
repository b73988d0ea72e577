import numpy as np
import pytest
import soundfile as sf

from dymn.audio.io import AudioError, find_audio_files, load_audio


def test_resample_and_downmix(tone_wav):
    x = load_audio(tone_wav, 32000)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 64000) <= 1
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * 32000 / len(x) - 440) < 2  # the tone survives resampling
    assert abs(np.abs(x).max() - 0.75 * 0.3) < 0.01  # channel mean


@pytest.mark.parametrize("fmt,ext", [("FLAC", ".flac"), ("OGG", ".ogg"), ("MP3", ".mp3"), ("WAV", ".wav")])
def test_formats(tmp_path, fmt, ext):
    path = tmp_path / f"a{ext}"
    x = 0.1 * np.sin(np.linspace(0, 2000, 48000))
    sf.write(path, x, 48000, format=fmt)
    y = load_audio(path, 16000)
    assert abs(len(y) - 16000) < 1200  # mp3 adds encoder padding
    assert np.isfinite(y).all()


def _write(path, content: bytes):
    path.write_bytes(content)
    return path


def test_bad_files(tmp_path):
    cases = {
        "empty.wav": _write(tmp_path / "empty.wav", b""),
        "text.wav": _write(tmp_path / "text.wav", b"this is not audio"),
    }
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(32000, dtype=np.float32), 32000)
    cases["trunc.wav"] = _write(tmp_path / "trunc.wav", good.read_bytes()[:1000])
    cases["header.wav"] = _write(tmp_path / "header.wav", good.read_bytes()[:30])
    nan = np.zeros(1000, dtype=np.float32)
    nan[10] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 32000, subtype="FLOAT")
    cases["nan.wav"] = tmp_path / "nan.wav"
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1), dtype=np.float32), 32000)
    cases["zero.wav"] = tmp_path / "zero.wav"
    cases["missing.wav"] = tmp_path / "missing.wav"
    cases["dir"] = tmp_path
    for name, path in cases.items():
        with pytest.raises(AudioError) as err:
            load_audio(path)
        msg = str(err.value)
        assert str(path) in msg and "\n" not in msg, name


def test_short_clip_is_fine(tmp_path):
    path = tmp_path / "5ms.wav"
    sf.write(path, np.ones(240, dtype=np.float32) * 0.1, 48000)
    assert len(load_audio(path)) == 160


def test_find_audio_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ["b.wav", "a.flac", "sub/c.mp3", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    files, problems = find_audio_files([tmp_path, tmp_path / "missing.wav", tmp_path / "notes.txt"])
    assert [f.name for f in files] == ["a.flac", "b.wav", "c.mp3", "notes.txt"]
    assert len(problems) == 1 and "missing.wav" in problems[0]


# --- hostile and careless files (issue 9) -------------------------------------------------------------------
import os  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import dymn  # noqa: E402
from dymn.audio.io import AudioWarning, read_audio  # noqa: E402

from ..conftest import limited_child  # noqa: E402


def _wav_with_rate(path, rate: int, frames: int):
    sf.write(path, np.zeros(frames, np.int16), 8000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    raw[24:28] = struct.pack("<I", rate)  # sample rate
    raw[28:32] = struct.pack("<I", rate * 2)  # byte rate
    path.write_bytes(bytes(raw))
    return path


def _run_limited(args, gib: float = 4.0):
    """Run the CLI in a child whose address space is capped, so a regression cannot take the machine down."""
    lim = int(gib * 2**30)
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({lim}, {lim})); "
            "from dymn.cli.main import main; sys.exit(main(sys.argv[1:]))")  # fmt: skip
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_one_hertz_header_is_refused_in_bounded_memory(tmp_path, tiny_mn_checkpoint):
    path = _wav_with_rate(tmp_path / "one_hz.wav", 1, 20_000)  # 40 KB declaring 5.5 hours
    with pytest.raises(AudioError, match="sample rate of 1 Hz"):
        read_audio(path)
    r = _run_limited(["tag", str(path), "--weights", str(tiny_mn_checkpoint)])
    assert r.returncode == 1 and "sample rate of 1 Hz" in r.stderr and "Traceback" not in r.stderr


def test_long_files_are_refused_by_tag_and_streamed_by_timeline(tmp_path, tiny_mn_checkpoint):
    path = tmp_path / "silence.flac"
    sf.write(path, np.zeros(20 * 60 * 8000, np.int16), 8000)  # 20 minutes of silence: a tiny FLAC
    assert path.stat().st_size < 2_000_000
    r = _run_limited(["tag", str(path), "--weights", str(tiny_mn_checkpoint)], gib=4.0)
    assert r.returncode == 1 and "use `dymn timeline`" in r.stderr and "Traceback" not in r.stderr
    r = _run_limited(["timeline", str(path), "--weights", str(tiny_mn_checkpoint), "--hop", "10"], gib=4.0)
    assert r.returncode == 0, r.stderr
    assert "(1200.00 s, 120 windows" in r.stdout


def test_header_that_understates_the_length_cannot_blow_memory(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(32000 * 30, np.float32), 32000)
    with pytest.raises(AudioError, match="use `dymn timeline`"):
        read_audio(path, max_seconds=10)  # the header is honest here; reading stops at the cap either way


def test_absurd_amplitudes_are_not_audio(tmp_path):
    path = tmp_path / "huge.wav"
    sf.write(path, np.full(32000, 1e30, np.float32), 32000, subtype="FLOAT")
    with pytest.raises(AudioError, match="not audio"):
        read_audio(path)


def test_partial_decodes_are_reported(tmp_path, tiny_mn_checkpoint, capsys):
    x = (np.random.default_rng(0).standard_normal(32000 * 10) * 0.1).astype(np.float32)
    flac = tmp_path / "half.flac"
    sf.write(flac, x, 32000)
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])  # cut in half; the header says 10 s
    dec = read_audio(flac)
    assert dec.note and "of the 10.00 s its header declares" in dec.note
    with pytest.warns(AudioWarning, match="header declares"):
        load_audio(flac)
    from dymn.cli.main import main

    assert main(["tag", str(flac), "--weights", str(tiny_mn_checkpoint)]) == 0
    assert "warning:" in capsys.readouterr().err
    assert main(["timeline", str(flac), "--weights", str(tiny_mn_checkpoint)]) == 0
    assert "header declares" in capsys.readouterr().err


def test_non_utf8_file_names(tmp_path, tiny_mn_checkpoint, capfdbinary):
    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.wav")
    sf.write(tmp_path / "plain.wav", np.random.default_rng(0).standard_normal(16000) * 0.1, 16000)
    os.rename(tmp_path / "plain.wav", name)
    assert len(load_audio(name)) == 32000
    from dymn.cli.main import main

    for args in (["tag", name], ["tag", str(tmp_path), "--format", "csv"], ["timeline", name]):
        assert main([*args, "--weights", str(tiny_mn_checkpoint)]) == 0, args
    out = capfdbinary.readouterr().out
    assert b"caf\xe9.wav" in out  # the CSV gives the name back as the bytes it was
    assert main(["embed", name, "--weights", str(tiny_mn_checkpoint), "--out", str(tmp_path / "e.npz")]) == 0
    assert dymn.load_audio is load_audio


def test_memory_depends_on_the_model_rate_not_the_file_rate(tmp_path):
    """120 s of stereo FLAC at 655,350 Hz (11 MB on disk, 630 MB as float32 frames) is decoded within 1.5 GB of
    address space: each block is downmixed and resampled before the next is read."""
    path = tmp_path / "wide.flac"
    sr = 655350
    with sf.SoundFile(path, "w", sr, 2, subtype="PCM_16", format="FLAC") as f:
        block = np.zeros((sr * 10, 2), np.float32)
        block[::1000, 0] = 0.01
        for _ in range(12):
            f.write(block)
    done = limited_child("from dymn.audio.io import read_audio\nprint(read_audio(sys.argv[1], 32000).wave.shape[0])\n",
                         str(path))  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == str(120 * 32000), done.stderr[-1500:]
