"""Conformal intervals in a user's hands: ``predict(..., interval=)`` after
``capedyn.conformalize``, ``capedyn predict --interval`` and ``holdout``/``crossval
--interval``. Expected values come from the interval benchmark's own path
(:func:`capedyn.evaluation.intervals.interval_benchmark`), from a simulation with a known
generating process, or by hand from the command's own rows."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pandas as pd
import pytest

import capedyn as cd
from capedyn.cli.entry import main
from capedyn.data.tables import BENCHMARKS
from capedyn.evaluation.heldout import FIXED_METHODS
from capedyn.evaluation.intervals import interval_benchmark
from capedyn.evaluation.splits import make_split
from test_intervals import LogSlope, _families


class BoundedLogSlope(LogSlope):
    """The simulation's estimator with ``predict(..., interval=)``, as a user adds it."""

    predict = cd.interval_predict(LogSlope.predict)

B = list(BENCHMARKS)
HELD = "Llama-2"
LEVELS = (0.5, 0.9)


@pytest.fixture(scope="module")
def calibrated(base_df):
    """poly2 fitted and calibrated on every family but Llama-2 (a cheap method: one
    polynomial fit per training family)."""
    split = make_split(base_df, HELD)
    est = cd.conformalize(FIXED_METHODS["poly2"](), split.train, progress=False)
    return split, est


def test_predict_bounds_equal_the_interval_benchmarks(base_df, calibrated):
    split, est = calibrated
    sizes = split.targets["params_b"].to_numpy(float)
    table = est.predict(split.initial, sizes, interval=LEVELS)
    # the benchmark's own path: leave Llama-2 out of the same table, poly2 at fixed settings
    ref = interval_benchmark(base_df, methods=["poly2"], families=[HELD], levels=LEVELS,
                             progress=False).points.set_index(["model", "benchmark"])
    assert len(ref) == len(sizes) * len(B)
    for i, model in enumerate(split.targets["model"]):
        for b in B:
            r = ref.loc[(model, b)]
            assert table[b].iloc[i] == pytest.approx(r["pred"])
            for lv in LEVELS:
                t = f"{round(100 * lv)}"
                assert table[f"{b}_lo_{t}"].iloc[i] == pytest.approx(r[f"lo_{t}"])
                assert table[f"{b}_hi_{t}"].iloc[i] == pytest.approx(r[f"hi_{t}"])
    assert est.conformal_.n_folds == len({f.family for f in est.conformal_.folds}) >= 5
    assert HELD not in {f.family for f in est.conformal_.folds}


def test_a_single_level_and_the_signature(calibrated):
    split, est = calibrated
    one = est.predict(split.initial, [70.0], interval=0.9)
    both = est.predict(split.initial, [70.0], interval=LEVELS)
    cols = [f"{b}_{s}_90" for b in B for s in ("lo", "hi")]
    pd.testing.assert_frame_equal(one[cols], both[cols])
    assert not any(c.endswith("_50") for c in one.columns)
    assert "interval" in inspect.signature(type(est).predict).parameters
    assert "interval" in inspect.signature(cd.CouplingODE.predict).parameters
    # interval= adds the bound columns to the estimator's usual table and changes nothing else
    plain = est.predict(split.initial, [70.0])
    pd.testing.assert_frame_equal(one[list(plain.columns)], plain)
    assert set(one.columns) - set(plain.columns) == set(cols)


def test_uncalibrated_or_bad_level_raises_a_capedyn_error(base_df, calibrated):
    split, _ = calibrated
    est = FIXED_METHODS["logit_rate"]().fit(split.train)
    with pytest.raises(cd.CapedynError, match=r"conformalize\(estimator, train_df\)"):
        est.predict(split.initial, [13.0], interval=0.9)
    with pytest.raises(cd.CapedynError, match="strictly between 0 and 1"):
        calibrated[1].predict(split.initial, [13.0], interval=90)
    few = base_df[base_df["family"].isin(["Pythia"])]
    with pytest.raises(cd.CapedynError, match="cannot calibrate"):
        cd.conformalize(FIXED_METHODS["poly2"](), few, progress=False)


