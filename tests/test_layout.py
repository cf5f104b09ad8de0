"""The package layout keeps its direction: every import of a capedyn module, at module level
or inside a function, goes from a layer to the same package or to a layer below it, and no
two modules import each other in a loop. The layers are read from the source with ``ast``,
independently of the code they check (docs/architecture.md describes the same order)."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "capedyn"

# bottom to top; a module may import its own layer's package or any layer below
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_private",),
    ("data",),
    ("coupling",),
    ("dynamics",),
    ("models", "steer"),
    ("inference",),
    ("evaluation",),
    ("plotting",),
    ("report",),
    ("explore",),
    ("cli",),
)
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
# the lazy façade and ``python -m capedyn`` sit outside the layers
OUTSIDE = {"capedyn", "capedyn.__main__"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _group(module: str) -> str:
    """The layer a module belongs to: its subpackage, ``plotting``, or ``_private``."""
    head = module.split(".")[1] if module.count(".") else ""
    return "_private" if head.startswith("_") else head


def _imports(path: Path) -> set[str]:
    """Every capedyn module (or package) that ``path`` imports, as a dotted name."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "capedyn"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "capedyn":
                continue
            for alias in node.names:  # ``from . import x`` names a module
                sub = f"{target}.{alias.name}"
                found.add(sub if _exists(sub) else target)
    return found - {module}


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        graph[_module_name(path)] = _imports(path)
    return graph


GRAPH = _graph()


def test_every_module_is_in_a_layer():
    unplaced = [m for m in GRAPH if m not in OUTSIDE and _group(m) not in RANK]
    assert not unplaced, f"modules outside every layer (add them to a package): {unplaced}"


def test_imports_run_downward():
    upward = []
    for module, targets in GRAPH.items():
        if module in OUTSIDE:
            continue
        for target in targets:
            if target == "capedyn" and module == "capedyn._version":
                continue
            src, dst = _group(module), _group(target) if target != "capedyn" else "capedyn"
            if dst == "capedyn" or RANK[dst] > RANK[src]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that run upward:\n" + "\n".join(sorted(upward))


def test_private_helpers_import_only_private_helpers():
    for module, targets in GRAPH.items():
        if _group(module) == "_private" and module not in OUTSIDE:
            assert all(_group(t) == "_private" for t in targets), (module, targets)


def test_no_import_circles():
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in GRAPH.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for module in GRAPH:
        if module not in state and module not in OUTSIDE:
            visit(module, [])


def test_the_checker_sees_an_upward_import(tmp_path):
    """The parser resolves relative imports: a fake module in models importing the CLI is
    reported as upward."""
    fake = PACKAGE / "models" / "_layout_probe.py"
    assert not fake.exists()
    try:
        fake.write_text("def f():\n    from ..cli import entry\n", encoding="utf-8")
        targets = _imports(fake)
    finally:
        fake.unlink()
    assert "capedyn.cli.entry" in targets
    assert RANK[_group("capedyn.cli.entry")] > RANK[_group("capedyn.models._layout_probe")]


OLD_PATHS = {
    "capedyn.fit": ("CouplingODE", "capedyn.models.coupling_ode"),
    "capedyn.posterior": ("sample_posterior", "capedyn.inference.sampling"),
    "capedyn.heldout": ("holdout", "capedyn.evaluation.heldout"),
    "capedyn.ode_nc": ("implied_nc_table", "capedyn.inference.implied_nc"),
    "capedyn.latent_ode": ("SharedLogitODE", "capedyn.models.shared_ode"),
    "capedyn.persistence": ("load_fit", "capedyn.models.persistence"),
    "capedyn.ingest": ("read_lm_eval", "capedyn.data.ingest"),
    "capedyn.frontier": ("h_field", "capedyn.coupling.frontier"),
}


def test_no_file_at_an_old_path():
    from capedyn._moved import OLD_PATHS as MOVED

    assert not [old for old in MOVED if (PACKAGE / f"{old}.py").exists()]


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_module_paths_still_work_and_warn(old):
    import importlib
    import sys

    name, new = OLD_PATHS[old]
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        alias = importlib.import_module(old)
        value = getattr(alias, name)
    assert value is getattr(importlib.import_module(new), name)
    hits = [w for w in caught if issubclass(w.category, DeprecationWarning) and new in str(w.message)]
    assert hits and all(w.filename == __file__ for w in hits), [(w.filename, str(w.message)) for w in caught]


def test_old_flat_packages_keep_their_names():
    import capedyn.coupling
    import capedyn.data

    assert capedyn.data.load_base_models is capedyn.data.tables.load_base_models
    assert capedyn.coupling.running_coupling is capedyn.coupling.running.running_coupling
