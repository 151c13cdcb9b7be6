"""The package layout draws the data flow: no import cycles, no layer importing a higher one.

Every `import` of a `scaling` module is read from the source (function-level imports included, since a lazy
import is still a dependency), so the graph here is the code's, not a hand-kept list.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scaling"

# The layers, bottom to top, and which layers each may import (its own always included).
LAYERS = {
    "base": set(),  # errors, the CSV writer, the command-line convention, vocabulary ids
    "shapes": {"base"},  # shapes, then accounting (which reads shapes)
    "models": {"base", "shapes"},  # know nothing of data or training
    "data": {"base", "shapes"},  # know nothing of models or training
    "core": {"base", "shapes"},  # parallel, optim, budget
    "training": {"base", "shapes", "models", "data", "core"},
    "convert": {"base", "shapes", "models", "data", "core", "training"},
    "downstream": {"base", "shapes", "models", "data", "core", "training", "convert"},
    "analysis": {"base"},  # numpy/scipy/pandas/matplotlib only: never the trainer or jax
    "experiments": {"base", "shapes", "models", "data", "core", "training", "convert", "downstream", "analysis"},
}
BASE = {"scaling.errors", "scaling.csvfile", "scaling.cli", "scaling.data.vocab"}
# Entry points (`python -m …`) sit above every layer and may import anything.
COMMANDS = {
    "scaling.train",
    "scaling.finetune",
    "scaling.compress",
    "scaling.decode",
    "scaling.translate",
    "scaling.sweep",
    "scaling.plan",
    "scaling.study",
    "scaling.profile",
    "scaling.convert.__main__",
    "scaling.shapes.__main__",
    "scaling.data.inspect",
    "scaling.data.build_vocab",
    "scaling.data.prepare_cramming",
}
SUBPACKAGE_LAYERS = {
    "models": "models",
    "data": "data",
    "training": "training",
    "convert": "convert",
    "downstream": "downstream",
    "analysis": "analysis",
    "experiments": "experiments",
    "shapes": "shapes",
}
TOP_LEVEL_LAYERS = {"accounting": "shapes", "parallel": "core", "optim": "core", "budget": "core"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str | None:
    if module in COMMANDS:
        return "commands"
    if module in BASE:
        return "base"
    parts = module.split(".")
    if len(parts) == 1:
        return None  # the package itself
    if len(parts) > 2 or parts[1] in SUBPACKAGE_LAYERS:
        return SUBPACKAGE_LAYERS[parts[1]]
    return TOP_LEVEL_LAYERS.get(parts[1])


def imports(path: Path, modules: set[str]) -> set[str]:
    """The `scaling` modules `path` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import module` depends on the module; the package only for names that are not modules
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            names = submodules + ([node.module] if any(m not in modules for m in submodules) else [])
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports(path, set(files)) - {name} for name, path in files.items()}


def test_every_module_has_a_layer():
    unplaced = [m for m in graph() if m != "scaling" and layer(m) is None]
    assert not unplaced, f"place these modules in a layer of {__file__}: {unplaced}"


def test_no_layer_imports_a_higher_one():
    upward = []
    for module, targets in graph().items():
        own = layer(module)
        if own in (None, "commands"):
            continue
        for target in targets:
            other = layer(target)
            if other not in (None, own) and other not in LAYERS[own]:
                upward.append(f"{module} ({own}) imports {target} ({other})")
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    edges = graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in edges:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize(
    "module, expected",
    [
        ("scaling.training.trainer", "training"),
        ("scaling.accounting", "shapes"),
        ("scaling.compress", "commands"),
        ("scaling.data.vocab", "base"),
    ],
)
def test_layers_are_read_as_intended(module, expected):
    assert layer(module) == expected


def test_a_cycle_and_an_upward_import_would_be_caught(tmp_path, monkeypatch):
    """The checks fail on what they exist to catch: a planted cycle and a planted upward import."""
    edges = {"scaling.shapes": {"scaling.accounting"}, "scaling.accounting": {"scaling.shapes"}}
    monkeypatch.setattr(__import__(__name__), "graph", lambda: edges)
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycles()
    monkeypatch.setattr(__import__(__name__), "graph", lambda: {"scaling.models.t5": {"scaling.training.trainer"}})
    with pytest.raises(AssertionError, match="imports scaling.training.trainer"):
        test_no_layer_imports_a_higher_one()
