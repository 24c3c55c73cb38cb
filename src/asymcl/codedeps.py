"""The package's own import graph, read from the source (no imports executed, no torch).

Two users: the workflow, which declares each rule's code inputs as the source files its
command module imports (transitively), so an edit reruns exactly the jobs whose code it
touched; and the architecture test, which walks the same graph for import cycles.

Every import counts, including ones inside functions: a lazy import is still code the
command runs.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "asymcl"
SOURCE_DIR = Path(__file__).resolve().parent


def _module_name(path: Path, source_dir: Path) -> str:
    parts = list(path.relative_to(source_dir).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def package_modules(source_dir: Path = SOURCE_DIR) -> dict[str, Path]:
    """``{module name: source file}`` of every module of the package under ``source_dir``."""
    return {
        _module_name(path, source_dir): path
        for path in sorted(source_dir.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Dotted names a module imports (``from a import b`` gives both ``a`` and ``a.b``)."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(source_dir: Path = SOURCE_DIR) -> dict[str, set[str]]:
    """``{module: the package modules it imports}``, from the source files' ASTs.

    An import of ``a.b.c`` also depends on the packages ``a`` and ``a.b`` (Python runs their
    ``__init__``), so those are edges too, except packages that enclose the importing module
    itself (already loaded before it runs: ``asymcl.losses.kcl`` importing
    ``asymcl.losses._contrastive`` does not depend on ``asymcl.losses``).
    """
    modules = package_modules(source_dir)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        deps: set[str] = set()
        for imported in _imported_names(tree, name, path.name == "__init__.py"):
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                # A package that encloses this module is loaded before it runs: not an edge.
                if prefix in modules and prefix != name and not name.startswith(prefix + "."):
                    deps.add(prefix)
        graph[name] = deps
    return graph


@functools.lru_cache(maxsize=None)
def _closure(roots: tuple[str, ...], source_dir: Path) -> tuple[Path, ...]:
    graph = import_graph(source_dir)
    modules = package_modules(source_dir)
    unknown = [root for root in roots if root not in graph]
    if unknown:
        raise KeyError(f"not modules of {PACKAGE}: {unknown}")
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(graph[name] - seen)
    return tuple(sorted(modules[name] for name in seen))


def module_files(*roots: str, source_dir: Path = SOURCE_DIR) -> list[Path]:
    """Source files of ``roots`` and of every package module they import, transitively."""
    return list(_closure(tuple(sorted(roots)), Path(source_dir)))


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (each is an import cycle).

    A package's ``__init__`` importing its own submodules is not a cycle for Python when the
    submodule does not import the package back, so such edges are kept and only reported
    when they really close a loop.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph has ~60 nodes
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles
