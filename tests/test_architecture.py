"""The layout rules the code base promises: an acyclic package graph, small files, one engine factory.

The import graph counts every ``import`` in a module, function-level ones included, since a
lazy import still ties the packages together.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fastreasonseg"
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.startswith("fastreasonseg.")}


def _subpackage(module: str) -> str:
    return module.split(".")[1]


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        source = _subpackage(_module_name(path)) if path.parent != PACKAGE or path.name != "__init__.py" else None
        if source is None:
            continue
        for target in _imports(path):
            if _subpackage(target) != source:
                graph[source].add(_subpackage(target))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle_and_accepts_a_dag() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_subpackages_import_each_other_without_cycles() -> None:
    graph = package_graph()
    assert "reasoning" in graph and "twin" in graph["reasoning"]  # the scan sees real edges
    assert find_cycle(graph) is None, f"import cycle between subpackages: {' -> '.join(find_cycle(graph))}"


def test_layers_the_tree_promises() -> None:
    graph = package_graph()
    assert graph["twin"] <= {"io", "errors"}, "twin is the base layer"
    assert "perception" not in graph["reasoning"] and "data" not in graph["reasoning"]
    assert "eval" not in graph["data"] and "distill" not in graph["eval"]
    # The Python API sits on top of the pipeline; the stages never reach up to it.
    assert "pipeline" in graph["api"] and not graph["api"] & {"cli", "serve", "eval", "distill"}
    assert all("api" not in graph[stage] for stage in ("twin", "perception", "reasoning", "data", "pipeline"))


def test_no_source_file_is_longer_than_the_limit() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_one_place_constructs_the_rollout_engine() -> None:
    pattern = re.compile(r"\bRolloutEngine\(")
    places = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                    if any(pattern.search(line) and not line.lstrip().startswith(("#", "class "))
                           for line in p.read_text(encoding="utf-8").splitlines()))
    assert places == ["reasoning/factory.py"]
