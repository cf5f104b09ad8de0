"""`capedyn reproduce`: one quick run end to end (through the CLI, in process so the JAX
compilations are shared with the rest of the session), the files it must write, the
summary keys, a few headline numbers recomputed independently with numpy, and the clean
failure on an output folder that cannot be written."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import capedyn as cd
from capedyn import report
from capedyn.cli.entry import main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "out"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["reproduce", "--quick", "--out", str(out), "--json", "--seed", "3"])
    assert rc == 0
    return out, json.loads(buf.getvalue()), None


@pytest.mark.slow
def test_every_file_is_written(quick_run):
    out, printed, _ = quick_run
    for name in ("report.md", "report.html", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for stem in report.FIGURES:
        png = out / "figures" / f"{stem}.png"
        assert png.is_file(), png
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for rel in printed["files"]:
        assert (out / rel).is_file(), rel
    # no temporary files left behind by the atomic writes
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_summary_has_every_key(quick_run):
    out, printed, _ = quick_run
    summary = json.loads((out / "summary.json").read_text())
    for key in ("nc_b", "nc_ci95_b", "llama2_rel_mae_pct", "lofo_mean_rel_mae_pct",
                "frontier_slope", "frontier_intercept", "quick", "seed", "timings_s", "version"):
        assert key in summary, key
    assert summary["quick"] is True and summary["seed"] == 3
    assert summary["version"] == cd.__version__
    assert set(summary["timings_s"]) >= set(report.STAGES) | {"total"}
    lo, hi = summary["nc_ci95_b"]
    assert 0 < lo <= summary["nc_b"] <= hi
    from capedyn.evaluation.heldout import DEFAULT_METHODS

    methods = set(DEFAULT_METHODS)
    assert set(summary["llama2_rel_mae_pct"]) == methods
    assert set(summary["lofo_mean_rel_mae_pct"]) == methods
    assert printed["nc_b"] == summary["nc_b"]


@pytest.mark.slow
def test_frontier_line_matches_numpy(quick_run, frontier_df):
    out, _, _ = quick_run
    summary = json.loads((out / "summary.json").read_text())
    frozen = frontier_df[frontier_df["subset"] != "post_cutoff"]
    a, b = np.polyfit(frozen["swe_bench"], frozen["gpqa_diamond"], 1)
    assert summary["frontier_slope"] == pytest.approx(a, rel=1e-9)
    assert summary["frontier_intercept"] == pytest.approx(b, rel=1e-9)


@pytest.mark.slow
def test_p1_polynomial_matches_numpy(quick_run, base_df):
    """The P1 degree-2 polynomial (Pythia → Llama-2), recomputed by hand with numpy."""
    out, _, _ = quick_run
    summary = json.loads((out / "summary.json").read_text())
    py = base_df[base_df["family"] == "Pythia"]
    ll = base_df[base_df["family"] == "Llama-2"].sort_values("params_b").iloc[1:]
    errs, actual = [], []
    for b in cd.BENCHMARKS:
        coef = np.polyfit(np.log10(py["params_b"]) + 9, py[b], 2)
        pred = np.polyval(coef, np.log10(ll["params_b"]) + 9)
        errs += list(np.abs(pred - ll[b]))
        actual += list(ll[b])
    expected = 100 * np.mean(errs) / np.mean(actual)
    assert summary["llama2_rel_mae_pct"]["poly2"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_report_says_quick_and_is_self_contained(quick_run):
    out, _, _ = quick_run
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "QUICK RUN" in md.split("\n## ")[0]           # at the top, before any section
    assert "QUICK RUN" in html[: html.find("<h2>")]
    assert html.count("data:image/png;base64,") == len(re.findall(r"!\[", md))
    assert not re.search(r'src="(?!data:)', html)       # nothing loaded from outside
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (out / link).is_file()
    # every paper reference sits beside a computed value in a "paper" column or row
    assert md.count("paper") >= 10


@pytest.mark.slow
def test_quick_run_uses_the_short_budgets_and_times_every_stage(quick_run):
    out, printed, _ = quick_run
    summary = json.loads((out / "summary.json").read_text())
    quick, full = summary["config"], asdict(report.RunConfig.make(quick=False, seed=3))
    assert quick["quick"] is True and set(quick) == set(full)
    shorter = [k for k, v in quick.items()
               if isinstance(v, int) and not isinstance(v, bool) and k != "seed"
               and isinstance(full[k], int) and v < full[k]]
    assert "n_bootstrap" in shorter, quick
    for k, v in quick.items():  # no budget of the quick run exceeds the full run's
        if isinstance(v, int) and not isinstance(v, bool) and isinstance(full[k], int):
            assert v <= full[k], k
    t = summary["timings_s"]
    stages = [t[s] for s in report.STAGES]
    assert all(v >= 0 for v in stages)
    # stages run one after another inside the total (each rounded to 0.01 s)
    assert t["total"] >= sum(stages) - 0.01 * len(stages)


@pytest.mark.slow
def test_quick_p2_holds_out_the_first_eligible_families(quick_run, base_df):
    """A quick run's P2 holds out the first few families (table order) that have at least
    three models with all five scores; the rest are not held out."""
    from capedyn.report.s5_holdout import QUICK_LOFO_FAMILIES

    out, _, _ = quick_run
    summary = json.loads((out / "summary.json").read_text())
    complete = base_df.dropna(subset=list(cd.BENCHMARKS))
    eligible = [f for f in dict.fromkeys(base_df["family"])
                if (complete["family"] == f).sum() >= 3]
    assert len(eligible) > QUICK_LOFO_FAMILIES
    assert summary["lofo_families"] == eligible[:QUICK_LOFO_FAMILIES]
    md = (out / "report.md").read_text()
    assert f"P2, leave one family out: {QUICK_LOFO_FAMILIES} families" in md


def test_unwritable_out_fails_before_any_work(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    called = []
    monkeypatch.setattr(report.run, "_STAGE_FUNCS",
                        {s: (lambda run, s=s: called.append(s)) for s in report.STAGES})
    rc = main(["reproduce", "--quick", "--out", str(blocker / "out")])
    assert rc == 2
    assert called == []  # refused before the first stage ran
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write to output folder" in err
    assert str(blocker / "out") in err
    with pytest.raises(OSError):
        report.reproduce(blocker / "out", quick=True, progress=False)
    assert called == []


def test_bad_seed_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        report.reproduce(tmp_path / "o", seed=1.5, progress=False)


def test_number_formatting():
    assert report.fmt(0.62914) == "0.629"
    assert report.fmt(-5.8861) == "-5.89"
    assert report.fmt(3.5) == "3.50"
    assert report.fmt(176.0) == "176"
    assert report.fmt(float("nan")) == "–" and report.fmt(None) == "–"
    assert report.paper(0.629) == "0.629" and report.paper((3.2, 4.3)) == "[3.2, 4.3]"


def test_markdown_and_html_tables_escape():
    doc = report.Report("t")
    doc.table([{"a": "x|y", "b": 1.5}, {"a": "<b>", "b": None}], caption="c")
    md = doc.to_markdown()
    assert "x\\|y" in md and "| \\<b> | – |" in md   # a tag in a value is text
    html = doc.to_html(Path("."))
    assert "&lt;b&gt;" in html and "<caption>c</caption>" in html


# ------------------------------------------------------------------ rendering alone

def _hand_built_coupling():
    """A coupling result with round, known numbers (nothing fitted)."""
    from capedyn.report.s2_coupling import CouplingResult, PointChecks

    base = pd.DataFrame({"model": ["a1", "a2", "a3"], "family": ["Fam"] * 3,
                         "params_b": [1.0, 10.0, 100.0], "hellaswag": [40.0, 50.0, 60.0],
                         "truthfulqa": [30.0, 28.0, 45.0]})
    pairs = pd.DataFrame({"family": ["Fam", "Fam", "Fam"], "model_from": ["a1", "a2", "a1"],
                          "model_to": ["a2", "a3", "a3"], "params_b_from": [1.0, 10.0, 1.0],
                          "params_b_to": [10.0, 100.0, 100.0], "gamma12": [-0.2, 1.7, 0.0],
                          "skipped": [False, False, True]})
    fit = cd.CouplingFit(A=0.51234, B=-4.8765, r2=0.4321, n=2, nc_b=3.4567, log10_nc=9.54,
                         crossing="upward", robust_A=0.6, robust_B=-5.0, robust_nc_b=2.0,
                         robust_crossing="upward")
    boot = cd.NcBootstrap(median_b=3.4567, ci68_b=(2.5, 4.25), ci95_b=(1.234, 7.891),
                          n_resamples=500, n_valid=487, n_dropped=13, n_pairs=2, seed=0,
                          nc_b=3.4567, families=("Fam",))
    sign = cd.SignTest(correct=1, total=2, below_b=3.0, above_b=10.0,
                       violations=({"family": "Fam", "model_from": "a1", "model_to": "a2",
                                    "gamma12": -0.2},))
    fams = pd.DataFrame({"family": ["Fam"], "n_pairs": [2], "gamma0": [0.95], "intercept": [-9.0],
                         "nc_b": [float("nan")], "crossing": ["no upward crossing"],
                         "nc_position": ["outside"]})
    checks = PointChecks(pythia_r_hs_tqa=None, olmo_pairs=[], opt_spans=[], opt_consecutive=[],
                         olmo_classifier=[])
    return CouplingResult(base=base, pairs=pairs, min_delta_hs=0.5, fit_all=fit, fit_paper14=fit,
                          boot=boot, boot_web=boot, sign_all=sign, sign_paper14=sign,
                          family_nc=fams, usable_pairs_by_family={"Fam": 2}, checks=checks,
                          n_models=3, n_bonus_models=1, n_tax_models=2)


def test_coupling_section_renders_the_numbers_it_is_given():
    md = report.render_section("coupling", _hand_built_coupling(), figures={})
    assert md.startswith("## 2. Running coupling")
    # 3 pairs, 1 skipped; of the 2 used, one below zero and one above
    assert "3 consecutive within-family pairs, 1 skipped" in md
    assert "γ12 < 0 (tax) in 1 pair, = 0 in 0, > 0 (bonus) in 1." in md
    # A = 0.51234, B = -4.8765, R² = 0.4321, Nc = 3.4567 at three significant digits
    assert "| all families | 2 | 0.512 | -4.88 | 0.432 | 3.46 | 0.600 | -5.00 | 2.00 |" in md
    assert "| Pythia, Llama-1, Llama-2 (2 pairs) | 3.46 | [2.50, 4.25] | [1.23, 7.89] | 487 / 500 |" in md
    assert "Fam a1→a2 (γ12 = -0.200)" in md
    assert "| Fam |" not in md.split("*sign test")[0]   # each family's Nc is in section 4
    assert "3 base models: 1 in the bonus phase (TQA > TQA_c), 2 in the tax phase." in md
    assert "![" not in md      # no figure was saved, so none is referenced
    with_figs = report.render_section("coupling", _hand_built_coupling())
    assert "![gamma12 vs n](figures/gamma12_vs_n.png)" in with_figs


def test_data_section_counts_the_tables_it_is_given():
    from capedyn.report.s1_data import DataResult

    base = pd.DataFrame({"model": ["a", "b", "c"], "family": ["F1", "F1", "F2"]})
    front = pd.DataFrame({"model": ["x", "y"], "lab": ["L1", "L2"]})
    fams = pd.DataFrame({"family": ["F1", "F2"], "models": [2, 1], "complete": [2, 0],
                         "smallest_b": [0.5, 7.0], "largest_b": [1.0, 7.0], "source": ["s|1", "s2"]})
    md = report.render_section("data", DataResult(base=base, frontier=front, complete=base[:2],
                                                   families=fams))
    assert "**3** models in **2** families (2 with all five scores" in md
    assert "Frontier models: **2** from **2** labs." in md
    assert "| F1 | 2 | 2 | 0.500 | 1.00 | s\\|1 |" in md     # a bar in a cell is escaped


def test_report_writes_one_document_as_markdown_and_html():
    from capedyn.report.document import code, strong

    doc = report.Report("A title")
    doc.callout(["QUICK: a ", code("code"), " ", strong("warning")])
    doc.heading("1. Part")
    doc.para(["Text with |bars| and ", strong("bold"), "."])
    doc.table([{"a": "x|y", "b": 1.5}, {"a": "z", "b": None}], caption="a caption")
    doc.table([], caption="empty")
    doc.bullets(["one", "two"])
    doc.heading("Sub", level=3)
    assert doc.to_markdown() == (
        "# A title\n\n> QUICK: a `code` **warning**\n\n## 1\\. Part\n\n"
        "Text with |bars| and **bold**.\n\n*a caption*\n\n| a | b |\n|---|---|\n"
        "| x\\|y | 1.50 |\n| z | – |\n\n*empty*\n\n(no rows)\n\n- one\n- two\n\n### Sub\n")
    page = doc.to_html(Path("."))
    assert '<div class="callout">QUICK: a <code>code</code> <strong>warning</strong></div>' in page
    assert "<td class=\"txt\">x|y</td><td class=\"num\">1.50</td>" in page
    assert "<caption>empty</caption><thead><tr></tr></thead><tbody></tbody>" in page
    assert "<ul><li>one</li><li>two</li></ul>" in page and "<h3>Sub</h3>" in page


def test_a_run_without_results_renders_only_intro_and_details():
    cfg = report.RunConfig.make(quick=True, seed=5)
    md = report.render_markdown({}, cfg, version="9.9", generated="2000-01-01 00:00",
                                timings={"data": 1.54, "total": 2.0}, stages=report.STAGES)
    assert md.startswith("# capedyn reproduce")
    assert "QUICK RUN" in md and "seed 5" in md and "capedyn 9.9 on 2000-01-01 00:00" in md
    assert "| data | 1.5 |" in md
    assert "| ode | nan |" in md and "| total | 2.0 |" in md
    assert "| n_bootstrap | 1000 |" in md and "| ode_posterior | no |" in md
    assert "## 1." not in md


def _stub_posterior(model: str, median_b: float):
    from types import SimpleNamespace

    table = pd.DataFrame({"family": ["Fam"], "kind": ["family"], "n_obs": [3],
                          "nc_median_b": [median_b], "nc_ci68_lo_b": [median_b / 2],
                          "nc_ci68_hi_b": [median_b * 2], "nc_ci95_lo_b": [median_b / 4],
                          "nc_ci95_hi_b": [median_b * 4], "rhat_max": [1.002],
                          "ess_bulk_min": [812.0]})
    return SimpleNamespace(model=model, table=table, divergences=0, runtime_s=12.0, notes=[],
                           config=SimpleNamespace(chains=2, samples=100, warmup=100))


def test_posterior_section_shows_the_implied_nc_beside_the_coupling_interval():
    from types import SimpleNamespace

    from capedyn.report.s4_posterior import PosteriorResult

    rows = pd.DataFrame({"family": ["Fam", "Gam"], "smallest_b": [0.1, 1.0],
                         "largest_b": [12.0, 70.0], "observed_turn": [True, False],
                         "coupling_median_b": [3.0, 2.0], "coupling_ci68_lo_b": [1.5, 1.0],
                         "coupling_ci68_hi_b": [6.0, 4.0], "implied_median_b": [4.2, np.inf],
                         "implied_ci68_lo_b": [2.0, 0.0], "implied_ci68_hi_b": [9.0, np.inf],
                         "frac_cross": [0.9, 0.05], "agree68": [True, False]})
    implied = SimpleNamespace(table=rows, n_inside=1, n_agree=1, n_families=2, n_agree_all=1,
                              n_agree95=1)
    res = PosteriorResult(coupling=_stub_posterior("coupling", 3.0),
                          ode=_stub_posterior("ode", 0.4), implied=implied)
    md = report.render_section("posterior", res, figures={})
    assert "| Fam | [0.100, 12.0] | yes | 3.00 | [1.50, 6.00] | 4.20 | [2.00, 9.00] | 0.900 | yes |" in md
    # a family whose draws stay on the tax side: an infinite median and upper bound
    assert "| Gam | [1.00, 70.0] | no | 2.00 | [1.00, 4.00] | ∞ | [0, ∞] | 0.0500 | no |" in md
    assert "Of the 1 families whose own pairs turn from tax to bonus" in md
    assert ("agrees with the coupling-level posterior for 1 (inside its 95% interval: 1); "
            "over all 2 families, 1.") in " ".join(md.split())
    assert "definition=\"linear\"" not in md           # no linear reading was given
    linear = SimpleNamespace(table=rows, n_inside=1, n_agree=0, n_families=2, n_agree_all=2,
                             n_agree95=1)
    md = report.render_section("posterior", PosteriorResult(
        coupling=_stub_posterior("coupling", 3.0), ode=_stub_posterior("ode", 0.4),
        implied=implied, implied_linear=linear), figures={})
    flat = " ".join(md.split())
    assert "the implied Nc agrees for 0 of 1 (inside the 95% interval: 1; all families: 2 of 2)" in flat
    without = report.render_section("posterior", PosteriorResult(
        coupling=_stub_posterior("coupling", 3.0), ode=None), figures={})
    assert "ODE-implied" not in without and "skipped in quick mode" in without


def test_posterior_section_sets_each_family_own_line_beside_its_nc():
    """Stage 2's least-squares line of a family (γ0, crossing) sits in the family's row of
    the posterior table under its own name; without one the cells are dashes."""
    from capedyn.report.s4_posterior import PosteriorResult

    ls = _hand_built_coupling().family_nc
    res = PosteriorResult(coupling=_stub_posterior("coupling", 3.0), ode=None, least_squares=ls)
    md = report.render_section("posterior", res, figures={})
    assert ("| Fam | 3 | 3.00 | [1.50, 6.00] | [0.750, 12.0] | 1.00 | 812 | 0.950 | "
            "no upward crossing | – |") in md
    assert "own line's crossing N0 (B)" in md
    md = report.render_section("posterior", dataclasses.replace(res, least_squares=None),
                               figures={})
    assert "| Fam | 3 | 3.00 | [1.50, 6.00] | [0.750, 12.0] | 1.00 | 812 | – | – | – |" in md
