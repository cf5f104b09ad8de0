"""Frontier h-field. Expected values come from the CSV read independently with the csv
module and fitted with numpy/scipy as a second method, or from small hand-made tables whose
answers are worked out in the comments."""

from __future__ import annotations

import csv
import json
import math
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import capedyn as cd
from capedyn._stats import bootstrap_indices
from capedyn.cli.entry import main


def _csv_rows():
    path = resources.files("capedyn.benchmarks_data").joinpath("frontier_models.csv")
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _frame(rows):
    """A frontier DataFrame from (model, lab, swe, gpqa[, release]) tuples."""
    cols = ["model", "lab", "swe_bench", "gpqa_diamond", "release"]
    return pd.DataFrame([r + ("",) * (5 - len(r)) for r in rows], columns=cols)


# --------------------------------------------------------------------------- h and reading

def _linregress(rows):
    x = np.array([float(r["swe_bench"]) for r in rows])
    y = np.array([float(r["gpqa_diamond"]) for r in rows])
    return x, y, stats.linregress(x, y)


def test_h_is_the_residual_of_an_independent_fit_for_every_csv_row():
    rows = _csv_rows()
    _, _, ref = _linregress([r for r in rows if r["subset"] != "post_cutoff"])
    for r in rows:
        swe, gpqa = float(r["swe_bench"]), float(r["gpqa_diamond"])
        expected = gpqa - (ref.slope * swe + ref.intercept)
        assert cd.h_field(swe, gpqa, ref.slope, ref.intercept) == pytest.approx(expected,
                                                                               abs=1e-9)
        direction = cd.h_direction(expected)
        assert direction == ("reasoning-rich" if expected > 0.05 else
                             "coding-rich" if expected < -0.05 else "on the trend")
        assert cd.is_specialist(expected) == (abs(expected) > 5)


def test_paper_worked_example_from_the_csv_row():
    """The paper's worked example is a model of the shipped table: its row, read from the
    CSV, under the paper's frozen line gives the predicted GPQA and h the paper reports."""
    ref = cd.PAPER_REFERENCE["worked_example"]
    (row,) = [r for r in _csv_rows() if float(r["swe_bench"]) == ref["swe"]
              and float(r["gpqa_diamond"]) == ref["gpqa"]]
    a, b = cd.PAPER_COEFFICIENTS["slope"], cd.PAPER_COEFFICIENTS["intercept"]
    swe, gpqa = float(row["swe_bench"]), float(row["gpqa_diamond"])
    h = cd.h_field(swe, gpqa, a, b)
    assert round(gpqa - h, 1) == ref["predicted_gpqa"]
    assert round(h, 1) == ref["h"]
    assert cd.reading(h).startswith(f"reasoning-rich (h = {h:+.1f})")


def test_point_on_the_line_has_zero_field_and_vectorises():
    a, b = 0.6, 30.0
    swe = np.array([10.0, 50.0, 90.0])
    h = cd.h_field(swe, a * swe + b, a, b)
    np.testing.assert_allclose(h, 0.0, atol=1e-12)
    assert cd.reading(float(h[1])).startswith("on the trend")
    assert cd.h_field(50.0, 70.0, a, b) == pytest.approx(10.0)  # 70 - (30 + 30)


def test_reading_directions_and_specialist():
    assert cd.h_direction(-3.0) == "coding-rich" and not cd.is_specialist(-3.0)
    assert cd.reading(-6.2).startswith("coding-rich specialist")
    assert cd.reading(5.0).startswith("reasoning-rich (")  # |h| = 5 is not > 5
    assert "specialist" in cd.reading(5.01)


@pytest.mark.parametrize("swe,gpqa,name", [(120.0, 50.0, "swe"), (50.0, -0.1, "gpqa"),
                                           (np.array([10.0, 101.0]), 50.0, "swe"),
                                           (math.nan, 50.0, "swe")])
