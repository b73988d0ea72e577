import numpy as np
import pytest
import soundfile as sf

from dymn.audio import AudioError, find_audio_files, load_audio


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
