"""The one table of backend names, the default backend, what is installed here, and :class:`Plan`.

A backend runs a network's inference graph: ``torch`` (the fused PyTorch module of :mod:`.fusion`),
``onnxruntime`` and ``openvino`` (the graph of ``dymn export onnx``, converted once and cached, see
:mod:`.graphs`). Each runtime is an optional extra: ``pip install "dymn[fast]"`` adds both. ``auto`` (the default,
or ``$DYMN_BACKEND``) measures them once per model and machine (:mod:`.choice`).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch

from ..util.errors import UsageError

BACKENDS = ("torch", "onnxruntime", "openvino")
CHOICES = ("auto", *BACKENDS)
# names of earlier releases, still accepted wherever a backend is named
ALIASES = {"onnx": "onnxruntime"}
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class Plan:
    """How a network runs: what auto measures and remembers, and what a caller may name.

    ``micro_batch``: None runs whole batches; a number cuts a batch into pieces of that size (PyTorch: one after
    another; OpenVINO: in parallel, one stream per thread)."""

    backend: str = "torch"
    batch_size: int = 8
    micro_batch: int | None = None
    precision: str = "fp32"
    device: str = "cpu"


def canonical(name: str | None) -> str | None:
    """A backend name as the table spells it (``onnx`` -> ``onnxruntime``); None stays None."""
    if name is None:
        return None
    name = ALIASES.get(name, name)
    if name not in CHOICES:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(CHOICES)}")
    return name


def check_names(names: list[str]) -> list[str]:
    """Backend names as the table spells them; an unknown one is refused in one line."""
    names = [ALIASES.get(n, n) for n in names]
    bad = [n for n in names if n not in BACKENDS]
    if bad:
        raise UsageError(f"unknown backend(s) {', '.join(bad)}; choose from {', '.join(BACKENDS)}")
    return names


def default_backend() -> str:
    """``$DYMN_BACKEND``, else "auto"."""
    value = os.environ.get("DYMN_BACKEND", "auto") or "auto"
    if ALIASES.get(value, value) not in CHOICES:
        raise UsageError(f"DYMN_BACKEND={value!r}: choose one of {', '.join(CHOICES)}")
    return ALIASES.get(value, value)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found, not imported: importing the runtimes costs start-up time that a
    cached choice of torch never needs)."""
    return importlib.util.find_spec(module) is not None


def available() -> list[str]:
    """The backends installed here (torch always; the runtimes need onnx too, for the exported graph)."""
    return ["torch", *(name for name in BACKENDS[1:] if installed(name) and installed("onnx"))]


def threads() -> int:
    """The threads a backend may use: PyTorch's setting, which the runtimes follow."""
    return max(1, torch.get_num_threads())