def test_h_field_rejects_scores_outside_0_100(swe, gpqa, name):
    with pytest.raises(ValueError, match=name):
        cd.h_field(swe, gpqa, 0.5, 46.0)


# --------------------------------------------------------------------------- the line

def test_line_matches_linregress_on_csv_read_independently(frontier_df):
    rows = _csv_rows()
    frozen = [r for r in rows if r["subset"] != "post_cutoff"]
    x = np.array([float(r["swe_bench"]) for r in frozen])
    y = np.array([float(r["gpqa_diamond"]) for r in frozen])
    ref = stats.linregress(x, y)
    line = cd.population_line(frontier_df, n_bootstrap=200)
    assert line.n == len(frozen) == 34
    assert line.slope == pytest.approx(ref.slope, rel=1e-10)
    assert line.intercept == pytest.approx(ref.intercept, rel=1e-10)
    assert line.r == pytest.approx(ref.rvalue, rel=1e-10)

    xa = np.array([float(r["swe_bench"]) for r in rows])
    ya = np.array([float(r["gpqa_diamond"]) for r in rows])
    every = cd.population_line(frontier_df, n_bootstrap=0, include_post_cutoff=True)
    np.testing.assert_allclose([every.slope, every.intercept], np.polyfit(xa, ya, 1), rtol=1e-10)
    assert every.n == len(rows)


def test_bootstrap_matches_a_loop_of_polyfits(frontier_df):
    line = cd.population_line(frontier_df, n_bootstrap=300, seed=7)
    rows = [r for r in _csv_rows() if r["subset"] != "post_cutoff"]
    x = np.array([float(r["swe_bench"]) for r in rows])
    y = np.array([float(r["gpqa_diamond"]) for r in rows])
    # the draws of the shared paired bootstrap, refitted one by one with np.polyfit
    idx = bootstrap_indices(x.size, 300, seed=7)
    assert idx.shape == (300, x.size) and idx.min() >= 0 and idx.max() < x.size
    fits = np.array([np.polyfit(x[i], y[i], 1) for i in idx])
    np.testing.assert_allclose(line.slope_ci, np.percentile(fits[:, 0], [2.5, 97.5]), rtol=1e-9)
    np.testing.assert_allclose(line.intercept_ci, np.percentile(fits[:, 1], [2.5, 97.5]),
                               rtol=1e-9)
    assert line.slope_ci[0] < line.slope < line.slope_ci[1]


# --------------------------------------------------------------------------- per lab

def test_lab_summary_one_model_lab_has_no_slope_and_says_so():
    df = _frame([("a1", "A", 10.0, 20.0), ("a2", "A", 20.0, 40.0), ("a3", "A", 30.0, 50.0),
                 ("b1", "B", 40.0, 70.0)])
    out = {e["lab"]: e for e in cd.lab_summary(df, (1.0, 10.0))}
    assert out["B"]["slope"] is None and out["B"]["intercept"] is None
    assert "1 model" in out["B"]["note"] and "no slope" in out["B"]["note"]
    assert out["B"]["mean_h"] == pytest.approx(70.0 - 50.0)
    ref = np.polyfit([10.0, 20.0, 30.0], [20.0, 40.0, 50.0], 1)
    assert [out["A"]["slope"], out["A"]["intercept"]] == pytest.approx(list(ref))
    assert out["A"]["mean_h"] == pytest.approx(((20 - 20) + (40 - 30) + (50 - 40)) / 3)
    assert out["A"]["note"] == ""


def test_lab_summary_trajectory_sorted_by_release_unknown_last():
    df = _frame([("x1", "A", 50.0, 60.0, ""), ("x2", "A", 50.0, 60.0, "2026-04-16"),
                 ("x3", "A", 50.0, 60.0, "2025-02"), ("x4", "A", 50.0, 60.0, "2025")])
    (lab,) = cd.lab_summary(df, cd.PAPER_COEFFICIENTS)
    assert [t["model"] for t in lab["trajectory"]] == ["x4", "x3", "x2", "x1"]
    assert "same SWE" in lab["note"]  # four models but one SWE value


