"""The import graph of ``src/medopt`` has no cycles, and no stage package reaches up into the pipeline layer.

Every ``import`` counts, at module level or inside a function: a lazy import hides a cycle from the interpreter,
not from the design. The graph is built from the source with ``ast`` (nothing is imported), relative imports are
resolved, and ``from pkg import name`` points at the submodule ``pkg.name`` when there is one.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "medopt"
STAGE_PACKAGES = ("data", "train", "compress", "federate", "evaluate", "serve", "models", "store", "config")
PIPELINE_LAYER = ("medopt.pipeline", "components", "pipelines")


def _modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module and package under ``src/medopt``."""
    found = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _from_source(package: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` reads from (``package`` is the importing module's package)."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    return ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))


def imported_names(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every dotted name ``module`` imports anywhere in its source; ``from a import b`` gives ``a.b`` when that is a
    module, else ``a``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _from_source(package, node)
            names.update(f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names)
    return names


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` lives in: itself when it is a module, else its longest prefix that is one."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """medopt module -> the medopt modules it imports (a module's own name left out)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        owners = {_owner(n, modules) for n in imported_names(module, path, modules) if n.split(".")[0] == ROOT}
        graph[module] = {o for o in owners if o and o != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def test_the_cycle_finder_finds_a_cycle_and_ignores_a_chain() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_relative_and_submodule_imports() -> None:
    graph = import_graph()
    assert "medopt.federate.resources" in graph["medopt.federate.simulation"]  # at module level
    assert "medopt.federate.flower_client" in graph["medopt.federate.simulation"]  # inside a function
    assert "medopt.cli_common" in graph["medopt.store.cli"]
    assert "medopt.errors" in graph["medopt.config.base"]


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (each line one strongly connected component):\n" + "\n".join(
        " <-> ".join(component) for component in found)


def test_no_stage_package_imports_the_pipeline_layer() -> None:
    modules = _modules()
    offenders = []
    for module, path in modules.items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in STAGE_PACKAGES:
            continue
        bad = sorted(n for n in imported_names(module, path, modules)
                     if any(n == layer or n.startswith(layer + ".") for layer in PIPELINE_LAYER))
        if bad:
            offenders.append(f"{module} imports {', '.join(bad)}")
    assert not offenders, "stage packages must not import the pipeline layer:\n" + "\n".join(offenders)
