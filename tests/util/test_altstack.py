"""A thread's alternate signal stack survives calls into OpenVINO (which replaced it with a buffer it later freed:
the next signal handled on that stack, e.g. a child's SIGCHLD, then killed the process with SIGSEGV)."""

import ctypes
import importlib.util

import pytest
import torch

import dymn
from dymn.util import altstack

pytestmark = pytest.mark.skipif(altstack.current() is None, reason="sigaltstack is read on Linux only")


def test_preserved_puts_the_stack_back():
    before = altstack.current()
    buffer = ctypes.create_string_buffer(1 << 16)
    other = altstack._StackT(ctypes.addressof(buffer), 0, len(buffer))
    with altstack.preserved():
        altstack._libc.sigaltstack(ctypes.byref(other), None)
        assert altstack.current()[0] == ctypes.addressof(buffer)
    assert altstack.current() == before


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO is not installed ([fast])")
@pytest.mark.parametrize("name", ["mn01_as", "dymn04_as"])
def test_openvino_leaves_the_signal_stack_alone(name, tmp_path, monkeypatch):
    from dymn.runtime.choice import compile_model

    monkeypatch.setenv("DYMN_CACHE", str(tmp_path))
    before = altstack.current()
    model = dymn.load(name, pretrained=False)
    module = compile_model(model, "openvino", micro_batch=1, batch_size=2)
    assert altstack.current() == before
    with torch.inference_mode():
        module(torch.randn(3, 1, 128, 200))
    assert altstack.current() == before