def test_lab_means_on_shipped_table_match_csv_by_hand(frontier_df):
    rows = [r for r in _csv_rows() if r["subset"] != "post_cutoff"]
    _, _, fit = _linregress(rows)
    a, b = fit.slope, fit.intercept

    def h(r):
        return float(r["gpqa_diamond"]) - (a * float(r["swe_bench"]) + b)

    out = {e["lab"]: e for e in cd.lab_summary(frontier_df, (a, b))}
    assert set(out) == {r["lab"] for r in rows}
    for lab in out:
        mine = [h(r) for r in rows if r["lab"] == lab]
        core = [h(r) for r in rows if r["lab"] == lab and r["subset"] == "core"]
        assert out[lab]["n"] == len(mine)
        assert out[lab]["mean_h"] == pytest.approx(np.mean(mine), abs=1e-9)
        if core:
            assert out[lab]["mean_h_core"] == pytest.approx(np.mean(core), abs=1e-9)
        else:
            assert out[lab]["mean_h_core"] is None


# --------------------------------------------------------------------------- holdouts

def test_leave_one_lab_out_by_hand():
    # A: y = x + 10, B: y = x + 15, C: y = x + 20 at x = 10, 20, 30; D: one model (20, 35).
    rows = [(f"{lab}{x}", lab, float(x), float(x + off))
            for lab, off in (("A", 10), ("B", 15), ("C", 20)) for x in (10, 20, 30)]
    df = _frame(rows + [("D20", "D", 20.0, 35.0)])
    # Without A: mean x = 20, slope = (200 + 200) / 400 = 1, mean y = 260/7 -> b = 120/7,
    # A's error 120/7 - 10 = 50/7. C is the mirror image; without B or D the line is x + 15.
    out = cd.leave_one_lab_out(df, min_models=3)
    mae = {e["lab"]: e["mae"] for e in out["per_lab"]}
    assert mae["A"] == pytest.approx(50 / 7) and mae["C"] == pytest.approx(50 / 7)
    assert mae["B"] == pytest.approx(0.0, abs=1e-9) and mae["D"] == pytest.approx(0.0, abs=1e-9)
    assert out["n_labs"] == 3 and out["n_labs_all"] == 4
    assert out["mean_mae"] == pytest.approx(100 / 21)
    assert out["std_mae"] == pytest.approx(50 * math.sqrt(2) / 21)
    assert out["mean_mae_all"] == pytest.approx(25 / 7)
    assert out["std_mae_all"] == pytest.approx(25 / 7)
    assert out["pooled_mae"] == pytest.approx((6 * 50 / 7) / 10)


def test_extrapolation_check_by_hand():
    low = [(f"l{x}", "L", float(x), float(x + 10)) for x in (10, 20, 30)]
    high = [(f"h{x}", "H", float(x), float(x + 12)) for x in (40, 50, 60)]
    out = cd.extrapolation_check(_frame(high + low), fraction=0.5)
    assert (out["n_train"], out["n_test"]) == (3, 3)
    assert (out["slope"], out["intercept"]) == pytest.approx((1.0, 10.0))
    assert out["mae"] == pytest.approx(2.0) and out["bias"] == pytest.approx(-2.0)
    assert (out["swe_max_train"], out["swe_min_test"]) == (30.0, 40.0)


# --------------------------------------------------------------------------- saturation

def test_saturation_on_a_hand_made_column():
    df = pd.DataFrame({"model": list("abcdefg"),
                       "score": [88.2, 90.0, 70.0, 89.5, math.nan, 88.9, 88.1]})
    out = cd.saturation(df, "score")
    assert [m["model"] for m in out["leaders"]] == ["b", "d", "f", "a", "g"]
    assert out["spread"] == pytest.approx(90.0 - 88.1) and out["spent"] is True
    assert out["n"] == 6
    assert cd.saturation(df, "score", threshold=1.5)["spent"] is False
    assert cd.saturation(df, "score", top=6)["spread"] == pytest.approx(20.0)
    strings = pd.DataFrame({"model": ["a", "b"], "s": ["40", "41.5"]})
    assert cd.saturation(strings, "s", top=2)["spread"] == pytest.approx(1.5)


