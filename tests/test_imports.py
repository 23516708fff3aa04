"""No import cycles inside swiftlab and no import against the layers: the graph of its modules' imports (those
inside functions too, which only hide a cycle until run time) has no loop, so every module can be imported first,
in any order, and no module imports one from a layer above its own."""

import ast
import subprocess
import sys
from pathlib import Path

import swiftlab

ROOT = Path(swiftlab.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported(path: Path) -> set[str]:
    """The swiftlab modules a file imports, anywhere in it."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            for alias in node.names:  # `from . import validate` imports a module
                out.add(f"{target}.{alias.name}" if is_module(f"{target}.{alias.name}") else target)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {name for name in out if name.split(".")[0] == "swiftlab" and is_module(name)}


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imported(path) - {module_name(path)} for path in ROOT.rglob("*.py")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_inside_functions():
    """The check can fail: the cycle decoding <-> matchness was two imports inside functions."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(graph) == [["a", "b"]]
    assert "swiftlab.engine.matchness" in import_graph()["swiftlab.engine.decoding"]


def test_swiftlab_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_engine_modules_import_first_in_a_fresh_interpreter():
    """Each of the modules that once sat on a cycle, imported before anything else of swiftlab."""
    for name in ("swiftlab.engine.matchness", "swiftlab.engine.decoding", "swiftlab.tasks.datasets", "swiftlab.tasks.generators"):
        done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


# The layers, lowest first (docs/architecture.md): a module may import its own layer and those below it.
# The front ends (api, hf, chat, cli, clicheck, __main__) sit at the package root, the widgets above them.
LAYERS = ["support", "tasks", "models", "engine", "search", "analysis", "", "widgets"]


def layer_of(module: str) -> int:
    parts = module.split(".")
    sub = parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else ""
    return LAYERS.index(sub)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() if m != "swiftlab"
                  for t in targets if t != "swiftlab" and layer_of(t) > layer_of(m))


def test_every_module_sits_in_a_layer():
    """A new subpackage must be given its place in LAYERS (layer_of raises ValueError otherwise)."""
    for module in import_graph():
        layer_of(module)
    subpackages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert subpackages == set(LAYERS) - {""}


def test_no_module_imports_a_layer_above_it():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_can_fail():
    graph = {"swiftlab.engine.decoding": {"swiftlab.search.stream", "swiftlab.support.errors"},
             "swiftlab.api": {"swiftlab.widgets.stepper"}, "swiftlab.widgets.race": {"swiftlab.api"}}
    assert upward_imports(graph) == ["swiftlab.api -> swiftlab.widgets.stepper",
                                     "swiftlab.engine.decoding -> swiftlab.search.stream"]
