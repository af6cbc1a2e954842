"""The rules of dependency (docs/ARCHITECTURE.md), read from the source: every import
statement counts, those inside functions included, so a cycle cannot hide in a body."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("live", "trainer", "visualizer", "tetris_site")
# Layers, lowest first: a module may import its own layer and the ones below it.
LAYERS = (
    ("trainer.tetris", "trainer.rl"),  # the learning core
    ("live",),
    ("trainer",),
    ("visualizer",),
    ("tetris_site",),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages (migrations aside), by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import of `name` loads (the longest known prefix)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from trainer import services` loads trainer.services; `from trainer.models
            # import Run` loads trainer.models (the longest prefix that is a module).
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = resolve(name, modules)
            if target and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer_of(module: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} belongs to no layer")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if layer_of(target) > layer_of(module)
    ]
    assert upward == [], "imports against the direction of dependency:\n" + "\n".join(upward)


def test_trainer_never_imports_visualizer() -> None:
    graph = import_graph()
    wrong = [
        m for m in graph if m.startswith("trainer") for t in graph[m] if t.startswith("visualizer")
    ]
    assert wrong == []


def test_there_is_no_cycle_between_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_find_what_they_guard_against(tmp_path: Path) -> None:
    """The graph sees an import inside a function, and the checks fail on what it finds."""
    graph = import_graph()
    assert (
        "trainer.services" in graph["trainer.tasks"] or "trainer.runner" in graph["trainer.tasks"]
    )
    with_upward = {**graph, "trainer.runner": graph["trainer.runner"] | {"visualizer.hub"}}
    assert any(layer_of(t) > layer_of(m) for m, ts in with_upward.items() for t in ts), (
        "an import of visualizer from trainer is upward"
    )
    with_cycle = {**graph, "trainer.selectors": graph["trainer.selectors"] | {"trainer.services"}}
    assert find_cycle(with_cycle) is not None
