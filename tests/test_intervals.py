"""Conformal intervals for held-out families and the ensemble.

Truth comes from simulation with a known generating process (coverage), from order
statistics worked out by hand (the CV+ bounds), from brute force over the simplex (the
ensemble's weights) and from the interval score's definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from capedyn.data.tables import BENCHMARKS
from capedyn.evaluation.ensemble import EnsembleMethod, _stack_weights
from capedyn.evaluation.intervals import (
    FoldModel, conformal_bounds, interval_benchmark, interval_scores, ratio_band,
)

B = list(BENCHMARKS)
SIZES_B = (0.1, 0.4, 1.6, 6.4)


class LogSlope(BaseEstimator):
    """Start scores plus a pooled per-benchmark slope in log10 size (points per decade)."""

    def __init__(self, bias: float = 0.0):
        self.bias = bias

    def fit(self, df):
        rates = []
        for _, fam in df.groupby("family"):
            fam = fam.sort_values("params_b")
            dx = np.log10(fam["params_b"].to_numpy() / fam["params_b"].iloc[0])[1:, None]
            dy = fam[B].to_numpy()[1:] - fam[B].to_numpy()[0]
            rates.append(dy / dx)
        self.rate_ = np.concatenate(rates).mean(axis=0) + self.bias
        return self

    def predict(self, initial, params_b):
        sizes = np.atleast_1d(np.asarray(params_b, float))
        dx = np.log10(sizes / float(initial["params_b"]))[:, None]
        scores = initial[B].to_numpy(float)[None, :] + dx * self.rate_[None, :]
        return pd.DataFrame({"params_b": sizes, **{b: scores[:, k] for k, b in enumerate(B)}})


def _families(n: int, seed: int) -> pd.DataFrame:
    """Families whose per-benchmark slopes vary from family to family (the exchangeable
    unit), with a small measurement noise."""
    rng = np.random.default_rng(seed)
    base_rate = np.array([6.0, 1.0, 4.0, 3.0, 2.0])
    rows = []
    for f in range(n):
        start = rng.uniform(35, 50, size=5)
        rate = base_rate + rng.normal(0, 1.5, size=5)
        for s in SIZES_B:
            x = np.log10(s / SIZES_B[0])
            scores = start + rate * x + rng.normal(0, 0.3, size=5)
            rows.append({"model": f"F{f}-{s}B", "family": f"F{f}", "params_b": s,
                         **dict(zip(B, scores))})
    return pd.DataFrame(rows)


def test_cv_plus_bounds_are_the_order_statistics_worked_out_by_hand():
    # nine folds, one residual each (1%, ..., 9%), every fold predicting 50 points
    folds = [FoldModel(f"G{i}", None, np.array([i / 100]), np.array([0]), np.array([0]))
             for i in range(1, 10)]
    preds = np.full((9, 1), 50.0)
    bounds = conformal_bounds(preds, folds, np.array([0]), np.array([0]), levels=(0.5,),
                              min_families=1, scale="bands", finite_sample="guaranteed")
    # 50% level with CV+'s inflation: upper quantile 0.75·(9+1)/9 = 0.833 → the 8th of 9
    # candidates (54), lower 0.167 → the 2nd (51)
    lo, hi = bounds[0.5]
    assert lo[0] == pytest.approx(51.0) and hi[0] == pytest.approx(54.0)
    # without it (the default): upper 0.75 → the first candidate whose cumulative weight
    # i/9 reaches 0.75, the 7th (53.5); lower 0.25 → the 3rd (51.5)
    (lo, hi), = conformal_bounds(preds, folds, np.array([0]), np.array([0]), levels=(0.5,),
                                 min_families=1, scale="bands").values()
    assert lo[0] == pytest.approx(51.5) and hi[0] == pytest.approx(53.5)


def test_each_family_weighs_one_however_many_residuals_it_has():
    # family A has three models that all came out 20% above; B, C and D one model each, exact
    a = FoldModel("A", None, np.full(3, 0.2), np.zeros(3, int), np.zeros(3, int))
    rest = [FoldModel(g, None, np.array([0.0]), np.array([0]), np.array([0])) for g in "BCD"]
    (lo, hi), = conformal_bounds(np.full((4, 1), 50.0), [a, *rest], np.array([0]),
                                 np.array([0]), levels=(0.1,), min_families=1,
                                 scale="bands").values()
    # upper quantile (1 − 0.9/2)·5/4 = 0.6875: with each family weighing one the value 60
    # carries 1/4 of the weight, so the quantile is 50; weighing each point alike (60
    # carrying 3/6) would give 60
    assert hi[0] == pytest.approx(50.0) and lo[0] == pytest.approx(50.0)


def test_strata_fall_back_when_few_families_populate_them():
    folds = [FoldModel(f"G{i}", None, np.array([0.01 * i, 0.5]), np.array([0, 0]),
                       np.array([0.1, 1.5])) for i in range(6)]
    preds = np.full((6, 2), 40.0)
    # band 0 of benchmark 0 has six families: its residuals (0–5%) only; the empty band 1
    # falls back to the benchmark's residuals over every band, the 50% outliers included
    (lo, hi), = conformal_bounds(preds, folds, np.array([0, 0]), np.array([0.1, 0.6]),
                                 levels=(0.9,), min_families=5, scale="bands").values()
    assert hi[0] == pytest.approx(40 * 1.05) and hi[1] == pytest.approx(40 * 1.5)
    assert list(ratio_band([0.1, 0.6, 1.5])) == [0, 1, 2]


def test_residuals_are_rescaled_to_the_target_distance():
    # one residual of +10% made half a decade out; a target two decades out gets +40%
    folds = [FoldModel(f"G{i}", None, np.array([0.1]), np.array([0]), np.array([0.5]))
             for i in range(3)]
    (lo, hi), = conformal_bounds(np.full((3, 1), 50.0), folds, np.array([0]), np.array([2.0]),
                                 levels=(0.5,), min_families=1).values()
    assert lo[0] == pytest.approx(70.0) and hi[0] == pytest.approx(70.0)
    # a distance below a quarter decade counts as a quarter: 0.1 · 0.25 / 0.5 = +5%
    (lo, _), = conformal_bounds(np.full((3, 1), 50.0), folds, np.array([0]), np.array([0.01]),
                                levels=(0.5,), min_families=1).values()
    assert lo[0] == pytest.approx(52.5)


def test_interval_score_by_its_definition():
    pts = pd.DataFrame({"method": ["m", "m"], "family": ["A", "A"], "pred": [1.0, 1.0],
                        "actual": [1.0, 5.0], "lo_90": [0.0, 0.0], "hi_90": [2.0, 2.0]})
    row = interval_scores(pts, levels=(0.9,)).iloc[0]
    # covered: width 2; missed by 3: 2 + (2 / 0.1)·3 = 62
    assert row["interval_score_90"] == pytest.approx((2 + 62) / 2)
    assert row["coverage_90"] == 0.5 and row["width_90"] == 2.0


def _simulated_coverage(level: float, finite_sample: str, family_sd: float, point_sd: float,
                        k: int = 10, m: int = 12, reps: int = 300, seed: int = 0) -> float:
    """Coverage of a new family's points by the interval from K families whose relative
    residuals are a family effect plus point noise (every fold predicting 50 points)."""
    rng = np.random.default_rng(seed)
    covered = []
    for _ in range(reps):
        r = rng.normal(0, family_sd, (k + 1, 1)) + rng.normal(0, point_sd, (k + 1, m))
        folds = [FoldModel(f"G{g}", None, r[g] / 100, np.zeros(m, int), np.zeros(m))
                 for g in range(k)]
        (lo, hi), = conformal_bounds(np.full((k, m), 50.0), folds, np.zeros(m, int),
                                     np.zeros(m), levels=(level,), min_families=1,
                                     scale="bands", finite_sample=finite_sample).values()
        y = 50 * (1 + r[k] / 100)
        covered.append(np.mean((lo <= y) & (y <= hi)))
    return float(np.mean(covered))


@pytest.mark.parametrize("level", [0.5, 0.8])
def test_finite_sample_modes_cover_as_their_formulas_say(level):
    k, alpha = 10, 1 - level
    # points spread within families (no family effect): the pooled candidates are nearly
    # continuous, so coverage is 2q − 1 for the tail quantile q: the nominal level when
    # calibrated, 1 − α + (2 − α)/K with CV+'s inflation
    spread = dict(family_sd=0.0, point_sd=1.0)
    assert _simulated_coverage(level, "calibrated", **spread) == pytest.approx(level, abs=0.04)
    assert _simulated_coverage(level, "guaranteed", **spread) == pytest.approx(
        1 - alpha + (2 - alpha) / k, abs=0.04)
    # every point of a family errs alike (K atoms): the calibrated bounds are the order
    # statistics of ranks ⌈(α/2)K⌉ and ⌈(1 − α/2)K⌉, which a new atom falls between with
    # probability (difference of ranks)/(K + 1); the inflated ones keep coverage ≥ nominal
    atoms = dict(family_sd=1.0, point_sd=0.0, m=1, reps=1500)
    ranks = np.ceil(np.array([alpha / 2, 1 - alpha / 2]) * k)
    assert _simulated_coverage(level, "calibrated", **atoms) == pytest.approx(
        (ranks[1] - ranks[0]) / (k + 1), abs=0.04)
    assert _simulated_coverage(level, "guaranteed", **atoms) >= level - 0.03


@pytest.mark.slow
def test_coverage_in_simulation_is_near_nominal():
    df = _families(30, seed=7)
    res = interval_benchmark(df, methods={"log_slope": LogSlope}, progress=False)
    row = res.table.set_index("method").loc["log_slope"]
    assert row["n_points"] == 30 * 3 * 5 and row["n_without_interval"] == 0
    assert 0.82 <= row["coverage_90"] <= 0.98
    assert 0.38 <= row["coverage_50"] <= 0.65
    assert row["width_90"] > row["width_50"] > 0


def test_stack_weights_match_brute_force_over_the_simplex():
    rng = np.random.default_rng(3)
    P = rng.normal(50, 5, size=(3, 40))
    y = 0.6 * P[0] + 0.4 * P[2] + rng.normal(0, 1, size=40)
    fam = np.repeat(np.arange(8), 5)
    w = _stack_weights(P, y, fam)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)

    def loss(v):
        c = np.array([100 / (5 * y[fam == g].mean() * 8) for g in fam])
        return float(np.abs(v @ P - y) @ c)

    grid = [np.array([a, b, 1 - a - b]) for a in np.linspace(0, 1, 41)
            for b in np.linspace(0, 1, 41) if a + b <= 1 + 1e-12]
    assert loss(w) <= min(loss(v) for v in grid) + 1e-9


def test_ensemble_weights_the_unbiased_member_and_never_sees_the_held_out_family():
    df = _families(12, seed=1)
    train, held = df[df["family"] != "F0"], df[df["family"] == "F0"]
    ens = EnsembleMethod(members={"right": LogSlope, "biased": lambda: LogSlope(bias=8.0)})
    ens.fit(train)
    assert ens.weights_ == {"right": pytest.approx(1.0)}
    assert ens.inner_error_["right"] < ens.inner_error_["biased"]
    start = held.sort_values("params_b").iloc[0]
    expected = LogSlope().fit(train).predict(start, [6.4])[B].to_numpy()
    np.testing.assert_allclose(ens.predict(start, [6.4])[B].to_numpy(), expected)
    folds = ens.fold_models(train)
    assert [f.family for f in folds] == sorted(set(train["family"]), key=lambda s: int(s[1:]))
    assert all(f.residuals.size == 3 * 5 for f in folds)


def test_ensemble_with_one_training_family_learns_from_forward_splits():
    # as nested selection does with one family (P1): the larger half predicted from the
    # smaller; equal weights would give the biased member half the weight
    one = _families(3, seed=4).query("family == 'F1'")
    ens = EnsembleMethod(members={"right": LogSlope, "biased": lambda: LogSlope(bias=8.0)})
    ens.fit(one)
    assert ens.inner_families_ == ["F1"]
    assert ens.inner_error_["right"] < ens.inner_error_["biased"]
    assert ens.weights_["right"] > 0.95
    # the conformal folds still need families held out: none with a single family
    assert ens.fold_models(one) == []


def test_median_combination_takes_the_top_k_members():
    df = _families(8, seed=2)
    ens = EnsembleMethod(members={"a": LogSlope, "b": lambda: LogSlope(bias=1.0),
                                  "c": lambda: LogSlope(bias=20.0)},
                         combine="median", top_k=2).fit(df)
    assert set(ens.weights_) == {"a", "b"}
