"""The package's shape, read from the sources (STYLE 10 and 11): nothing here is imported.

The import graph of `maskcheck` is computed with `ast` over every module,
imports inside functions included (they are edges too: a cycle through a
function-level import is a cycle the first call closes). ``from pkg import
name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``;
relative imports are resolved against the importing module's package. A
module loaded by name through `importlib` (the old-path shims,
`maskcheck.renderers` loading the reporters) is not an import edge: that is
how a value reaches its renderer without depending on it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "maskcheck"

def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(module imported from, name imported or None, line) for every import in `path`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found += [(source, alias.name, node.lineno) for alias in node.names]
    return found


def _target(source: str, imported: str | None) -> str | None:
    """The maskcheck module an import makes this module depend on (None: outside maskcheck)."""
    if imported is not None and f"{source}.{imported}" in MODULES:
        return f"{source}.{imported}"
    return source if source in MODULES else None


def import_graph() -> dict[str, set[str]]:
    """module -> the maskcheck modules it imports (anywhere in its body)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for source, imported, _ in _imports(name, path):
            target = _target(source, imported)
            if target is not None and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component."""
    return [_cycle_in(graph, component) for component in tangles(graph)]


def tangles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module: each is a set of
    modules that all reach each other through imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside it."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle in {component}")  # pragma: no cover


def _describe(graph: dict[str, set[str]], found: list[set[str]]) -> str:
    return "\n".join(f"{' -> '.join(_cycle_in(graph, c))}  (all {len(c)} modules that import each "
                     f"other: {', '.join(sorted(c))})" for c in found)


# --- the graph itself ---------------------------------------------------------------


def test_the_graph_reader_sees_function_level_and_from_imports() -> None:
    graph = import_graph()
    assert "maskcheck.adoption.baseline" in graph["maskcheck.engine"]  # inside a function
    assert "maskcheck.static.summary" in graph["maskcheck.engine"]  # `from pkg import name`
    assert "maskcheck.integrations.zoo" in graph["maskcheck.integrations.strategies"]  # name is a module
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# --- (1) no import cycle ----------------------------------------------------------------


def test_no_import_cycle() -> None:
    graph = import_graph()
    found = tangles(graph)
    assert not found, "import cycles:\n" + _describe(graph, found)


# --- (2) no _private name across modules ------------------------------------------------


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_is_imported_across_modules() -> None:
    crossings = []
    for name, path in MODULES.items():
        for source, imported, line in _imports(name, path):
            if not source.startswith("maskcheck"):
                continue
            dotted = source.split(".") + ([imported] if imported else [])
            if any(_is_private(part) for part in dotted):
                crossings.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {'.'.join(dotted)}")
    assert not crossings, "private names imported from another module:\n" + "\n".join(crossings)


# --- (3) values never know their renderers ----------------------------------------------


def test_values_import_no_reporter_and_not_the_package() -> None:
    for value in ("maskcheck.finding", "maskcheck.renderers", "maskcheck.version"):
        targets = import_graph()[value]
        assert not [t for t in targets if t.startswith("maskcheck.reporters")], value
        assert "maskcheck" not in targets, f"{value} imports the maskcheck package (its __init__)"
    assert import_graph()["maskcheck.renderers"] == set()  # the registry depends on nothing
    assert import_graph()["maskcheck.finding"] <= {"maskcheck.renderers", "maskcheck.version"}


def test_values_reach_their_renderers_through_the_registry_at_call_time() -> None:
    """In a fresh interpreter: the values render without anyone importing the reporters
    first, and neither that nor `import maskcheck.cli` loads TensorFlow or Keras."""
    code = textwrap.dedent("""
        import json, sys
        import maskcheck.cli
        from maskcheck.finding import GraphEdge, GraphNode, GraphSummary, ModelReport, Report
        assert "maskcheck.reporters" not in sys.modules
        graph = GraphSummary(nodes=(GraphNode(0, ("m", "x"), "x", "InputLayer", "input", "creates", (None, 4)),
                                    GraphNode(1, ("m", "dense"), "dense", "Dense", "layer", "propagates", (None, 4, 2))),
                             edges=(GraphEdge(0, 1, "masked", (None, 4)),), outputs=(1,))
        model = ModelReport("m.keras", "m", graph=graph)
        assert json.loads(Report((model,)).to_json())["models"][0]["target"] == "m.keras"
        assert [n["id"] for n in model.view["nodes"]] == ["n0", "n1"]
        assert model.view["edges"] == [{"from": "n0", "to": "n1", "state": "masked", "shape": "(None, 4)"}]
        assert "<iframe" in model._repr_html_()
        given = ModelReport("m.keras", "m", view={"nodes": []})
        assert given.view == {"nodes": []}
        heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        print("HEAVY", heavy)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
