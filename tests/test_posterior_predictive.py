"""Posterior predictive intervals of a new family's larger models (ODE-level posterior).

Coverage is checked against families simulated from the ODE-level model with known
population values (``simulate_trajectory_data``, adaptive solve): a posterior whose every
draw is that known population makes the predictive the generating process itself, so its
intervals must cover the simulated scores at about their nominal rates. NUTS is not run
here (the P2 benchmark runs it); the point is the predictive machinery: the population
draws, the new family's Nc, h and start noise, the forward solve and the observation noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capedyn.data.tables import BENCHMARKS
from capedyn.inference.implied_nc_calibration import (
    ODE_CALIBRATION_TRUTH, simulate_trajectory_data,
)
from capedyn.inference.models import PosteriorError
from capedyn.inference.posterior_predictive import predictive_draws, predictive_interval
from capedyn.inference.result import NcPosterior, _az
from capedyn.inference.sampling import _resolve_fit

pytestmark = pytest.mark.xdist_group("posterior_predictive")

TRUTH = {"mu": 8.6, "tau": 0.4, "sigma_h": 0.2, "sigma_score": (2.0, 1.5, 2.0, 1.5, 2.0)}


def _point_mass_posterior(fld, n: int = 400) -> NcPosterior:
    """An ODE-level posterior whose draws all sit at TRUTH (2 chains x n/2 draws)."""
    c, d = 2, n // 2
    post = {k: np.full((c, d), float(TRUTH[k])) for k in ("mu", "tau", "sigma_h")}
    post["sigma_score"] = np.broadcast_to(np.asarray(TRUTH["sigma_score"]), (c, d, 5)).copy()
    idata = _az().from_dict(posterior=post, sample_stats={"diverging": np.zeros((c, d), bool)})
    table = pd.DataFrame({"rhat_max": [float("nan")], "ess_bulk_min": [float(n)]})
    return NcPosterior(model="ode", idata=idata, families=(), table=table,
                       divergences=0, divergences_per_chain=[0, 0], runtime_s=0.0,
                       config={"solver": "fixed", "ode_steps": 3, "family_gamma": False},
                       field_=fld)


@pytest.fixture(scope="module")
def field():
    return _resolve_fit(None)[0]


def test_predictive_intervals_cover_simulated_families_at_nominal_rates(field):
    truth = {**ODE_CALIBRATION_TRUTH, **TRUTH}
    data, _ = simulate_trajectory_data(24, seed=3, fit=field, truth=truth)
    post = _point_mass_posterior(field)
    hits = {0.5: [], 0.9: []}
    for f in range(len(data.families)):
        m = data.mask[f]
        if not m.any():
            continue
        start = pd.Series({"params_b": 10 ** (data.x0[f] - 9),
                           **dict(zip(BENCHMARKS, data.scores[f, 0]))})
        sizes = 10 ** (data.xs[f, m] - 9)
        tab = predictive_interval(post, start, sizes, level=[0.5, 0.9], seed=f)
        actual = data.scores[f, m].reshape(-1)  # size-major, benchmarks in order: as tab
        for lv in (0.5, 0.9):
            s = f"_{round(100 * lv)}"
            lo, hi = tab[f"lower{s}"].to_numpy(), tab[f"upper{s}"].to_numpy()
            hits[lv] += list((lo <= actual) & (actual <= hi))
    n = len(hits[0.9])
    assert n >= 200
    # binomial sd at n ~ 300: 0.029 (50%), 0.017 (90%); points of one family are correlated
    assert abs(np.mean(hits[0.5]) - 0.5) < 0.12, np.mean(hits[0.5])
    assert abs(np.mean(hits[0.9]) - 0.9) < 0.07, np.mean(hits[0.9])


def test_predictive_draws_spread_with_the_noise_and_keep_order(field):
    post = _point_mass_posterior(field, n=200)
    start = pd.Series({"params_b": 0.41, **dict(zip(BENCHMARKS, (30.0, 45.0, 26.0, 40.0, 55.0)))})
    sizes = [6.9, 1.4, 2.8]
    draws, failed = predictive_draws(post, start, sizes, seed=1)
    assert failed == 0 and draws.shape == (200, 3, 5)
    again, _ = predictive_draws(post, start, [1.4, 2.8, 6.9], seed=1)
    np.testing.assert_allclose(draws[:, [1, 2, 0]], again)  # the caller's order, same draws
    # at least the observation noise of each benchmark (the population adds to it)
    assert np.all(draws.std(axis=0) > 0.8 * np.asarray(TRUTH["sigma_score"]))


def test_predictive_interval_rejects_bad_input(field):
    post = _point_mass_posterior(field, n=20)
    start = pd.Series({"params_b": 1.0, **dict(zip(BENCHMARKS, (30.0, 45.0, 26.0, 40.0, 55.0)))})
    with pytest.raises(PosteriorError, match="above the starting model"):
        predictive_interval(post, start, [0.5])
    with pytest.raises(PosteriorError, match="strictly between 0 and 1"):
        predictive_interval(post, start, [2.0], level=90)
    with pytest.raises(PosteriorError, match="all five scores"):
        predictive_interval(post, start.drop("mmlu"), [2.0])


def test_p2_scoring_never_shows_the_held_out_family_to_the_fits(field, base_df, monkeypatch):
    """Each fold's field fit and posterior see the other families only; the held-out
    family's targets are scored from its smallest model with interval_scores' columns."""
    import capedyn.inference.sampling as sampling
    from capedyn.data.tables import complete_models
    from capedyn.evaluation.posterior_intervals import posterior_interval_benchmark

    seen = {"fit": [], "posterior": []}

    class Recorder:
        def fit(self, df):
            seen["fit"].append(set(df["family"]))
            return self

    def fake_posterior(data, **kw):
        seen["posterior"].append(set(data.families))
        return _point_mass_posterior(field, n=40)

    monkeypatch.setattr(sampling, "sample_posterior", fake_posterior)
    held = ["Falcon", "Phi"]
    res = posterior_interval_benchmark(base_df, families=held, estimator=Recorder,
                                       progress=False)
    for fam, fitted, sampled in zip(held, seen["fit"], seen["posterior"]):
        assert fam not in fitted and fam not in sampled and fitted
    n_targets = complete_models(base_df).groupby("family").size()[held] - 1
    assert len(res.points) == 5 * int(n_targets.sum())
    assert set(res.points["family"]) == set(held)
    row = res.table.iloc[0]
    assert row["n_points"] == len(res.points)
    inside = (res.points["lo_90"] <= res.points["actual"]) & (res.points["actual"] <= res.points["hi_90"])
    assert row["coverage_90"] == pytest.approx(inside.mean())
    assert (res.points["lo_50"] >= res.points["lo_90"]).all()
    assert (res.points["hi_50"] <= res.points["hi_90"]).all()
