"""The flat public API: lazy exports that type checkers can see, every name resolves, and no
public name hides a submodule."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections import defaultdict
from importlib import resources
from pathlib import Path

import capedyn

INIT = Path(capedyn.__file__)


def _type_checking_imports() -> dict[str, str]:
    """name -> module of every ``from .module import name`` under ``if TYPE_CHECKING:``."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1, ast.dump(stmt)
                for alias in stmt.names:
                    assert alias.asname is None
                    out[alias.name] = stmt.module
    return out


def expected_block() -> str:
    """The ``if TYPE_CHECKING:`` block that matches ``_EXPORTS`` (paste it into __init__)."""
    by = defaultdict(list)
    for name, module in capedyn._EXPORTS.items():
        by[module].append(name)
    lines = ["if TYPE_CHECKING:"]
    for module in sorted(by):
        lines.append(f"    from .{module} import ({', '.join(sorted(by[module], key=str.lower))})")
    return "\n".join(lines)


def test_type_checking_block_lists_exactly_the_exports():
    seen = _type_checking_imports()
    assert seen, "capedyn/__init__.py has no `if TYPE_CHECKING:` block of imports"
    assert seen == capedyn._EXPORTS, (
        "the TYPE_CHECKING imports and _EXPORTS differ; regenerate the block:\n"
        + expected_block())


def test_every_export_resolves_from_its_module():
    for name, module in capedyn._EXPORTS.items():
        value = getattr(capedyn, name)
        assert value is getattr(importlib.import_module(f"capedyn.{module}"), name), name
    assert sorted(capedyn.__all__) == sorted(capedyn._EXPORTS)
    assert set(capedyn._EXPORTS) <= set(dir(capedyn))


def test_no_public_name_equals_a_submodule():
    from capedyn._moved import OLD_PATHS

    submodules = {m.name for m in pkgutil.iter_modules(capedyn.__path__)} | set(OLD_PATHS)
    assert {"models", "evaluation", "plotting", "heldout"} <= submodules  # the scan sees the package
    clash = sorted(set(capedyn._EXPORTS) & submodules)
    assert not clash, f"public names equal to submodules: {clash}"


def test_holdout_stays_a_function_after_submodules_load():
    import capedyn.evaluation.heldout

    assert callable(capedyn.holdout) and callable(capedyn.crossval)
    assert capedyn.holdout is capedyn.evaluation.heldout.holdout


def test_package_data_ships_py_typed_and_every_subpackage():
    import tomllib

    assert resources.files("capedyn").joinpath("py.typed").is_file()
    config = tomllib.loads((INIT.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    tools = config["tool"]["setuptools"]
    assert "py.typed" in tools["package-data"]["capedyn"]
    subpackages = {f"capedyn.{m.name}" for m in pkgutil.iter_modules(capedyn.__path__)
                   if m.ispkg}
    assert subpackages <= set(tools["packages"]), "a subpackage is missing from a wheel"
