"""The commands name every per-family quantity that is not the family's Nc: ``capedyn
coupling``'s per-family least-squares crossing, ``capedyn fit``'s and ``capedyn posterior
--model ode``'s field parameter (the family's Nc with its interval is ``capedyn
posterior``'s default, coupling-level model)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import capedyn as cd
from capedyn.cli.entry import main


def test_coupling_prints_each_family_line_crossing_under_its_own_name(capsys):
    assert main(["coupling"]) == 0
    out = capsys.readouterr().out
    block = out.split("each family's own least-squares line")[1]
    head = block.splitlines()[1].split()
    assert "ls_crossing_b" in head and "nc_b" not in head
    assert "capedyn posterior" in block          # where the family's Nc is
    # OPT's line by hand from the table: consecutive sizes, |ΔHS| ≥ 0.5, OLS of γ12 on
    # log10 of the pair's geometric-mean size in parameters, zero at 10^(-b/a)
    opt = cd.load_base_models().query("family == 'OPT'").dropna(
        subset=["hellaswag", "truthfulqa"]).sort_values("params_b")
    n, hs, tqa = (opt[c].to_numpy(float) for c in ("params_b", "hellaswag", "truthfulqa"))
    d_hs, d_tqa = np.diff(hs), np.diff(tqa)
    keep = np.abs(d_hs) >= 0.5
    x = np.log10(np.sqrt(n[1:] * n[:-1]) * 1e9)[keep]
    a, b = np.polyfit(x, (d_tqa / d_hs)[keep], 1)
    row = next(line for line in block.splitlines() if line.startswith("OPT "))
    shown = float(row.split()[head.index("ls_crossing_b")])
    assert shown == pytest.approx(10 ** (-b / a) / 1e9, rel=1e-3)


def test_fit_names_the_family_nc_a_field_parameter():
    from capedyn.cli.fit import _fit_human

    text = _fit_human({
        "out": "f", "families": ["A"], "metrics": {
            "mean_rel_error_pct": 1.0, "rel_mae_pct": 1.0,
            "per_benchmark": {"hellaswag": {"rel_error_pct": 1.0, "mae": 0.5}}},
        "family_params": [{"family": "A", "start": "a-1b", "nc_b": 0.0309}]})
    head = next(line for line in text.splitlines() if line.startswith("family"))
    assert "field_Nc_B" in head.split() and "Nc_B" not in head.split()
    assert "not a measurement of the family's Nc" in text


def _posterior_record(model: str) -> dict:
    fam = {"family": "A", "n_obs": 3, "nc_median_b": 0.03, "nc_ci68_b": [0.01, 0.1],
           "nc_ci95_b": [0.001, 1.0], "rhat_max": 1.0, "ess_bulk_min": 400.0}
    return {"model": model, "families": [fam], "divergences": 0, "divergences_per_chain": [0],
            "rhat_max": 1.0, "ess_bulk_min": 400.0, "runtime_s": 1.0,
            "config": {"chains": 1, "samples": 10, "warmup": 10, "seed": 0},
            "paper_reference": {"nc_median_b": 3.5, "nc_ci68_b": [3.2, 4.3],
                                "nc_ci95_b": [2.9, 13.4]}}


@pytest.mark.parametrize("model, column", [("coupling", "Nc_median_B"),
                                           ("ode", "field_Nc_median_B")])
def test_posterior_names_the_ode_level_nc_a_field_parameter(model, column):
    from capedyn.cli.posterior import _posterior_human

    text = _posterior_human(_posterior_record(model))
    head = next(line for line in text.splitlines() if line.startswith("family"))
    assert re.split(r"\s+", head.strip())[2] == column
    assert ("field parameter" in text.splitlines()[0]) == (model == "ode")
    assert ("paper reference" in text) == (model == "coupling")