def test_saturation_errors():
    df = pd.DataFrame({"model": ["a", "b"], "lab": ["X", "Y"], "s": [1.0, 2.0]})
    with pytest.raises(cd.DataError, match="missing column 'nope'"):
        cd.saturation(df, "nope")
    with pytest.raises(cd.DataError, match="not numeric"):
        cd.saturation(df, "lab", top=2)
    with pytest.raises(cd.DataError, match="top=5"):
        cd.saturation(df, "s")
    with pytest.raises(cd.DataError, match="empty"):
        cd.saturation(df.iloc[:0], "s")


# --------------------------------------------------------------------------- bad tables

def test_bad_tables_give_clear_errors():
    good = _frame([("a", "A", 10.0, 20.0), ("b", "B", 20.0, 30.0), ("c", "C", 30.0, 45.0)])
    bad = good.copy()
    bad.loc[1, "gpqa_diamond"] = 130.0
    with pytest.raises(cd.DataError, match=r"row 2.*gpqa_diamond.*outside \[0, 100\]"):
        cd.population_line(bad)
    with pytest.raises(cd.DataError, match="missing column 'swe_bench'"):
        cd.leave_one_lab_out(good.drop(columns="swe_bench"))
    with pytest.raises(cd.DataError, match="empty"):
        cd.lab_summary(good.iloc[:0], cd.PAPER_COEFFICIENTS)


def _cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_h_of_a_csv_model_matches_an_independent_fit(capsys):
    rows = _csv_rows()
    _, _, fit = _linregress([r for r in rows if r["subset"] != "post_cutoff"])
    target = max(rows, key=lambda r: float(r["gpqa_diamond"]))
    swe, gpqa = float(target["swe_bench"]), float(target["gpqa_diamond"])
    expected = gpqa - (fit.slope * swe + fit.intercept)
    argv = ("hfield", "--swe", target["swe_bench"], "--gpqa", target["gpqa_diamond"],
            "--bootstrap", "0")
    code, out, _ = _cli(capsys, *argv, "--json")
    res = json.loads(out)
    assert code == 0
    assert (res["slope"], res["intercept"]) == pytest.approx((fit.slope, fit.intercept))
    assert res["predicted_gpqa"] == pytest.approx(fit.slope * swe + fit.intercept)
    assert res["h"] == pytest.approx(expected)
    assert res["direction"] == cd.h_direction(expected)
    code, out, _ = _cli(capsys, *argv)
    assert code == 0 and f"h = {expected:+.1f}" in out


def test_cli_paper_coefficients_are_the_papers(capsys):
    swe, gpqa = 40.0, 70.0
    code, out, _ = _cli(capsys, "hfield", "--swe", str(swe), "--gpqa", str(gpqa),
                        "--coefficients", "paper", "--json")
    res = json.loads(out)
    ref = cd.PAPER_REFERENCE
    assert code == 0 and (res["slope"], res["intercept"]) == (ref["slope"], ref["intercept"])
    assert res["h"] == pytest.approx(gpqa - (ref["slope"] * swe + ref["intercept"]))


def test_cli_fit_coefficients_use_the_data(capsys, write_csv):
    path = write_csv("model,lab,swe_bench,gpqa_diamond\na,A,10,30\nb,B,20,50\nc,C,30,70\n")
    code, out, _ = _cli(capsys, "hfield", "--swe", "25", "--gpqa", "61", "--data", str(path),
                        "--json", "--bootstrap", "50")
    res = json.loads(out)
    assert code == 0 and res["slope"] == pytest.approx(2.0) and res["intercept"] == pytest.approx(10.0)
    assert res["predicted_gpqa"] == pytest.approx(60.0) and res["h"] == pytest.approx(1.0)


