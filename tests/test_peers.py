"""Peer methods: each recovers a simulated data set it can represent exactly (truth known by
construction), follows the scikit-learn estimator contract, and refuses bad settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from capedyn.models.baselines import LinearODE, PolynomialBaseline
from capedyn.data.tables import BENCHMARKS
from capedyn.models.peers import LatentSkillModel, LogitRateModel, PCACapabilityModel, peer_floors
from capedyn.models.sindy import SparseCouplingODE

B = list(BENCHMARKS)
CHANCE = np.array([25.0, 20.0, 25.0, 50.0, 25.0])  # HS, TQA, ARC, WG, MMLU


def _scores(z, slack):
    f = CHANCE - slack
    return f + (100 - f) / (1 + np.exp(-z))


def _table(z_of, fams, sizes, slack) -> pd.DataFrame:
    rows = []
    for f in fams:
        for i, p in enumerate(sizes[f]):
            x = np.log10(p * 1e9)
            rows.append({"model": f"{f}-{i}", "family": f, "params_b": p,
                         **dict(zip(B, _scores(z_of(f, x), slack)))})
    return pd.DataFrame(rows)


SIZES = {"A": [0.1, 0.3, 1.0, 3.0, 10.0], "B": [0.5, 1.5, 7.0], "C": [0.2, 1.0, 5.0, 20.0],
         "D": [1.0, 4.0, 30.0], "H": [0.4, 2.0, 9.0, 60.0]}
TRAIN = ["A", "B", "C", "D"]


def _check_recovers_holdout(est, table, z_of, slack):
    est.fit(table[table["family"].isin(TRAIN)])
    held = table[table["family"] == "H"].sort_values("params_b")
    pred = est.predict(held.iloc[0], held["params_b"].to_numpy()[1:])
    truth = np.array([_scores(z_of("H", np.log10(p * 1e9)), slack) for p in held["params_b"].to_numpy()[1:]])
    return pred[B].to_numpy(), truth


def test_logit_rate_recovers_pooled_logit_slopes():
    slack = 7.0
    rate = np.array([0.9, -0.3, 0.6, 0.5, 0.2])
    level = {f: np.random.default_rng(i).normal(0, 0.6, 5) for i, f in enumerate(SIZES)}
    z_of = lambda f, x: level[f] + rate * (x - 9.0)
    table = _table(z_of, SIZES, SIZES, slack)
    est = LogitRateModel(floor_slack=slack)
    pred, truth = _check_recovers_holdout(est, table, z_of, slack)
    np.testing.assert_allclose(est.slopes_, rate, atol=1e-9)
    np.testing.assert_allclose(pred, truth, atol=1e-8)
    np.testing.assert_allclose(est.floors_, CHANCE - slack)


def test_pca_capability_recovers_two_component_data():
    slack = 10.0
    rng = np.random.default_rng(3)
    V, _ = np.linalg.qr(rng.normal(size=(5, 2)))       # two capability directions in z space
    mu = rng.normal(0, 0.3, 5)
    a = {f: rng.normal(0, 0.5, 2) for f in SIZES}
    b = np.array([0.7, -0.2])
    z_of = lambda f, x: mu + V @ (a[f] + b * (x - 9.0))
    table = _table(z_of, SIZES, SIZES, slack)
    est = PCACapabilityModel(n_components=2, floor_slack=slack)
    pred, truth = _check_recovers_holdout(est, table, z_of, slack)
    assert est.explained_variance_ratio_.sum() == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(est.rate_, V @ b, atol=1e-8)   # implied per-benchmark logit rate
    np.testing.assert_allclose(pred, truth, atol=1e-7)
    # one component cannot represent it: the error must be visibly larger
    one = PCACapabilityModel(n_components=1, floor_slack=slack)
    pred1, _ = _check_recovers_holdout(one, table, z_of, slack)
    assert np.abs(pred1 - truth).mean() > 100 * np.abs(pred - truth).mean()


def test_latent_skill_recovers_simulated_sloth_data():
    slack = 5.0
    rng = np.random.default_rng(7)
    lam = rng.normal(0, 0.8, (5, 2))
    off = rng.normal(0, 0.3, 5)
    beta = np.array([0.8, 0.4])
    alpha = {f: rng.normal(0, 0.5, 2) for f in SIZES}
    z_of = lambda f, x: lam @ (alpha[f] + beta * (x - 9.0)) + off
    table = _table(z_of, SIZES, SIZES, slack)
    est = LatentSkillModel(n_skills=2, floor_slack=slack, l2=1e-6, max_nfev=2000)
    pred, truth = _check_recovers_holdout(est, table, z_of, slack)
    assert est.rmse_ < 0.05                       # points: the training scores are reproduced
    assert np.abs(pred - truth).max() < 0.5       # the held-out family from its smallest model


@pytest.mark.parametrize("est", [LogitRateModel(floor_slack=5.0), PCACapabilityModel(n_components=3),
                                 LatentSkillModel(n_skills=1, l2=0.5), PolynomialBaseline(3, anchored=True),
                                 LinearODE(), SparseCouplingODE(thresholds=(0.1,), selection="1se")])
def test_estimators_follow_the_sklearn_contract(est):
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est
    assert twin.get_params() == est.get_params()
    assert not any(k.endswith("_") for k in vars(twin))        # no fitted state before fit
    params = est.get_params()
    if params:
        key = next(iter(params))
        assert clone(est).set_params(**{key: params[key]}).get_params() == params


def test_bad_settings_are_clear_errors(base_df):
    with pytest.raises(ValueError, match="floor_slack"):
        LogitRateModel(floor_slack=-1).fit(base_df)
    with pytest.raises(ValueError, match="n_components"):
        PCACapabilityModel(n_components=7).fit(base_df)
    with pytest.raises(ValueError, match="n_skills"):
        LatentSkillModel(n_skills=0).fit(base_df)
    with pytest.raises(Exception, match="not fitted"):
        LogitRateModel().predict(base_df.iloc[0], [10.0])
    assert peer_floors(10.0).tolist() == [15.0, 10.0, 15.0, 40.0, 15.0]
