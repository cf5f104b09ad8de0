"""The ODE-implied critical scale (capedyn.inference.implied_nc) and its simulation check
(capedyn.inference.implied_nc_calibration). Truth comes from simulation with known parameters, integrated
here with scipy (an independent solver) or from fields whose crossing is known in closed
form, never from the code's own output."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from capedyn._jax import x64
from capedyn.dynamics.state import CEILING, FLOORS, N_FEATURES, polynomial_features, to_state
from capedyn.data.tables import BENCHMARKS
from capedyn.inference.implied_nc import implied_nc, implied_nc_batch, implied_nc_draws
from capedyn.inference.implied_nc_agreement import implied_nc_agreement

B = list(BENCHMARKS)
HS, TQA = B.index("hellaswag"), B.index("truthfulqa")
START = np.array([30.0, 40.0, 30.0, 55.0, 27.0])


def _field(gamma0: float, hs_rate: float, coef=None):
    """Score-unit coupling field; with ``coef=None`` TQA moves only through the coupling, so
    dTQA/dx = γ0·(x − log10 Nc)·dHS/dx exactly and the crossing is the Nc parameter."""
    import jax.numpy as jnp

    from capedyn.dynamics.field import CouplingField

    if coef is None:
        coef = np.zeros((5, N_FEATURES))
        coef[:, 0] = 0.2
        coef[HS, 0] = hs_rate
        coef[TQA, 0] = 0.0
    with x64():
        return CouplingField(coef=jnp.asarray(coef), gamma0=jnp.asarray(gamma0), degree=2,
                             coupling="score", kappa_max=4.0)


def _fam(lnc, h=None):
    from capedyn.dynamics.field import FamilyParams

    with x64():
        return FamilyParams.make(lnc, np.zeros(5) if h is None else h)


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


def _scipy_crossing(coef, gamma0, lnc, h, start, x0, x_max=12.0):
    """First − → + zero of dTQA/dx on the scipy trajectory from x0 upward (brentq)."""
    rhs = _numpy_rates(coef, gamma0, lnc, h)
    sol = solve_ivp(rhs, (x0, x_max), to_state(start), dense_output=True, rtol=1e-10, atol=1e-12)

    def dtqa(x):
        z = sol.sol(x)
        u = 1 / (1 + np.exp(-z[TQA]))
        return (CEILING - FLOORS[TQA]) * u * (1 - u) * rhs(x, z)[TQA]

    grid = np.linspace(x0, x_max, 2000)
    vals = np.array([dtqa(x) for x in grid])
    hit = np.flatnonzero((vals[:-1] < 0) & (vals[1:] >= 0))
    return brentq(dtqa, grid[hit[0]], grid[hit[0] + 1]) if hit.size else np.nan


def _sourced_field():
    coef = np.zeros((5, N_FEATURES))
    coef[:, 0] = 0.2
    coef[HS, 0] = 0.7
    coef[HS, 1 + HS] = -0.15       # HS slows as it rises
    coef[TQA, 0] = 0.0
    return coef, _field(0.25, 0.7, coef)


# --------------------------------------------------------------------------- one trajectory

def test_implied_nc_equals_the_coupling_zero_when_nothing_else_moves_tqa():
    """With no universal TQA rate and no TQA source, dTQA/dx = γ12(x)·dHS/dx exactly, so the
    trajectory's tax→bonus crossing is the family's Nc parameter (4B and 40B here)."""
    field = _field(gamma0=0.3, hs_rate=0.6)
    for lnc in (9.6, 10.6):
        res = implied_nc(field, _fam(lnc), START, 0.1, x_max=12.0, n_grid=400)
        assert res.crosses and res.side == "crosses"
        assert res.log10_nc == pytest.approx(lnc, abs=2e-3)
        assert res.nc_b == pytest.approx(10 ** (lnc - 9), rel=5e-3)
        g = res.curve["gamma12"].to_numpy()
        x = res.curve["log10_n"].to_numpy()
        assert np.all(g[x < lnc - 0.05] < 0) and np.all(g[x > lnc + 0.05] > 0)


def test_a_crossing_below_the_smallest_model_is_found_by_the_downward_scan():
    """Nc = 0.3B below a family starting at 1B: the upward scan alone sees only the bonus
    side; the scan continued downward (the same field in decreasing x) finds the Nc."""
    field = _field(gamma0=0.3, hs_rate=0.6)
    up = implied_nc(field, _fam(8.48), START, 1.0, x_min=None, n_grid=400)
    assert not up.crosses and up.side == "bonus"
    both = implied_nc(field, _fam(8.48), START, 1.0, x_min=7.0, n_grid=400)
    assert both.crosses and both.log10_nc == pytest.approx(8.48, abs=3e-3)
    assert both.x_range == pytest.approx((7.0, 12.0))


def test_implied_nc_with_a_tqa_source_matches_scipy():
    """With a TQA source h the crossing moves off the Nc parameter; the expected crossing is
    found by integrating the same field in numpy with scipy and root-finding dTQA/dx."""
    coef, field = _sourced_field()
    h = np.array([0.0, 0.08, 0.0, 0.0, 0.0])
    start = np.array([28.0, 45.0, 25.0, 52.0, 26.0])
    expected = _scipy_crossing(coef, 0.25, 9.4, h, start, np.log10(0.07e9))
    assert abs(expected - 9.4) > 0.1              # the source really moved the crossing
    res = implied_nc(field, _fam(9.4, h), start, 0.07, x_max=12.0, n_grid=400, x_min=None)
    assert res.log10_nc == pytest.approx(expected, abs=5e-3)


# --------------------------------------------------------------------------- many draws

def test_vmapped_draws_match_scipy_and_the_one_at_a_time_path():
    """Draws of (log10 Nc, h_TQA) through the vmapped solve give the scipy crossings and the
    same values as implied_nc called draw by draw (the loop it replaced)."""
    coef, field = _sourced_field()
    start = np.array([28.0, 45.0, 25.0, 52.0, 26.0])
    lnc = np.array([9.4, 9.9, 10.3])
    h = np.zeros((3, 5))
    h[:, TQA] = [0.08, 0.02, -0.03]
    x0 = np.log10(0.07e9)
    out = implied_nc_draws(field, lnc, h, start, 0.07, n_grid=400, x_min=None)
    loop = [implied_nc(field, _fam(a, b), start, 0.07, n_grid=400, x_min=None).log10_nc
            for a, b in zip(lnc, h)]
    np.testing.assert_allclose(out, loop, atol=1e-10)
    for i in range(3):
        assert out[i] == pytest.approx(_scipy_crossing(coef, 0.25, lnc[i], h[i], start, x0),
                                       abs=5e-3)


def test_implied_nc_draws_carry_the_posterior_through():
    """Draws of log10 Nc (no TQA source) map one to one onto implied crossings; a draw whose
    trajectory never crosses inside the scan gives NaN and counts as the tax side."""
    field = _field(gamma0=0.3, hs_rate=0.6)
    draws = np.array([9.2, 9.9, 10.5, 12.5, 6.5])
    out = implied_nc_draws(field, draws, np.zeros((5, 5)), START, 0.1, x_max=12.0, n_grid=400)
    np.testing.assert_allclose(out[:3], draws[:3], atol=3e-3)
    assert np.isnan(out[3]) and np.isnan(out[4])
    with x64():
        z0 = to_state(START)
    res = implied_nc_batch(field, np.tile(z0, (5, 1)), np.full(5, 8.0), draws, np.zeros(5),
                           n_grid=400)
    assert list(res.side[3:]) == ["tax", "bonus"]
    ext = res.extended()
    assert ext[3] == np.inf and ext[4] == -np.inf


def test_linear_definition_recovers_nc_outside_the_fitted_range():
    """When the trajectory's running coupling is exactly γ0·(x − log10 Nc) (nothing else
    moves TQA), the straight line fitted over the family's sizes has its zero at the Nc
    parameter even when that lies beyond the sizes used (here 10.3 with sizes up to 3B)."""
    field = _field(gamma0=0.3, hs_rate=0.6)
    with x64():
        z0 = to_state(START)
    lnc = np.array([8.3, 10.3])
    res = implied_nc_batch(field, np.tile(z0, (2, 1)), np.full(2, 8.0), lnc, np.zeros((2, 5)),
                           n_grid=400, definition="linear", x_fit=np.full(2, np.log10(3e9)))
    np.testing.assert_allclose(res.log10_nc, lnc, atol=2e-3)


def test_each_row_can_carry_its_own_coupling_strength():
    """Per-row γ0 (the ODE-level posterior's family_gamma option) replaces the field's one
    value row by row: each crossing matches scipy integrating the field with that γ0."""
    coef, field = _sourced_field()                     # the field's own γ0 is 0.25
    start = np.array([28.0, 45.0, 25.0, 52.0, 26.0])
    h = np.array([0.0, 0.08, 0.0, 0.0, 0.0])
    x0 = np.log10(0.07e9)
    g = np.array([0.12, 0.25, 0.6])
    with x64():
        z0 = to_state(start)
    res = implied_nc_batch(field, np.tile(z0, (3, 1)), np.full(3, x0), np.full(3, 9.4), h,
                           n_grid=400, x_min=None, gamma0=g)
    expected = [_scipy_crossing(coef, gi, 9.4, h, start, x0) for gi in g]
    assert np.ptp(expected) > 0.2                      # γ0 really moves the crossing
    np.testing.assert_allclose(res.log10_nc, expected, atol=5e-3)


def test_posterior_draws_of_start_and_gamma0_are_used():
    """An ODE-level posterior that carries γ0_f and the true start scores (family_gamma,
    noisy_start): the implied Nc is solved from the drawn start with the drawn γ0, not from
    the observed start with the field's γ0 (the two differ by > 0.2 decades here)."""
    import xarray as xr

    from capedyn.inference.implied_nc_posterior import implied_nc_posterior
    from capedyn.inference.models import TrajectoryData

    coef, field = _sourced_field()
    h = np.array([0.0, 0.08, 0.0, 0.0, 0.0])
    observed = np.array([28.0, 45.0, 25.0, 52.0, 26.0])
    true_start = np.array([29.0, 43.0, 25.5, 52.0, 26.0])
    x0 = np.log10(0.07e9)
    n = 8
    post = xr.Dataset(
        {"log10_nc": (("chain", "draw", "family"), np.full((1, n, 1), 9.4)),
         "h": (("chain", "draw", "family", "benchmark"), np.tile(h, (1, n, 1, 1))),
         "gamma0": (("chain", "draw", "family"), np.full((1, n, 1), 0.6)),
         "start_scores": (("chain", "draw", "family", "benchmark"),
                          np.tile(true_start, (1, n, 1, 1)))},
        coords={"family": ["A"], "benchmark": B})
    with x64():
        z0 = to_state(observed[None])
    tdata = TrajectoryData(families=("A",), x0=np.array([x0]), z0=z0, xs=np.array([[x0, 10.0]]),
                           scores=np.zeros((1, 2, 5)), mask=np.array([[False, True]]),
                           n_models=(2,), smallest_b=(0.07,), largest_b=(10.0,))
    ode = types.SimpleNamespace(idata=types.SimpleNamespace(posterior=post), data=tdata,
                                families=("A",), field_=field, model="ode")
    got = implied_nc_posterior(ode, n_grid=400, x_min=None)["implied_median_b"].iloc[0]
    want = _scipy_crossing(coef, 0.6, 9.4, h, true_start, x0)
    ignored = _scipy_crossing(coef, 0.25, 9.4, h, observed, x0)
    assert abs(want - ignored) > 0.2
    assert np.log10(got) + 9 == pytest.approx(want, abs=5e-3)


# --------------------------------------------------------------------------- agreement

def _fake_posteriors(field):
    """An ODE-level posterior whose draws have known implied Nc (no TQA source) and a
    coupling-level posterior with stated intervals, for two families."""
    import xarray as xr

    from capedyn.inference.models import CouplingData, TrajectoryData
    from capedyn.inference.result import NcPosterior

    rng = np.random.default_rng(0)
    lnc = np.stack([9.6 + 0.05 * rng.standard_normal(40), 10.8 + 0.05 * rng.standard_normal(40)],
                   axis=-1)[None]                      # (chain, draw, family)
    fams = ["A", "Bfam"]
    post = xr.Dataset({"log10_nc": (("chain", "draw", "family"), lnc),
                       "h": (("chain", "draw", "family", "benchmark"), np.zeros((1, 40, 2, 5)))},
                      coords={"family": fams, "benchmark": B})
    with x64():
        z0 = to_state(np.tile(START, (2, 1)))
    tdata = TrajectoryData(families=tuple(fams), x0=np.array([8.0, 8.0]), z0=z0,
                           xs=np.array([[8.0, 9.0, 10.0], [8.0, 9.0, 10.0]]),
                           scores=np.zeros((2, 3, 5)), mask=np.ones((2, 3), bool),
                           n_models=(3, 3), smallest_b=(0.1, 0.1), largest_b=(10.0, 10.0))
    ode = types.SimpleNamespace(idata=types.SimpleNamespace(posterior=post), data=tdata,
                                families=tuple(fams), field_=field, config={"model": "ode"})
    table = pd.DataFrame([
        {"family": "A", "kind": "family", "n_models": 3, "nc_median_b": 3.0,
         "nc_ci68_lo_b": 2.0, "nc_ci68_hi_b": 6.0, "nc_ci95_lo_b": 1.0, "nc_ci95_hi_b": 20.0},
        {"family": "Bfam", "kind": "family", "n_models": 3, "nc_median_b": 5.0,
         "nc_ci68_lo_b": 2.0, "nc_ci68_hi_b": 8.0, "nc_ci95_lo_b": 1.0, "nc_ci95_hi_b": 30.0}])
    cdata = CouplingData(families=tuple(fams), family_idx=np.array([0, 0, 1, 1]),
                         log10_n=np.array([8.5, 9.5, 8.5, 9.5]), delta_hs=np.ones(4) * 5,
                         gamma12=np.array([-0.2, 0.3, -0.2, -0.1]), n_models=(3, 3),
                         smallest_b=(0.1, 0.1), largest_b=(10.0, 10.0))
    cp = NcPosterior(model="coupling", idata=None, families=tuple(fams), table=table,
                     divergences=0, divergences_per_chain=[0], runtime_s=0.0, config={},
                     data=cdata)
    return ode, cp


def test_agreement_table_counts_by_hand():
    """Family A: implied Nc ≈ 10^9.6 = 4.0B, inside its coupling 68% [2, 6]B, and its pairs
    turn from tax to bonus; family Bfam: implied ≈ 63B, outside [2, 8]B and beyond its data,
    and its pairs never turn."""
    ode, cp = _fake_posteriors(_field(gamma0=0.3, hs_rate=0.6))
    a = implied_nc_agreement(ode, cp, n_grid=400)
    t = a.table.set_index("family")
    assert t.loc["A", "implied_median_b"] == pytest.approx(10 ** 0.6, rel=0.05)
    assert t.loc["Bfam", "implied_median_b"] == pytest.approx(10 ** 1.8, rel=0.05)
    assert list(t["observed_turn"]) == [True, False]
    assert list(t["agree68"]) == [True, False] and list(t["implied_inside_data"]) == [True, False]
    assert (a.n_inside, a.n_agree, a.n_families, a.n_agree_all) == (1, 1, 2, 1)
    assert a.n_agree95 == 1   # A (turns, inside [1, 20]); Bfam (63B) is outside [1, 30] and does not turn
    assert (a.n_coupling_inside, a.n_coupling_agree) == (2, 1)
    assert t.loc["A", "frac_cross"] == 1.0
    d = a.to_dict()
    assert d["n_agree"] == 1 and len(d["families"]) == 2
    from capedyn.cli.posterior import _implied_human

    text = "\n".join(_implied_human(d))
    assert "1 of 1 have the ODE-implied median inside" in text and "Bfam" in text


@pytest.mark.parametrize("argv, message", [
    (["posterior", "--implied-nc"], "--model ode"),
    (["posterior", "--family-gamma", "--exact-start"], "--family-gamma and --exact-start only apply"),
    (["posterior", "--model", "ode", "--implied-nc", "--coupling-posterior", "/nonexistent/c.nc"],
     "no coupling-level posterior file"),
    (["posterior", "--model", "ode", "--coupling-posterior", "c.nc"], "only used with --implied-nc"),
])
def test_cli_refuses_implied_nc_misuse_before_sampling(argv, message, capsys):
    from capedyn.cli.entry import main

    assert main(argv) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- simulation

@pytest.mark.slow
def test_simulation_recovers_a_known_crossing():
    """Families simulated from a field whose crossing is the Nc parameter (tiny noise, dense
    sizes across the crossing): the ODE-level posterior's implied-Nc interval holds the true
    crossing and its median sits near it.

    Two families of eight sizes and 2 chains x 100 (+100) draws: the shapes and sampler
    settings of test_posterior.py's ODE recovery test, so the two share one compiled NUTS
    program (tests/conftest.py runs them on one worker)."""
    from capedyn.inference.implied_nc_calibration import implied_nc_coverage
    from capedyn.inference.models import TrajectoryData

    field = _field(gamma0=0.4, hs_rate=0.6)
    sizes = np.array([0.1, 0.3, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0])
    xs = np.log10(sizes * 1e9)
    m = len(xs)
    with x64():
        z0 = to_state(np.tile(START, (2, 1)))
    design = TrajectoryData(families=("D1", "D2"), x0=np.full(2, xs[0]), z0=z0,
                            xs=np.tile(xs, (2, 1)), scores=np.tile(START, (2, m, 1)),
                            mask=np.tile(np.arange(m) > 0, (2, 1)), n_models=(m, m),
                            smallest_b=(0.1, 0.1), largest_b=(30.0, 30.0))
    res = implied_nc_coverage(2, seed=3, per_dataset=2, fit=field, chains=2, samples=100,
                              warmup=100, design=design, noisy_start=False,
                              definitions=("crossing",),
                              truth={"mu": 9.5, "tau": 0.3, "sigma_h": 0.003,
                                     "sigma_score": (0.3,) * 5})
    t = res["table"]
    assert (t["true_side"] == "crosses").all()
    # with h ≈ 0 the true crossing is (close to) the drawn Nc parameter: an independent check
    np.testing.assert_allclose(t["true_implied"], t["true_log10_nc_param"], atol=0.05)
    assert t["covered95"].all()
    np.testing.assert_allclose(t["median"], t["true_implied"], atol=0.3)
