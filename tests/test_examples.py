"""Every script in examples/ runs with --quick in a fresh interpreter and prints what its
docstring promises."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))

# what each script's output must contain (checked against values it computes, not copied)
EXPECT = {
    "fit_new_family.py": ["my family: 5 models", "Nc(MyLab)", "prediction for 13B"],
    "family_nc_interval.py": ["Falcon (in the population fit)", "population centre", "R-hat"],
    "holdout_one_family.py": ["held out OPT", "coupling_ode", "linear_ode"],
    "frontier_h.py": ["population line (34 models)", "h = +2.9"],
}


def test_every_example_is_listed():
    assert set(SCRIPTS) == set(EXPECT), "add the new example to EXPECT"


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_has_docstring_and_quick_flag(name):
    source = (EXAMPLES / name).read_text()
    doc = ast.get_docstring(ast.parse(source))
    assert doc and len(doc.splitlines()) >= 3
    assert '"--quick"' in source


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_quick(name):
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--quick"],
                          capture_output=True, text=True, timeout=240, cwd=EXAMPLES.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for text in EXPECT[name]:
        assert text in proc.stdout, (text, proc.stdout)