@pytest.mark.parametrize("argv,message", [
    (("hfield", "--swe", "120", "--gpqa", "50"), "outside [0, 100]"),
    (("hfield", "--gpqa", "50"), "missing --swe"),
    (("hfield",), "missing --swe"),
    (("hfield", "--table", "--data", "{bad}"), "outside [0, 100]"),
    (("hfield", "--table", "--data", "{nocol}"), "gpqa_diamond"),
    (("hfield", "--table", "--data", "{empty}"), "no data rows"),
    (("saturation", "--column", "nope"), "missing column 'nope'"),
    (("saturation", "--column", "swe_bench", "--data", "{empty}"), "no data rows"),
])
def test_cli_errors_exit_2(capsys, write_csv, argv, message):
    paths = {"bad": write_csv("model,lab,swe_bench,gpqa_diamond\nA,X,120,50\n", "bad.csv"),
             "nocol": write_csv("model,lab,swe_bench\nA,X,20\n", "nocol.csv"),
             "empty": write_csv("model,lab,swe_bench,gpqa_diamond\n", "empty.csv")}
    argv = [a.format(**{k: str(v) for k, v in paths.items()}) for a in argv]
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_cli_saturation_base_table(capsys, base_df):
    path = resources.files("capedyn.benchmarks_data").joinpath("base_models.csv")
    code, out, _ = _cli(capsys, "saturation", "--data", str(path), "--column", "hellaswag",
                        "--json")
    res = json.loads(out)
    top = np.sort(base_df["hellaswag"].dropna().to_numpy())[::-1][:5]
    assert code == 0 and res["spread"] == pytest.approx(top[0] - top[-1])


# --------------------------------------------------------------------------- figure

def test_plot_frontier_draws_the_data_on_a_given_axes(frontier_df):
    from matplotlib.collections import LineCollection, PathCollection
    from matplotlib.figure import Figure

    from capedyn.plotting import plot_frontier

    rows = _csv_rows()
    line = cd.population_line(frontier_df, n_bootstrap=50)
    ax = Figure().subplots()
    assert plot_frontier(frontier_df, line, ax=ax) is ax
    points = np.vstack([c.get_offsets() for c in ax.collections
                        if isinstance(c, PathCollection) and len(c.get_offsets())])
    expected = sorted((float(r["swe_bench"]), float(r["gpqa_diamond"])) for r in rows)
    # arrays, not pytest.approx: pytest >= 9.2 no longer compares nested sequences
    np.testing.assert_allclose(np.array(sorted(map(tuple, points.tolist()))), np.array(expected))
    # one vertical bar per model, from the line to the model: its length is h
    bars = [seg for c in ax.collections if isinstance(c, LineCollection)
            for seg in c.get_segments()]
    assert len(bars) == len(rows)
    for seg in bars:
        (x0, y0), (x1, y1) = seg
        assert x0 == x1 and y0 == pytest.approx(line.slope * x0 + line.intercept)
    (fit_line,) = [ln for ln in ax.get_lines() if ln.get_label() == line.label]
    xs, ys = fit_line.get_data()
    np.testing.assert_allclose(ys, line.slope * np.asarray(xs) + line.intercept)
    with pytest.raises(TypeError, match="savefig"):
        plot_frontier(frontier_df, line, "f.png")


def test_plot_writes_png_and_cli_table(capsys, tmp_path, frontier_df):
    from capedyn.plotting import plot_frontier, save_figure

    line = cd.population_line(frontier_df, n_bootstrap=100)
    path = save_figure(plot_frontier(frontier_df, line).figure, tmp_path / "f.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not list(tmp_path.glob(".*.tmp"))
    code, out, _ = _cli(capsys, "hfield", "--table", "--json", "--bootstrap", "50",
                        "--plot", str(tmp_path / "g.png"))
    res = json.loads(out)
    assert code == 0 and (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(res["models"]) == len(_csv_rows())
    assert {e["lab"] for e in res["labs"]} == {r["lab"] for r in _csv_rows()}
