"""The layout's rules, counted from the source (``ast``) and checked by import-linter's contracts (pyproject.toml):
no import cycle, no private name imported from another module, no import of the package face from inside, no module
over 400 lines, no ``cmd_*`` over 30 lines, and ``import dymn`` stays free of the heavy optional runtimes."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dymn"
MAX_LINES = 400
MAX_COMMAND_LINES = 30


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _target(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports() -> tuple[dict[str, set[str]], list[str], list[str]]:
    """Edges between dymn's modules, private names imported across modules, imports of the package face."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    private, face = [], []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = _target(module, node)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    dest = full if full in MODULES else base if base in MODULES else None
                    if dest is None or dest == module:
                        continue
                    if dest == "dymn" and module != "dymn":
                        face.append(f"{path}:{node.lineno}")
                    elif dest != "dymn":
                        edges[module].add(dest)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append(f"{path}:{node.lineno}: {alias.name}")
            elif isinstance(node, ast.Import):
                edges[module] |= {a.name for a in node.names if a.name in MODULES and a.name != module}
    return edges, private, face


def _cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    def reach(start: str) -> set[str]:
        seen, todo = set(), list(edges[start])
        while todo:
            x = todo.pop()
            if x not in seen:
                seen.add(x)
                todo += edges[x]
        return seen

    reachable = {m: reach(m) for m in edges}
    found = []
    for m in edges:
        if m in reachable[m]:
            group = {m} | {o for o in reachable[m] if m in reachable[o]}
            if group not in found:
                found.append(group)
    return found


def test_no_import_cycles():
    assert _cycles(_imports()[0]) == []


def test_no_private_name_crosses_a_module():
    assert _imports()[1] == []


def test_nothing_inside_imports_the_package_face():
    assert _imports()[2] == []


def test_no_module_over_400_lines():
    long = [f"{p}: {n}" for p in MODULES.values() if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert long == []


def test_cli_commands_are_thin():
    long = []
    for path in (PACKAGE / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_"):
                if node.end_lineno - node.lineno + 1 > MAX_COMMAND_LINES:
                    long.append(f"{path}:{node.lineno}: {node.name}")
    assert long == []


def test_the_cycle_count_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_import_dymn_stays_light():
    heavy = ("onnx", "onnxruntime", "openvino", "nncf", "lightning", "ray", "fastapi", "uvicorn", "matplotlib")
    code = f"import sys, dymn; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is not installed ([dev] extra)")
def test_import_linter_contracts_are_kept():
    root = PACKAGE.parents[1]
    proc = subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
