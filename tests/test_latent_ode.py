"""The second-generation ODE (shared dynamics in floor-normalised logit space) and the
ODE-implied critical scale. Truth comes from simulation with known parameters, integrated
here with scipy (an independent solver), never from the code's own output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from capedyn._jax import x64
from capedyn._state import CEILING, FLOORS, N_FEATURES, polynomial_features, to_state
from capedyn.data import BENCHMARKS
from capedyn.ode_nc import implied_nc, implied_nc_draws

B = list(BENCHMARKS)
HS, TQA = B.index("hellaswag"), B.index("truthfulqa")
CHANCE = np.array([25.0, 20.0, 25.0, 50.0, 25.0])


# --------------------------------------------------------------------------- implied Nc

def _field(gamma0: float, hs_rate: float, tqa_coef=None):
    from capedyn.ode import CouplingField

    coef = np.zeros((5, N_FEATURES))
    coef[:, 0] = 0.2
    coef[HS, 0] = hs_rate
    coef[TQA, 0] = 0.0
    if tqa_coef is not None:
        coef[TQA] = tqa_coef
    with x64():
        import jax.numpy as jnp
        f = CouplingField(coef=jnp.asarray(coef), gamma0=jnp.asarray(gamma0), degree=2,
                          coupling="score", kappa_max=4.0)
    return f


def _numpy_rates(coef, gamma0, lnc, h, kappa_max=4.0):
    """The coupling field written again in numpy (score-unit coupling), for scipy."""
    def rhs(x, z):
        r = coef @ polynomial_features(z) + h
        u = 1 / (1 + np.exp(-z))
        s = (CEILING - FLOORS) * u * (1 - u)
        out = r.copy()
        out[TQA] += gamma0 * (x - lnc) * min(s[HS] / s[TQA], kappa_max) * r[HS]
        return out
    return rhs


def test_implied_nc_equals_the_coupling_zero_when_nothing_else_moves_tqa():
    """With no universal TQA rate and no TQA source, dTQA/dx = γ12(x)·dHS/dx exactly, so the
    trajectory's tax→bonus crossing is the family's Nc parameter (4B and 40B here)."""
    from capedyn.ode import FamilyParams

    field = _field(gamma0=0.3, hs_rate=0.6)
    start = np.array([30.0, 40.0, 30.0, 55.0, 27.0])
    for lnc in (9.6, 10.6):
        with x64():
            fam = FamilyParams.make(lnc, np.zeros(5))
        res = implied_nc(field, fam, start, 0.1, x_max=12.0, n_grid=600)
        assert res.crosses and res.side == "crosses"
        assert res.log10_nc == pytest.approx(lnc, abs=2e-3)
        assert res.nc_b == pytest.approx(10 ** (lnc - 9), rel=5e-3)
        g = res.curve["gamma12"].to_numpy()
        x = res.curve["log10_n"].to_numpy()
        assert np.all(g[x < lnc - 0.05] < 0) and np.all(g[x > lnc + 0.05] > 0)


def test_implied_nc_with_a_tqa_source_matches_scipy():
    """With a TQA source h the crossing moves off the Nc parameter; the expected crossing is
    found by integrating the same field in numpy with scipy and root-finding dTQA/dx."""
    from capedyn.ode import FamilyParams

    coef = np.zeros((5, N_FEATURES))
    coef[:, 0] = 0.2
    coef[HS, 0] = 0.7
    coef[HS, 1 + HS] = -0.15       # HS slows as it rises
    coef[TQA, 0] = 0.0
    h = np.array([0.0, 0.08, 0.0, 0.0, 0.0])
    gamma0, lnc = 0.25, 9.4
    field = _field(gamma0, 0.7)
    import equinox as eqx
    import jax.numpy as jnp
    with x64():
        field = eqx.tree_at(lambda m: m.coef, field, jnp.asarray(coef))
        fam = FamilyParams.make(lnc, h)
    start = np.array([28.0, 45.0, 25.0, 52.0, 26.0])
    x0 = np.log10(0.07e9)
    rhs = _numpy_rates(coef, gamma0, lnc, h)
    sol = solve_ivp(rhs, (x0, 12.0), to_state(start), dense_output=True, rtol=1e-10, atol=1e-12)

    def dtqa(x):
        z = sol.sol(x)
        u = 1 / (1 + np.exp(-z[TQA]))
        return (CEILING - FLOORS[TQA]) * u * (1 - u) * rhs(x, z)[TQA]

    grid = np.linspace(x0, 12.0, 2000)
    vals = np.array([dtqa(x) for x in grid])
    i = int(np.argmax((vals[:-1] < 0) & (vals[1:] >= 0)))
    expected = brentq(dtqa, grid[i], grid[i + 1])
    assert abs(expected - lnc) > 0.1              # the source really moved the crossing
    res = implied_nc(field, fam, start, 0.07, x_max=12.0, n_grid=800)
    assert res.log10_nc == pytest.approx(expected, abs=5e-3)


def test_implied_nc_draws_carry_the_posterior_through():
    """Draws of log10 Nc (no TQA source) map one to one onto implied crossings; a draw
    whose trajectory never crosses inside the scan gives NaN."""
    field = _field(gamma0=0.3, hs_rate=0.6)
    start = np.array([30.0, 40.0, 30.0, 55.0, 27.0])
    draws = np.array([9.2, 9.9, 10.5, 12.5])
    out = implied_nc_draws(field, draws, np.zeros((4, 5)), start, 0.1, x_max=12.0, n_grid=600)
    np.testing.assert_allclose(out[:3], draws[:3], atol=3e-3)
    assert np.isnan(out[3])


# --------------------------------------------------------------------------- shared ODE

def _shared_truth(x, z, g, floors_unused=None):
    return g[0] + g[1] * np.tanh(z / 2) + g[2] * (x - 9.0)


def _simulated_shared(g, slack=10.0):
    floors = CHANCE - slack
    rng = np.random.default_rng(4)
    sizes = {"A": [0.1, 0.4, 1.5, 6.0], "B": [0.3, 1.0, 3.0, 12.0], "C": [0.2, 2.0, 20.0],
             "D": [0.5, 2.5, 10.0, 40.0], "H": [0.15, 1.0, 8.0, 50.0]}
    rows = []
    for f, ps in sizes.items():
        xs = np.log10(np.asarray(ps) * 1e9)
        z0 = rng.uniform(-2.0, 0.5, 5)
        sol = solve_ivp(lambda x, z: _shared_truth(x, z, g), (xs[0], xs[-1]), z0, t_eval=xs,
                        rtol=1e-11, atol=1e-12)
        s = floors + (100 - floors) / (1 + np.exp(-sol.y.T))
        rows += [{"model": f"{f}{i}", "family": f, "params_b": p, **dict(zip(B, row))}
                 for i, (p, row) in enumerate(zip(ps, s))]
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_shared_ode_recovers_simulated_shared_dynamics():
    """Families simulated from a field shared by every benchmark (no offsets, no coupling,
    no sources): the fit reproduces the held-out family from its smallest model."""
    from capedyn.latent_ode import SharedLogitODE

    g = np.array([0.9, -0.4, -0.1])
    df = _simulated_shared(g)
    est = SharedLogitODE(floor_slack=10.0, steps=400, learning_rate=0.03).fit(df[df["family"] != "H"])
    held = df[df["family"] == "H"]
    pred = est.predict(held.iloc[0], held["params_b"].to_numpy()[1:])[B].to_numpy()
    err = np.abs(pred - held[B].to_numpy()[1:])
    assert err.mean() < 0.5 and err.max() < 1.5
    np.testing.assert_allclose(np.asarray(est.field_.g), g, atol=0.1)
    assert np.abs(np.asarray(est.field_.c)).max() < 0.1
    assert est.score(df[df["family"] != "H"])["mean_rel_error_pct"] < 1.0


def test_shared_ode_estimator_contract_and_errors(base_df):
    from sklearn.base import clone

    from capedyn.latent_ode import SharedLogitODE

    est = SharedLogitODE(floor_slack=5.0, steps=10)
    twin = clone(est)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "field_")
    with pytest.raises(ValueError, match="floor_slack"):
        SharedLogitODE(floor_slack=25.0).fit(base_df)
    with pytest.raises(Exception, match="not fitted"):
        SharedLogitODE().predict(base_df.iloc[0], [10.0])
