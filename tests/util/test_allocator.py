"""dymn's own processes keep large freed blocks in the heap (glibc); the backend choice is measured per setting."""

import platform
import subprocess
import sys

import pytest

import dymn
from dymn.runtime import choice
from dymn.util import allocator

_PROBE = "from dymn.util import allocator; print(allocator.state(), allocator.tune(), allocator.state())"


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tune_sets_glibc_thresholds_in_its_own_process():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["default", "True", "tuned"]


def test_the_environment_counts_as_tuned(monkeypatch):
    monkeypatch.setattr(allocator, "_tuned", False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert allocator.state() == "default"
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "268435456")
    assert allocator.state() == "tuned"
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=268435456")
    assert allocator.state() == "tuned"


def test_the_backend_choice_is_kept_per_allocator_setting(monkeypatch):
    """PyTorch's whole-batch speed depends on it: a choice measured by the `dymn` command is not reused by a
    program whose allocator is glibc's default."""
    model = dymn.load("mn01_as", pretrained=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setattr(allocator, "_tuned", False)
    default = choice.choice_key(model, 8, False)
    monkeypatch.setattr(allocator, "_tuned", True)
    assert choice.choice_key(model, 8, False) != default
