"""The package's shape: no import cycles (lazy imports inside functions count too), and the shells (ui/,
cli/) stay shells."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clipdemo"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Each clipdemo module -> the clipdemo modules it imports anywhere in its code, except under TYPE_CHECKING."""
    paths = {module_name(p): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        stack = list(ast.parse(path.read_text(encoding="utf-8")).body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names)
            stack.extend(ast.iter_child_nodes(node))
        graph[name] = {m for m in found if m in paths and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v: str) -> None:
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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "clipdemo.studio" in graph["clipdemo"]  # package __init__, relative
    assert "clipdemo.ui" in graph["clipdemo.cli.main"]  # inside cmd_serve, lazy
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycles():
    assert cycles(import_graph()) == []


# The models a studio loads sit below every workflow: the registry (and all it imports) reaches none of them.
WORKFLOWS = ("clipdemo.generation.", "clipdemo.evaluation", "clipdemo.bench", "clipdemo.retrieval", "clipdemo.compare",
             "clipdemo.studio", "clipdemo.ui", "clipdemo.cli", "clipdemo.zeroshot", "clipdemo.similarity",
             "clipdemo.describe")
REGISTRY_MAY_REACH = {"clipdemo.generation.request"}  # the request type and its limits: data, no workflow


def test_the_model_registry_climbs_into_no_workflow():
    graph = import_graph()
    reached, todo = set(), [name for name in graph if name.startswith("clipdemo.models")]
    while todo:
        for imported in graph[todo.pop()] - reached:
            reached.add(imported)
            todo.append(imported)
    assert "clipdemo.scoring" in reached  # the walk follows the registry's imports
    assert sorted(m for m in reached if m.startswith(WORKFLOWS) and m not in REGISTRY_MAY_REACH) == []


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def test_modules_and_functions_stay_small():
    """A runtime module a newcomer can read in one go: at most 300 lines, each function at most 60."""
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{module_name(path)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{module_name(path)}.{node.name}: {length} lines")
    assert too_long == []


# What the shells (ui/, cli/) may import from the core: the facade, the request and result types it names,
# settings and their declarations, pure formatting (texts, figures, the page's run history), and writing a file whole.
SHELL_MAY_IMPORT = {"clipdemo.studio", "clipdemo.errors", "clipdemo.options", "clipdemo.config", "clipdemo.version",
                    "clipdemo.generation", "clipdemo.generation.request", "clipdemo.text", "clipdemo.plots",
                    "clipdemo.history", "clipdemo.bench.format", "clipdemo.links", "clipdemo.files"}


def test_the_shells_reach_the_core_only_through_the_facade():
    graph = import_graph()
    shells = {name for name in graph if name.startswith(("clipdemo.ui", "clipdemo.cli"))}
    around = sorted(f"{shell} -> {core}" for shell in shells for core in graph[shell]
                    if core not in shells and core not in SHELL_MAY_IMPORT and core != "clipdemo")
    assert around == []
