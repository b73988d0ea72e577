"""Fuzzing the two readers of untrusted files: audio and checkpoints (bounded: about a minute in all).

Whatever the bytes, a reader returns a usable result or raises a DymnError with a message: no other
exception, no hang, bounded memory (the audio reader reads at most ``max_seconds``).
"""

import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch

hypothesis = pytest.importorskip("hypothesis", reason="fuzz tests need hypothesis (the [dev] extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import dymn  # noqa: E402
from dymn.audio.io import read_audio  # noqa: E402
from dymn.models.checkpoint import CHECKPOINT_FORMAT, load_checkpoint  # noqa: E402


def fuzz(n: int):
    return settings(max_examples=n, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _encoded(fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    x = (np.random.default_rng(0).standard_normal(4000) * 0.1).astype(np.float32)
    sf.write(buf, x, 8000, format=fmt, subtype=subtype)
    return buf.getvalue()


SEEDS = [_encoded("WAV", "PCM_16"), _encoded("WAV", "FLOAT"), _encoded("FLAC"), _encoded("OGG")]


@st.composite
def mutated(draw, seeds):
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "header"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            data = data[:pos]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif data:  # overwrite a header field with an extreme value
            at = draw(st.integers(0, min(60, len(data) - 1)))
            data[at : at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x01\x00\x00\x00"]))
    return bytes(data)


def _check_audio(tmp_path, data: bytes) -> None:
    path = tmp_path / "fuzz.bin"
    path.write_bytes(data)
    try:
        dec = read_audio(path, 16000, max_seconds=60)
    except dymn.AudioError as exc:
        assert str(exc).startswith(str(path))
        return
    assert dec.wave.dtype == np.float32 and dec.wave.ndim == 1 and np.isfinite(dec.wave).all()
    assert len(dec.wave) <= 60 * 16000 + 16000


@fuzz(1500)
@given(data=mutated(SEEDS))
def test_audio_reader_mutated_files(tmp_path, data):
    _check_audio(tmp_path, data)


@fuzz(500)
@given(data=st.binary(max_size=2048))
def test_audio_reader_random_bytes(tmp_path, data):
    _check_audio(tmp_path, data)


_STATE = dymn.load("mn01_as", pretrained=False).state_dict()


def _checkpoint_bytes(meta: dict) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **meta, "state_dict": _STATE}, buf)
    return buf.getvalue()


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True), st.text(max_size=8),
    st.lists(st.integers(0, 3), max_size=5),
)  # fmt: skip
META_KEYS = ["arch", "arch_config", "frontend", "labels", "task", "temperature", "name", "clip_seconds"]


@fuzz(300)
@given(
    meta=st.dictionaries(st.sampled_from(META_KEYS), VALUES, max_size=6),
    arch_config=st.dictionaries(
        st.sampled_from(["width_mult", "num_classes", "head_type", "strides", "se_dims"]), VALUES, max_size=3
    ),  # fmt: skip
    frontend=st.dictionaries(
        st.sampled_from(["sample_rate", "n_mels", "n_fft", "hop_length", "fmax"]), VALUES, max_size=3
    ),  # fmt: skip
)
def test_checkpoint_loader_hostile_metadata(tmp_path, meta, arch_config, frontend):
    full = {"arch": "mn", "arch_config": {"width_mult": 0.1, **arch_config}, "frontend": frontend, **meta}
    path = tmp_path / "fuzz.pt"
    path.write_bytes(_checkpoint_bytes(full))
    try:
        model = dymn.load(str(path))
    except dymn.DymnError:
        return
    assert model.info.num_classes == model.config.num_classes


@fuzz(300)
@given(
    data=st.one_of(
        st.binary(max_size=512), mutated([_checkpoint_bytes({"arch": "mn", "arch_config": {"width_mult": 0.1}})])
    )
)
def test_checkpoint_loader_mutated_bytes(tmp_path, data):
    path = tmp_path / "fuzz.pt"
    path.write_bytes(data)
    try:
        load_checkpoint(path)
    except dymn.DymnError:
        pass


def test_metadata_round_trips_as_json():
    meta = json.loads(json.dumps({"arch": "mn", "arch_config": {"width_mult": 0.1}, "frontend": {}}))
    assert dymn.models.checkpoint.validate_meta(meta, "x")["arch"] == "mn"
