"""Shared test fixtures. Tests that need ../shared (reference fixtures, real weights, real audio) skip
with a reason when it is absent, so that a plain clone still passes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DYMN_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
REAL_WEIGHTS = SHARED / "weights" / "mn04_as_mAP_432.pt"
AUDIO = SHARED / "audio"


@pytest.fixture(autouse=True, scope="session")
def _pinned_backend():
    """Tests run the PyTorch backend (servers and workers they start too) unless they test the backends
    (tests/test_backends.py unsets it): "auto" would convert and measure every model a test uses, in every
    fresh cache."""
    before = os.environ.get("DYMN_BACKEND")
    os.environ["DYMN_BACKEND"] = "torch"
    yield
    if before is None:
        os.environ.pop("DYMN_BACKEND", None)
    else:
        os.environ["DYMN_BACKEND"] = before


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present (the shared reference data is not part of a clone)")
    return path


@pytest.fixture(scope="session")
def synth_state_dict():
    """The reference fixtures' weight generator (shared/fixtures/synthweights.py)."""
    need(FIXTURES / "synthweights.py")
    sys.path.insert(0, str(FIXTURES))
    try:
        from synthweights import synth_state_dict as fn
    finally:
        sys.path.remove(str(FIXTURES))
    return fn


def load_layout(name: str) -> dict:
    return json.loads(need(FIXTURES / name).read_text())


@pytest.fixture(scope="session")
def real_weights() -> Path:
    return need(REAL_WEIGHTS)


@pytest.fixture(scope="session")
def metro_clip() -> Path:
    return need(AUDIO / "metro_station-paris.wav")


@pytest.fixture()
def tone_wav(tmp_path) -> Path:
    """A 2 s, 44.1 kHz stereo tone (exercises resampling and downmixing)."""
    t = np.arange(int(2 * 44100)) / 44100
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "tone.wav"
    sf.write(path, np.stack([x, 0.5 * x], axis=1), 44100)
    return path


@pytest.fixture(scope="session")
def tiny_mn_checkpoint(tmp_path_factory) -> Path:
    """A self-describing checkpoint of a random mn01 (small, no download needed)."""
    import dymn

    model = dymn.load("mn01_as", pretrained=False)
    path = tmp_path_factory.mktemp("ckpt") / "mn01.pt"
    dymn.save_checkpoint(model, path)
    return path


def stand_in_release(cache: Path, name: str, seed: int = 0) -> Path:
    """Write a registry entry's 'released' weights into a cache folder: a plain state dict of random
    weights from ``seed``, so commands that would download run offline (non-zero BN statistics make the
    outputs depend on every tensor)."""
    import torch

    import dymn

    cfg = dymn.get_pretrained_cfg(name)
    path = cache / cfg.filename
    if not path.exists():
        torch.manual_seed(seed)
        model = dymn.load(name, pretrained=False)
        dymn.save_checkpoint(model, path, plain=True)
    return path


@pytest.fixture()
def release_cache(tmp_path_factory, monkeypatch):
    """A DYMN_CACHE with stand-in released weights: call it with registry names."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("DYMN_CACHE", str(cache))

    def make(*names: str) -> Path:
        import dataclasses
        import shutil

        import dymn.hub.registry

        for n in names:
            cfg = dymn.get_pretrained_cfg(n)
            if cfg.filename == REAL_WEIGHTS.name and REAL_WEIGHTS.exists():
                shutil.copy(REAL_WEIGHTS, cache / cfg.filename)  # the real file passes its published sha256
                continue
            if cfg.sha256 is not None:  # a stand-in cannot match a published sha256
                monkeypatch.setitem(dymn.hub.registry._REGISTRY, cfg.name, dataclasses.replace(cfg, sha256=None))
            stand_in_release(cache, n)
        return cache

    return make


@pytest.fixture(scope="session")
def tiny_tagger():
    """A Tagger around a random mn01 (fast; no weights needed)."""
    import dymn

    return dymn.Tagger(dymn.load("mn01_as", pretrained=False), batch_size=4)


def limited_child(code: str, *args: str, gib: float = 1.5, timeout: float = 300):
    """Run ``code`` (Python; ``sys`` is imported, ``sys.argv[1:]`` are ``args``) in a child whose address space is
    capped at ``gib``: a test of bounded memory fails there, instead of taking the machine down."""
    import subprocess

    limit = int(gib * 2**30)
    head = f"import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    return subprocess.run([sys.executable, "-c", head + code, *args], capture_output=True, text=True, timeout=timeout)
