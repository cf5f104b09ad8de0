"""The scripts in examples/: each runs with ``--quick`` and what it computes is checked
against values derived independently from the shipped CSVs (numpy/scipy by hand), never
against text copied from its own output."""

from __future__ import annotations

import csv
import json
import runpy
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.linalg import expm

import capedyn as cd

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))
CHECKED = {"fit_new_family.py", "family_nc_interval.py", "holdout_one_family.py",
           "frontier_h.py", "notebook_state.py",
           "from_lm_eval.py"}  # checked in tests/test_ingest.py


def _main(name: str):
    """The script's ``main`` function, loaded without running the script."""
    return runpy.run_path(str(EXAMPLES / name), run_name="example")["main"]


def _rows(name: str) -> list[dict]:
    with resources.files("capedyn.benchmarks_data").joinpath(name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_example_is_checked():
    assert set(SCRIPTS) == CHECKED, "add a test for the new example below"


_HELP_DRIVER = """
import contextlib, io, json, runpy, sys
out = {}
for path in sys.argv[1:]:
    buf = io.StringIO()
    sys.argv = [path, "--help"]
    with contextlib.redirect_stdout(buf):
        try:
            runpy.run_path(path, run_name="__main__")
            code = None
        except SystemExit as exc:
            code = exc.code
    out[path] = [code, buf.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def help_texts() -> dict:
    """Every script run as a program (``__main__``, cwd the project, no test paths) with
    ``--help``, in one fresh interpreter: script path -> (exit code, stdout)."""
    paths = [str(EXAMPLES / name) for name in SCRIPTS]
    proc = subprocess.run([sys.executable, "-c", _HELP_DRIVER, *paths], capture_output=True,
                          text=True, timeout=120, cwd=EXAMPLES.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_offers_quick_in_a_fresh_interpreter(name, help_texts):
    code, text = help_texts[str(EXAMPLES / name)]
    assert code == 0
    assert "--quick" in text  # argparse's usage: the script takes the flag


# --------------------------------------------------------------------------- frontier_h

def test_frontier_h_runs_standalone_and_matches_linregress():
    swe, gpqa = 70.0, 65.0
    proc = subprocess.run([sys.executable, str(EXAMPLES / "frontier_h.py"), "--quick",
                           "--swe", str(swe), "--gpqa", str(gpqa)],
                          capture_output=True, text=True, timeout=120, cwd=EXAMPLES.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    frozen = [r for r in _rows("frontier_models.csv") if r["subset"] != "post_cutoff"]
    fit = stats.linregress([float(r["swe_bench"]) for r in frozen],
                           [float(r["gpqa_diamond"]) for r in frozen])
    h = gpqa - (fit.slope * swe + fit.intercept)
    assert f"population line ({len(frozen)} models)" in proc.stdout
    assert f"h = {h:+.1f}" in proc.stdout
    assert ("coding-rich" if h < 0 else "reasoning-rich") in proc.stdout


def test_frontier_h_returns_the_independent_fit(capsys):
    out = _main("frontier_h.py")(["--quick"])  # the defaults: the paper's worked example row
    frozen = [r for r in _rows("frontier_models.csv") if r["subset"] != "post_cutoff"]
    fit = stats.linregress([float(r["swe_bench"]) for r in frozen],
                           [float(r["gpqa_diamond"]) for r in frozen])
    ref = cd.PAPER_REFERENCE["worked_example"]
    assert out["slope"] == pytest.approx(fit.slope, rel=1e-10)
    assert out["intercept"] == pytest.approx(fit.intercept, rel=1e-10)
    assert out["predicted_gpqa"] == pytest.approx(fit.slope * ref["swe"] + fit.intercept)
    assert out["h"] == pytest.approx(ref["gpqa"] - out["predicted_gpqa"])
    assert f"h = {out['h']:+.1f}" in capsys.readouterr().out


# --------------------------------------------------------------------------- holdout

def _poly_rel_mae(df, family: str, degree: int, anchored: bool) -> float:
    """Pooled per-benchmark polynomial in log10 N, trained on every other family, by hand."""
    train = df[df["family"] != family]
    own = cd.complete_models(df[df["family"] == family]).sort_values("params_b")
    init, targets = own.iloc[0], own.iloc[1:]
    err, actual = [], []
    for b in cd.BENCHMARKS:
        rows = train.dropna(subset=[b])
        coef = np.polyfit(np.log10(rows["params_b"].to_numpy(float)) + 9, rows[b], degree)
        pred = np.polyval(coef, np.log10(targets["params_b"].to_numpy(float)) + 9)
        if anchored:
            pred = pred + init[b] - np.polyval(coef, np.log10(init["params_b"]) + 9)
        err += list(np.abs(pred - targets[b]))
        actual += list(targets[b])
    return 100 * np.mean(err) / np.mean(actual)


def _linear_ode_rel_mae(df, family: str) -> float:
    """dy/dx = C·y + c by least squares on secants of every other family, solved exactly."""
    train = cd.complete_models(df[df["family"] != family])
    mids, slopes = [], []
    for _, g in train.groupby("family"):
        g = g.sort_values("params_b")
        if len(g) < 2:
            continue
        x = np.log10(g["params_b"].to_numpy(float)) + 9
        y = g[list(cd.BENCHMARKS)].to_numpy(float)
        mids.append((y[1:] + y[:-1]) / 2)
        slopes.append(np.diff(y, axis=0) / np.diff(x)[:, None])
    Y, dY = np.vstack(mids), np.vstack(slopes)
    coef = np.linalg.lstsq(np.hstack([Y, np.ones((len(Y), 1))]), dY, rcond=None)[0]
    gen = np.zeros((6, 6))
    gen[:5, :5], gen[:5, 5] = coef[:-1].T, coef[-1]
    own = cd.complete_models(df[df["family"] == family]).sort_values("params_b")
    y0 = np.append(own.iloc[0][list(cd.BENCHMARKS)].to_numpy(float), 1.0)
    x0 = np.log10(own.iloc[0]["params_b"]) + 9
    targets = own.iloc[1:]
    pred = np.array([(expm(gen * (np.log10(p) + 9 - x0)) @ y0)[:5] for p in targets["params_b"]])
    actual = targets[list(cd.BENCHMARKS)].to_numpy(float)
    return 100 * np.mean(np.abs(pred - actual)) / np.mean(actual)


@pytest.mark.slow
def test_holdout_example_matches_hand_computed_baselines(base_df, capsys):
    out = _main("holdout_one_family.py")(["--quick", "--family", "OPT"])
    assert out["poly2"] == pytest.approx(_poly_rel_mae(base_df, "OPT", 2, False), rel=1e-6)
    assert out["poly2_anchored"] == pytest.approx(_poly_rel_mae(base_df, "OPT", 2, True),
                                                  rel=1e-6)
    assert out["linear_ode"] == pytest.approx(_linear_ode_rel_mae(base_df, "OPT"), rel=1e-6)
    # the learned ODE beats the pooled polynomial it is compared with on this family
    assert np.isfinite(out["coupling_ode"]) and out["coupling_ode"] < out["poly2"]
    printed = capsys.readouterr().out
    assert f"{out['poly2']:6.2f}%" in printed


# --------------------------------------------------------------------------- new family

@pytest.mark.slow
def test_fit_new_family_predicts_the_held_back_size(base_df):
    out = _main("fit_new_family.py")(["--quick"])
    opt13 = base_df[(base_df["family"] == "OPT") & (base_df["params_b"] == 13.0)].iloc[0]
    errors = [abs(out["prediction"][b] - opt13[b]) for b in cd.BENCHMARKS]
    # a one-size extrapolation from 6.7B: within a few points of the measured 13B model
    assert np.mean(errors) < 6.0, errors
    assert all(0.0 < out["prediction"][b] < 100.0 for b in cd.BENCHMARKS)
    assert 0.0 < out["nc_b"] < np.inf


# --------------------------------------------------------------------------- Nc interval

@pytest.mark.slow
def test_family_nc_interval_brackets_the_sign_change_in_the_csv():
    out = _main("family_nc_interval.py")(["--quick", "--family", "Falcon"])
    row = out["in_population"]
    assert row["nc_ci95_lo_b"] <= row["nc_ci68_lo_b"] <= row["nc_median_b"] \
        <= row["nc_ci68_hi_b"] <= row["nc_ci95_hi_b"]
    # γ12 of Falcon's two consecutive pairs, from the CSV by hand: one negative, one
    # positive, so γ12 crosses zero between them; interpolate the crossing in log N
    falcon = sorted((float(r["params_b"]), float(r["hellaswag"]), float(r["truthfulqa"]))
                    for r in _rows("base_models.csv") if r["family"] == "Falcon")
    (n0, h0, t0), (n1, h1, t1), (n2, h2, t2) = falcon
    g = [(t1 - t0) / (h1 - h0), (t2 - t1) / (h2 - h1)]
    x = [0.5 * np.log10(n0 * n1), 0.5 * np.log10(n1 * n2)]
    assert g[0] < 0 < g[1]
    crossing_b = 10 ** (x[0] - g[0] * (x[1] - x[0]) / (g[1] - g[0]))
    assert row["nc_ci95_lo_b"] < crossing_b < row["nc_ci95_hi_b"]


# --------------------------------------------------------------------------- notebook state

def _plot_functions_in_source() -> set[str]:
    """Top-level ``def plot_*`` in capedyn's modules, read with ast (independent of the
    script's own discovery)."""
    import ast

    import capedyn

    names = set()
    for path in Path(capedyn.__file__).parent.glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("plot_"):
                names.add(f"{path.stem}.{node.name}")
    return names


@pytest.mark.slow
@pytest.mark.xdist_group("examples_notebook")  # its own group on two workers
def test_notebook_state_is_left_alone(tmp_path):
    import json
    import os

    env = {**os.environ, "MPLBACKEND": "svg"}  # a user's choice that a switch would undo
    proc = subprocess.run([sys.executable, str(EXAMPLES / "notebook_state.py"), "--json"],
                          capture_output=True, text=True, timeout=400, cwd=tmp_path, env=env)
    out = json.loads(proc.stdout)
    assert out["before"]["backend"] == "svg"
    assert out["before"]["jax_enable_x64"] is False and out["before"]["ones_dtype"] == "float32"
    steps = {s["step"]: s for s in out["steps"]}
    assert any(k.startswith("CouplingODE") for k in steps)
    assert any(k.startswith("sample_posterior") for k in steps)
    assert any(k.startswith("holdout") for k in steps)
    assert out["not_called"] == []
    assert {k for k, s in steps.items() if s["kind"]} == _plot_functions_in_source()
    # float64 is scoped: no step may flip the flag or the default dtype
    for s in out["steps"]:
        assert not {"jax_enable_x64", "ones_dtype"} & set(s["changed"]), s
    # figures in the capedyn.plotting convention (return the Axes) never touch the backend
    switched = [s["step"] for s in out["steps"] if "backend" in s["changed"]]
    assert not [s for s in switched if steps[s]["kind"] == "Axes/Figure"], switched
    assert not switched, switched  # no capedyn call may switch the backend
    assert out["unchanged"] and proc.returncode == 0
