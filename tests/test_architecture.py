"""The package's shape: no import cycle, small modules, short functions, and the modules
that must start fast (the run spec, the warm-worker client) import no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from asymcl.codedeps import SOURCE_DIR, find_cycles, import_graph, package_modules

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "asymcl.engine.run" in graph and "asymcl.worker.client" in graph  # the walk sees the new layout
    assert find_cycles(graph) == []


def test_find_cycles_reports_a_planted_cycle():
    # The check above can fail: the same function finds a two-module loop.
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": set()}
    assert find_cycles(graph) == [["a", "b"]]


@pytest.mark.parametrize("name, path", sorted(package_modules().items()))
def test_module_is_small(name, path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} ({path}) has {lines} lines; split it by concern"


def _long_functions_without_reason(path: Path) -> list[str]:
    """Functions over the limit whose def line, or the line just above it, has no comment."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            nearby = lines[node.lineno - 1] + lines[first - 2] if first >= 2 else lines[node.lineno - 1]
            if length > MAX_FUNCTION_LINES and "#" not in nearby:
                found.append(f"{node.name} ({length} lines, line {node.lineno})")
    return found


@pytest.mark.parametrize("name, path", sorted(package_modules().items()))
def test_functions_are_short_or_say_why(name, path):
    assert _long_functions_without_reason(path) == [], f"{name}: long functions without a reason"


def test_long_function_check_can_fail(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    (tmp_path / "long.py").write_text(f"def f():\n{body}\n\n\n# one table, read as one block\ndef g():\n{body}\n")
    assert [s.split()[0] for s in _long_functions_without_reason(tmp_path / "long.py")] == ["f"]


# Import the given modules with every torch import refused, then print what loaded.
_NO_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "numpy", "sklearn"):
            raise ImportError(f"blocked import of {name}")
        return None
sys.meta_path.insert(0, _Block())
import importlib
for name in sys.argv[1:]:
    importlib.import_module(name)
print("ok")
"""


@pytest.mark.parametrize("modules", [
    ["asymcl.engine.spec"],
    ["asymcl.worker", "asymcl.worker.client", "asymcl.worker.protocol"],
    ["asymcl.experiments", "asymcl.families", "asymcl.codedeps"],
    ["asymcl.cli"],
])
def test_modules_import_without_torch(modules):
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, *modules], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_the_torch_block_works():
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, "asymcl.engine.run"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "blocked import of torch" in proc.stderr


def test_source_dir_is_the_installed_package():
    import asymcl

    assert Path(asymcl.__file__).resolve().parent == SOURCE_DIR