@pytest.mark.slow
def test_predict_interval_covers_new_families_of_a_known_process():
    # families whose slopes vary at random (sd 1.5 points per decade around a common rate):
    # calibrated on 30 of them, the intervals must cover 30 new ones at about the nominal rate
    df = _families(60, seed=11)
    train = df[df["family"].isin([f"F{i}" for i in range(30)])]
    with pytest.raises(cd.CapedynError, match="interval_predict"):
        cd.conformalize(LogSlope(), train, progress=False)
    est = cd.conformalize(BoundedLogSlope(), train, progress=False)
    hits = {lv: [] for lv in LEVELS}
    for fam, g in df[~df.index.isin(train.index)].groupby("family"):
        g = g.sort_values("params_b")
        out = est.predict(g.iloc[0], g["params_b"].iloc[1:].to_numpy(), interval=LEVELS)
        actual = g[B].iloc[1:].to_numpy()
        for lv in LEVELS:
            t = f"{round(100 * lv)}"
            lo = out[[f"{b}_lo_{t}" for b in B]].to_numpy()
            hi = out[[f"{b}_hi_{t}" for b in B]].to_numpy()
            hits[lv] += list(((lo <= actual) & (actual <= hi)).ravel())
    assert len(hits[0.9]) == 30 * 3 * 5
    assert 0.82 <= np.mean(hits[0.9]) <= 0.98
    assert 0.38 <= np.mean(hits[0.5]) <= 0.65


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_cli_predict_interval_json(capsys, tmp_path):
    # a small coupling ODE on three families; the calibration refits it without each
    fit = tmp_path / "fit"
    code, _, err = _run(capsys, "fit", "--families", "Pythia,OPT,Cerebras-GPT", "--steps", "15",
                        "--out", str(fit), "--quiet", "--json")
    assert code == 0, err
    code, out, err = _run(capsys, "predict", "--fit", str(fit), "--initial", "Llama2-7B",
                          "--sizes", "13,70", "--interval", "0.5,0.9", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["interval_levels"] == [0.5, 0.9]
    assert sorted(res["calibration"]["folds"]) == ["Cerebras-GPT", "OPT", "Pythia"]
    assert len(res["predictions"]) == 2
    for row in res["predictions"]:
        for b in B:
            lo50, hi50 = row[f"{b}_lo_50"], row[f"{b}_hi_50"]
            lo90, hi90 = row[f"{b}_lo_90"], row[f"{b}_hi_90"]
            assert 0.0 <= lo90 <= lo50 <= hi50 <= hi90 <= 100.0
    code, _, err = _run(capsys, "predict", "--fit", str(fit), "--initial", "Llama2-7B",
                        "--sizes", "13", "--interval", "1.5")
    assert code != 0 and "--interval" in err and "between 0 and 1" in err


def test_crossval_interval_json_coverage_is_its_own_rows_fraction(capsys):
    code, out, err = _run(capsys, "crossval", "--methods", "poly2,logit_rate", "--selection",
                          "fixed", "--families", "Llama-2,Phi", "--interval", "0.5,0.9", "--json")
    assert code == 0, err
    res = json.loads(out)
    points = pd.DataFrame(res["points"])
    assert len(points) == 2 * 5 * (2 + 2)  # two methods, five benchmarks, two targets each
    table = {r["method"]: r for r in res["intervals"]}
    for method, sub in points.groupby("method"):
        y = sub["actual"].to_numpy()
        for lv in LEVELS:
            t = f"{round(100 * lv)}"
            lo, hi = sub[f"lo_{t}"].to_numpy(), sub[f"hi_{t}"].to_numpy()
            assert (lo <= hi).all() and (lo >= 0).all() and (hi <= 100).all()
            assert table[method][f"coverage_{t}"] == pytest.approx(np.mean((lo <= y) & (y <= hi)))
            assert table[method][f"width_{t}"] == pytest.approx(np.mean(hi - lo))
            alpha = 1 - lv  # interval score: width plus 2/α times the miss
            score = (hi - lo) + 2 / alpha * (np.maximum(lo - y, 0) + np.maximum(y - hi, 0))
            assert table[method][f"interval_score_{t}"] == pytest.approx(score.mean())
    # without --interval the JSON keeps its old shape
    code, out, _ = _run(capsys, "crossval", "--methods", "poly2", "--selection", "fixed",
                        "--families", "Phi", "--json")
    assert code == 0 and "points" not in json.loads(out)


def test_protocol_ledger_is_the_packaged_one():
    from pathlib import Path

    from capedyn.evaluation.ledger import design_ledger, ledger_markdown

    doc = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert ledger_markdown() in doc
    assert len(design_ledger()) == ledger_markdown().count("\n") - 1 >= 3


def test_report_section_prints_the_table_and_the_ledger_it_is_given():
    from capedyn import report
    from capedyn.evaluation.ledger import design_ledger
    from capedyn.report.render import render_section
    from capedyn.report.s8_intervals import IntervalsResult

    table = pd.DataFrame([{"method": "poly2", "n_points": 230, "coverage_50": 0.678,
                           "width_50": 28.3, "interval_score_50": 35.7, "coverage_90": 0.939,
                           "width_90": 67.1, "interval_score_90": 72.1,
                           "mean_rel_mae_pct": 15.8}])
    full = IntervalsResult(table, ("poly2",), LEVELS, ("A", "B"), pd.DataFrame(), 12.0, "",
                           design_ledger())
    md = render_section("intervals", full, report.RunConfig())
    assert "| poly2 | 230 | 0.678 | 28.3 | 35.7 | 0.939 | 67.1 | 72.1 | 15.8 |" in md
    for r in design_ledger().itertuples(index=False):
        assert r.design in md and r.p2_evaluations in md
    quick = IntervalsResult(None, ("poly2",), LEVELS, (), pd.DataFrame(), None, "quick run",
                            design_ledger())
    md = render_section("intervals", quick, report.RunConfig.make(quick=True))
    assert "Quick run: the interval table is skipped" in md and "| poly2 |" not in md


def test_explorer_band_is_the_conformal_interval_of_all_five_benchmarks(calibrated):
    from capedyn.explore import core, figures, views

    split, est = calibrated
    ex = core.Explorer()
    # stand in for the calibration job (minutes for the ODE) with poly2's calibration: the
    # band must be the calibration's 90% interval, for every benchmark
    ex.conformal_job.state, ex.conformal_job.result = "done", est.conformal_
    row = split.initial
    inp, problems = core.parse_model(row["params_b"], {b: row[b] for b in B})
    assert not problems
    out = views.ode_prediction(ex, inp)
    sizes = out["table"]["params_b"].to_numpy(float)
    want = est.predict(row, sizes, interval=0.9)
    lo, hi = out["band"]
    np.testing.assert_allclose(lo, want[[f"{b}_lo_90" for b in B]].to_numpy())
    np.testing.assert_allclose(hi, want[[f"{b}_hi_90" for b in B]].to_numpy())
    assert (hi > lo).all()  # a real band on every benchmark, not only TruthfulQA
    assert "90% conformal interval from leave-one-family-out residuals" in out["band_note"]
    assert "conformal interval" in figures.analyze_figure(inp, out).layout.title.text
    # the job hands its calibration over by pickle: the bounds survive the trip
    import pickle

    again = pickle.loads(pickle.dumps(est.conformal_))
    np.testing.assert_allclose(views.conformal_band(again, row, sizes)[1], hi)


def test_held_out_family_beyond_its_start_never_shapes_its_bounds(base_df):
    # poison Llama-2's models beyond its smallest: its bounds must not move
    poisoned = base_df.copy()
    fam = poisoned["family"] == HELD
    start = poisoned[fam]["params_b"].min()
    poisoned.loc[fam & (poisoned["params_b"] > start), B] = 99.0
    cols = [f"{s}_{round(100 * lv)}" for lv in LEVELS for s in ("lo", "hi")]
    runs = [cd.holdout(df, HELD, methods=["poly2", "logit_rate"], selection="fixed",
                       curves=False, interval=LEVELS).predictions for df in (base_df, poisoned)]
    np.testing.assert_array_equal(runs[0][cols + ["pred"]].to_numpy(),
                                  runs[1][cols + ["pred"]].to_numpy())
    assert not np.allclose(runs[0]["actual"], runs[1]["actual"])  # the poison did land
