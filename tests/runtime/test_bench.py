"""dymn.runtime.bench: interleaved timing and the speed table (tiny runs; the figures are the benchmarks' business)."""

from __future__ import annotations

import dymn
from dymn.runtime.bench import bench_model, markdown_table
from dymn.util.timing import time_calls


def _random(name: str):
    return dymn.load(name, pretrained=False)


def test_time_calls_take_turns_and_keep_each_minimum():
    calls: list[str] = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    out = time_calls(fns, repeats=3, min_time=0.0, settle=0.0)
    assert set(out) == {"a", "b"} and all(v >= 0 for v in out.values())
    # one warm-up call each, then rounds in turn, each after one untimed call (min_time 0: one timed call)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3


def test_bench_model_row_and_table():
    row = bench_model("mn04_as", 1, seconds=2.0, repeats=1, backends=["torch"], build=_random)
    assert row.fastest == "torch" and row.best_ms > 0 and row.reference_ms > 0 and row.eager_ms > 0
    table = markdown_table([row], gemm=100.0)
    line = next(ln for ln in table.splitlines() if ln.startswith("| mn04_as | 1 |"))
    assert "**" in line and line.endswith("|")
