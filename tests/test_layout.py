"""The package layout shows the data flow: stage subpackages, imports only downward, no circles.

Imports are read from the source with `ast`, wherever they are: module level, inside functions
and under `TYPE_CHECKING`, so a lazy import cannot hide a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Stages in data-flow order; a module may import its own stage and the ones before it.
STAGES = ("hardware", "workload", "engines", "models", "tables", "costs", "training", "reporting",
          "experiments", "cli")  # fmt: skip
BASE = ("errors", "files", "processes")  # the bottom: every stage may use them


def _modules() -> dict[str, Path]:
    """Every module of the project by dotted name (cli/ ships as ddi_energy.cli)."""
    found = {}
    for top, package in ((ROOT / "ddi_energy", "ddi_energy"), (ROOT / "cli", "ddi_energy.cli")):
        for path in top.rglob("*.py"):
            parts = path.relative_to(top).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules `name` imports (`from a import b` counts as a.b when b is a module)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1],
                                 *([base] if base else [])])  # fmt: skip
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        out |= {t for t in targets if t in MODULES and t != name}
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _stage(module: str) -> int | None:
    part = module.split(".")[1] if module.count(".") else ""
    if part in BASE:
        return -1
    return STAGES.index(part) if part in STAGES else None


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(GRAPH[module]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_stages_import_only_downward() -> None:
    upward = []
    for module, deps in GRAPH.items():
        own = _stage(module)
        if own is None:
            continue
        upward += [f"{module} -> {d}" for d in deps
                   if (_stage(d) is None and d != "ddi_energy") or (_stage(d) or -1) > own]
    assert not upward, "imports that go up the data flow:\n" + "\n".join(sorted(upward))


def test_top_level_holds_few_plain_modules() -> None:
    top = ROOT / "ddi_energy"
    plain = sorted(p.name for p in top.glob("*.py"))
    packages = sorted(p.name for p in top.iterdir() if (p / "__init__.py").exists())
    assert len(plain) <= 5, plain
    assert set(STAGES[:-1]) <= set(packages)


def test_subpackage_inits_import_nothing() -> None:
    """A package __init__ that imports its modules would make every module depend on it."""
    for name, path in MODULES.items():
        if path.name == "__init__.py" and name.count(".") >= 1:
            assert not GRAPH[name], f"{path} imports {sorted(GRAPH[name])}"


def test_pyproject_lists_every_package() -> None:
    """An editable install hides a missing package; a wheel does not."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])  # fmt: skip
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    packages |= {"ddi_energy.hw_configs", "ddi_energy.cost_tables"}
    assert packages == listed
