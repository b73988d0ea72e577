"""The converted-graph cache stays under its size limit, least recently used first, and keeps fresh files."""

import os
import time

import pytest

import dymn
from dymn.runtime import graphs as graph_cache
from dymn.util import cache


def _file(path, size, age_s):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_prune_removes_least_recently_used_until_under_the_limit(tmp_path):
    day = 86400
    old = _file(tmp_path / "compiled" / "old.onnx", 400, 9 * day)
    older_blob = _file(tmp_path / "openvino" / "x" / "a.blob", 400, 10 * day)
    used = _file(tmp_path / "compiled" / "used.onnx", 400, 9 * day)
    weights = _file(tmp_path / "mn04_as.pt", 5000, 30 * day)  # downloaded weights are never pruned
    fresh = _file(tmp_path / "compiled" / "fresh.onnx", 400, 60)  # another process may be using it
    graph_cache.touch(used)
    assert graph_cache.prune(tmp_path, limit=900) == [older_blob, old]
    assert used.exists() and fresh.exists() and weights.exists()
    # files used within the grace period stay even over the limit
    assert graph_cache.prune(tmp_path, limit=0) == []


def test_touch_marks_an_openvino_model_and_its_weights(tmp_path):
    xml = _file(tmp_path / "m.xml", 10, 2 * 86400)
    bin_ = _file(tmp_path / "m.bin", 10, 2 * 86400)
    graph_cache.touch(xml)
    assert time.time() - xml.stat().st_mtime < 60 and time.time() - bin_.stat().st_mtime < 60
    graph_cache.touch(tmp_path / "missing.onnx")  # nothing to mark: no error


def test_touch_leaves_a_recent_mark_alone(tmp_path):
    """OpenVINO's cached blob of an .xml is compiled again whenever the .xml's time changes: a model used
    today keeps its time."""
    xml = _file(tmp_path / "m.xml", 10, 3 * 3600)
    before = xml.stat().st_mtime
    graph_cache.touch(xml)
    assert xml.stat().st_mtime == before


@pytest.mark.parametrize(("value", "expected"), [("0.5", 500_000_000), ("", 2_000_000_000), ("0", 0)])
def test_limit_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("DYMN_CACHE_MAX_GB", value)
    assert cache.max_bytes() == expected


@pytest.mark.parametrize("value", ["junk", "-1", "nan", "inf", "1e400", "1e300"])
def test_a_bad_limit_is_a_one_line_error(monkeypatch, value):
    monkeypatch.setenv("DYMN_CACHE_MAX_GB", value)
    with pytest.raises(dymn.UsageError, match="DYMN_CACHE_MAX_GB"):
        cache.max_bytes()


def test_a_new_conversion_prunes_the_cache(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    from dymn.runtime import export

    monkeypatch.setenv("DYMN_CACHE", str(tmp_path))
    model = dymn.load("mn01_as", pretrained=False)
    monkeypatch.setenv("DYMN_CACHE_MAX_GB", "lots")
    with pytest.raises(dymn.UsageError, match="DYMN_CACHE_MAX_GB='lots'"):  # before converting anything
        export.onnx_graph(model)
    assert not (tmp_path / "compiled").exists()
    monkeypatch.setenv("DYMN_CACHE_MAX_GB", "0")
    stale = _file(tmp_path / "compiled" / "mn01_as-0-torch2.2.0-0.1.0.onnx", 100, 86400)
    path = export.onnx_graph(model)
    assert path.is_file() and not stale.exists()
    t = time.time() - 86400
    os.utime(path, (t, t))
    assert export.onnx_graph(model) == path  # reused, and marked as used
    assert time.time() - path.stat().st_mtime < 60
    monkeypatch.setenv("DYMN_CACHE_MAX_GB", "lots")
    with pytest.raises(dymn.UsageError, match="DYMN_CACHE_MAX_GB='lots'"):  # also when nothing is converted
        export.onnx_graph(model)


def test_cached_reuses_a_whole_graph_and_remakes_a_half_one(tmp_path):
    xml = _file(tmp_path / "compiled" / "m.xml", 10, 2 * 86400)
    made = []

    def make():
        made.append(1)
        xml.with_suffix(".bin").write_bytes(b"w")
        return xml

    assert graph_cache.cached(tmp_path, xml, make) == xml and made == [1]  # no .bin: made again
    assert graph_cache.cached(tmp_path, xml, make) == xml and made == [1]  # whole: reused
    assert time.time() - xml.stat().st_mtime < 60  # and marked as used


def test_the_graph_digest_covers_the_code_that_shapes_a_graph():
    """Every network module (any module of dymn.models defining an nn.Module), the fusion, the exporter and the
    engines that write graphs are hashed; each name resolves to a file of this checkout."""
    import ast

    from dymn.runtime.graphs import GRAPH_SOURCES, source_files

    files = source_files()
    assert len(files) == len(GRAPH_SOURCES) and all(f.is_file() for f in files)
    models_dir = files[GRAPH_SOURCES.index("dymn.models.mn")].parent
    shaping = set()
    for path in models_dir.glob("*.py"):
        bases = {ast.unparse(b) for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)
                 for b in n.bases}  # fmt: skip
        if any("nn.Module" in b or b == "Module" for b in bases):
            shaping.add(f"dymn.models.{path.stem}")
    assert shaping and shaping <= set(GRAPH_SOURCES), shaping - set(GRAPH_SOURCES)
    for name in ("dymn.models.configs", "dymn.runtime.fusion", "dymn.runtime.export", "dymn.runtime.engines.ov"):
        assert name in GRAPH_SOURCES


