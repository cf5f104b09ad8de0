"""Baselines of the held-out benchmark: polynomials in log10 N and the paper's linear ODE.
Expected values come from numpy.polyfit / scipy.integrate computed here, not from the code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from capedyn.models.baselines import (
    LinearODE, PolynomialBaseline, family_trajectories, midpoint_differences,
)
from capedyn.data.tables import BENCHMARKS

B = list(BENCHMARKS)


def _x(params_b):
    return np.log10(np.asarray(params_b, float) * 1e9)


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_polynomial_matches_numpy_polyfit(base_df, degree):
    train = base_df[base_df["family"].isin(["Pythia", "OPT", "BLOOM"])]
    sizes = [7.0, 13.0, 70.0]
    pred = PolynomialBaseline(degree).fit(train).predict(None, sizes)
    for b in B:
        coef = np.polyfit(_x(train["params_b"]), train[b].to_numpy(float), degree)
        np.testing.assert_allclose(pred[b].to_numpy(), np.polyval(coef, _x(sizes)), rtol=1e-9, atol=1e-8)


def test_anchored_polynomial_passes_through_initial_point(base_df):
    train = base_df[base_df["family"] == "Pythia"]
    init = base_df[base_df["model"] == "Llama2-7B"].iloc[0]
    sizes = [init["params_b"], 13.0, 70.0]
    anchored = PolynomialBaseline(2, anchored=True).fit(train).predict(init, sizes)
    free = PolynomialBaseline(2).fit(train).predict(init, sizes)
    np.testing.assert_allclose(anchored[B].iloc[0].to_numpy(), init[B].to_numpy(float), atol=1e-9)
    shift = anchored[B].to_numpy() - free[B].to_numpy()
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-9)  # a constant shift
    assert not np.allclose(shift, 0.0)


def test_polynomial_uses_every_present_score(base_df):
    train = base_df[base_df["family"].isin(["Pythia", "Gemma-3", "Qwen3"])]  # Gemma/Qwen3: HS, TQA only
    est = PolynomialBaseline(1).fit(train)
    # Pythia's standard run: 7 complete models; Gemma-3 and Qwen3 add one HS point each
    assert est.n_points_["hellaswag"] == 9 and est.n_points_["arc"] == 7


def test_out_of_range_is_flagged_not_clipped():
    df = pd.DataFrame({"model": ["a", "b"], "family": ["F", "F"], "params_b": [0.1, 1.0],
                       **{b: [30.0, 60.0] for b in B}})
    pred = PolynomialBaseline(1).fit(df).predict(None, [1000.0])  # 30 points per decade → 150
    assert pred[B].iloc[0].to_numpy() == pytest.approx([150.0] * 5)
    assert bool(pred["out_of_range"].iloc[0])


def test_polynomial_degree_needs_enough_sizes(base_df):
    with pytest.raises(ValueError, match="distinct sizes"):
        PolynomialBaseline(4).fit(base_df[base_df["family"] == "Llama-2"])


def test_midpoint_differences_by_hand():
    x = np.array([0.0, 1.0, 3.0])
    y = np.array([[0.0], [2.0], [4.0]])
    xm, ym, dy = midpoint_differences(x, y)
    np.testing.assert_allclose(xm, [0.5, 2.0])
    np.testing.assert_allclose(ym[:, 0], [1.0, 3.0])
    np.testing.assert_allclose(dy[:, 0], [2.0, 1.0])


def _linear_system():
    rng = np.random.default_rng(3)
    C = -0.6 * np.eye(5) + 0.1 * rng.standard_normal((5, 5))
    c = np.array([30.0, 20.0, 25.0, 35.0, 15.0])
    return C, c


def _simulate_linear(C, c, y0, xs):
    sol = solve_ivp(lambda t, y: C @ y + c, (xs[0], xs[-1]), y0, t_eval=xs, rtol=1e-11, atol=1e-11)
    return sol.y.T


def test_linear_ode_recovers_a_known_system():
    C, c = _linear_system()
    rows = []
    rng = np.random.default_rng(4)
    for f in range(3):
        xs = np.sort(np.concatenate([[8.0], 8.0 + 2.0 * rng.random(40)]))
        ys = _simulate_linear(C, c, 40.0 + 5 * rng.standard_normal(5), xs)
        rows += [{"model": f"m{f}_{i}", "family": f"F{f}", "params_b": 10 ** (x - 9),
                  **dict(zip(B, y))} for i, (x, y) in enumerate(zip(xs, ys))]
    est = LinearODE().fit(pd.DataFrame(rows))
    # midpoint secants are second-order accurate: small error on this dense grid
    np.testing.assert_allclose(est.C_, C, atol=5e-3)
    np.testing.assert_allclose(est.c_, c, rtol=5e-3, atol=0.2)


def test_linear_ode_prediction_matches_scipy_integration(base_df):
    est = LinearODE().fit(base_df[base_df["family"] == "Pythia"])
    init = base_df[base_df["model"] == "Llama2-7B"].iloc[0]
    sizes = np.array([13.0, 70.0])
    pred = est.predict(init, sizes)
    xs = np.concatenate([[_x(init["params_b"])], _x(sizes)])
    ref = _simulate_linear(est.C_, est.c_, init[B].to_numpy(float), xs)[1:]
    np.testing.assert_allclose(pred[B].to_numpy(), ref, rtol=1e-6, atol=1e-6)


def test_linear_ode_fit_is_least_squares_on_secants(base_df):
    pythia = base_df[base_df["family"] == "Pythia"].sort_values("params_b")
    x, y = _x(pythia["params_b"]), pythia[B].to_numpy(float)
    slopes = np.diff(y, axis=0) / np.diff(x)[:, None]
    design = np.hstack([(y[1:] + y[:-1]) / 2, np.ones((len(x) - 1, 1))])
    est = LinearODE().fit(pythia)
    # the normal equations hold for the fitted [C | c] (minimum-norm solution of an
    # under-determined system satisfies design @ coef = projection of slopes)
    coef = np.vstack([est.C_.T, est.c_])
    resid = slopes - design @ coef
    np.testing.assert_allclose(design.T @ resid, 0.0, atol=1e-6)


def test_family_trajectories_skip_incomplete_and_single(base_df):
    fams = {t.family for t in family_trajectories(base_df)}
    assert "Gemma-3" not in fams and "Mistral" not in fams and "OLMo" in fams