@pytest.mark.parametrize("name", graph_cache.GRAPH_SOURCES)
def test_a_change_to_any_graph_source_gives_a_new_digest(name, tmp_path, monkeypatch):
    graphs = graph_cache
    sources = graphs.source_files()
    index = graphs.GRAPH_SOURCES.index(name)
    copies = []
    for i, path in enumerate(sources):
        copy = tmp_path / f"{i}-{path.name}"
        copy.write_bytes(path.read_bytes())
        copies.append(copy)
    monkeypatch.setattr(graphs, "source_files", lambda: copies)
    graphs.source_digest.cache_clear()
    try:
        before = graphs.source_digest()
        copies[index].write_bytes(copies[index].read_bytes() + b"\n# changed\n")
        graphs.source_digest.cache_clear()
        after = graphs.source_digest()
    finally:
        graphs.source_digest.cache_clear()
    assert after != before
    # the digest is part of every cached graph's name
    monkeypatch.setattr(graphs, "source_digest", lambda: after)
    assert graphs.versions()["dymn"].endswith(after)


def test_a_cached_graph_that_is_not_what_dymn_wrote_is_converted_again(tmp_path, monkeypatch, capsys):
    """A valid graph of other weights at the cached name, a garbage file, a cut file or one without its record: each
    is converted again (one warning), and the model's own outputs come back."""
    pytest.importorskip("onnxruntime")
    from dymn.runtime import export
    from dymn.runtime.api import compile as compile_model

    monkeypatch.setenv("DYMN_CACHE", str(tmp_path))
    torch_ = pytest.importorskip("torch")
    torch_.manual_seed(0)
    model = dymn.load("mn01_as", pretrained=False).eval()
    other = dymn.load("mn01_as", pretrained=False).eval()
    path = export.onnx_graph(model)
    good = path.read_bytes()
    x = torch_.randn(2, 1, 128, 100)
    with torch_.inference_mode():
        ref = model(x)[0]
    wrong = export.onnx_graph(other).read_bytes()
    assert wrong != good
    for bad in (wrong, b"garbage", good[: len(good) // 2]):
        path.write_bytes(bad)
        capsys.readouterr()
        fast = compile_model(model, backend="onnxruntime")
        assert "is not the file dymn wrote" in capsys.readouterr().err
        assert path.read_bytes() == good
        with torch_.inference_mode():
            assert float((fast(x)[0] - ref).abs().max()) < 1e-4
    graph_cache.record_path(path).unlink()  # e.g. a cache written by an older dymn
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert export.onnx_graph(model) == path and "converting it again" in capsys.readouterr().err
    assert export.onnx_graph(model) == path and capsys.readouterr().err == ""  # intact: used as it is


def test_prune_removes_a_graph_with_its_record(tmp_path):
    graph = _file(tmp_path / "compiled" / "g.onnx", 400, 9 * 86400)
    record = _file(graph_cache.record_path(graph), 10, 9 * 86400)
    assert graph_cache.prune(tmp_path, limit=0) == [graph]
    assert not record.exists()
