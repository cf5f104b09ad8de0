"""The shared-logit ODE's inductive bias for benchmarks a training family never moved
(censoring of series that stay at chance), its Levenberg–Marquardt fit, and the no-leak
guarantee of the registered configuration. Truth comes from simulation with known
parameters (closed-form logit trajectories), never from the code's own output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capedyn.data.tables import BENCHMARKS

B = list(BENCHMARKS)
MMLU = B.index("mmlu")
CHANCE = np.array([25.0, 20.0, 25.0, 50.0, 25.0])
SLACK = 10.0
FLOORS = CHANCE - SLACK
RATE = 0.8      # logit units per decade, the same for every benchmark (exchangeable truth)


def _logit(s):
    u = (np.asarray(s, float) - FLOORS) / (100.0 - FLOORS)
    return np.log(u / (1 - u))


def _score(z):
    return FLOORS + (100.0 - FLOORS) / (1 + np.exp(-z))


def _family(name, sizes, start, flat_mmlu=False, rng=None):
    """Closed form of dz/dx = RATE from ``start`` (percent) at the smallest size; with
    ``flat_mmlu`` the family's MMLU sits at chance (25 ± 0.4) throughout instead."""
    x = np.log10(np.asarray(sizes, float) * 1e9)
    s = _score(_logit(start)[None, :] + RATE * (x - x[0])[:, None])
    if flat_mmlu:
        s[:, MMLU] = 25.0 + 0.4 * rng.standard_normal(len(x))
    return pd.DataFrame([{"model": f"{name}-{i}", "family": name, "params_b": p,
                          **dict(zip(B, row))} for i, (p, row) in enumerate(zip(sizes, s))])


def _est(**kw):
    from capedyn.models.shared_ode import SharedLogitODE

    base = dict(floor_slack=SLACK, optimizer="lm", state_term=False, scale_term=False,
                new_family_source="mean", l2_c=3.0)
    return SharedLogitODE(**{**base, **kw})


@pytest.fixture(scope="module")
def flat_mmlu_training():
    """Two training families that move every benchmark at RATE except MMLU (at chance)."""
    rng = np.random.default_rng(7)
    return pd.concat([
        _family("A", [0.07, 0.16, 0.4, 1.0, 2.8, 6.9, 12.0], [27.0, 45.0, 22.0, 51.0, 25.5],
                flat_mmlu=True, rng=rng),
        _family("C", [0.1, 0.5, 2.0, 8.0], [30.0, 42.0, 24.0, 52.0, 25.0], flat_mmlu=True, rng=rng),
    ], ignore_index=True)


@pytest.mark.slow
def test_censoring_lets_a_never_moved_benchmark_move_at_the_shared_rate(flat_mmlu_training):
    """No training family moved MMLU; a new family that starts well above chance on MMLU
    follows the exchangeable truth only when the at-chance series are censored."""
    held = _family("H", [7.0, 13.0, 70.0], [77.0, 39.0, 53.0, 69.0, 45.0])
    start, sizes = held.iloc[0], held["params_b"].to_numpy()[1:]
    truth = held[B].to_numpy()[1:]
    cens = _est(censor_margin=3.0).fit(flat_mmlu_training)
    plain = _est(censor_margin=None).fit(flat_mmlu_training)
    assert cens.censored_ == {"A": ["mmlu"], "C": ["mmlu"]}
    p_cens = cens.predict(start, sizes)[B].to_numpy()
    p_plain = plain.predict(start, sizes)[B].to_numpy()
    assert np.abs(p_cens - truth).max() < 1.0                    # every benchmark, MMLU too
    # without censoring the flat MMLU of training is learnt as a rule: far off at 70B
    assert abs(p_plain[-1, MMLU] - truth[-1, MMLU]) > 8.0


@pytest.mark.slow
def test_a_benchmark_starting_at_chance_is_held_where_training_kept_it(flat_mmlu_training):
    """A new family at chance on MMLU keeps its starting MMLU (the training families show
    MMLU can stay at chance); its other benchmarks still move at the shared rate."""
    held = _family("G", [0.1, 1.0, 10.0], [28.0, 44.0, 23.0, 51.0, 26.0], flat_mmlu=False)
    est = _est(censor_margin=3.0).fit(flat_mmlu_training)
    assert list(np.asarray(est.hold_at_chance_)) == [b == "mmlu" for b in B]
    pred = est.predict(held.iloc[0], held["params_b"].to_numpy()[1:])[B].to_numpy()
    np.testing.assert_array_equal(pred[:, MMLU], 26.0)
    others = [k for k in range(5) if k != MMLU]
    assert np.abs(pred[:, others] - held[B].to_numpy()[1:, others]).max() < 1.0


@pytest.mark.slow
def test_transfer_rule_recovers_a_source_that_grows_with_the_start_size():
    """Families whose logit rate grows with the size of their smallest model
    (rate = 0.8 + 0.4·(x0 − 8.5) on every benchmark, closed form): an unseen family gets
    its rate from the transfer rule; the training mean source misses it."""
    start = np.array([35.0, 40.0, 30.0, 55.0, 35.0])

    def fam(name, x0):
        xs = x0 + np.array([0.0, 0.5, 1.0, 1.5])
        z = _logit(start)[None, :] + (0.8 + 0.4 * (x0 - 8.5)) * (xs - x0)[:, None]
        return pd.DataFrame([{"model": f"{name}-{i}", "family": name, "params_b": 10 ** x / 1e9,
                              **dict(zip(B, _score(row)))} for i, (x, row) in enumerate(zip(xs, z))])

    train = pd.concat([fam(n, x0) for n, x0 in zip("ABCDE", [7.8, 8.1, 8.5, 8.8, 9.1])],
                      ignore_index=True)
    held = fam("H", 9.4)
    truth = held[B].to_numpy()[1:]
    preds = {}
    for source in ("transfer", "mean"):
        est = _est(new_family_source=source, l2_h=0.01, transfer_alpha=1e-3).fit(train)
        preds[source] = est.predict(held.iloc[0], held["params_b"].to_numpy()[1:])[B].to_numpy()
    assert np.abs(preds["transfer"] - truth).max() < 1.0
    assert np.abs(preds["mean"] - truth).max() > 3.0


def test_settings_are_validated(flat_mmlu_training):
    with pytest.raises(ValueError, match="optimizer"):
        _est(optimizer="sgd").fit(flat_mmlu_training)
    with pytest.raises(ValueError, match="new_family_source"):
        _est(new_family_source="median").fit(flat_mmlu_training)
    with pytest.raises(ValueError, match="censor_margin"):
        _est(censor_margin=float("nan")).fit(flat_mmlu_training)


@pytest.mark.slow
def test_levenberg_marquardt_recovers_a_state_and_scale_dependent_field():
    """The LM fit (forward-mode Jacobians through Diffrax) recovers the parameters of a
    simulated shared field with state and scale terms, integrated here by scipy."""
    from scipy.integrate import solve_ivp

    from capedyn.models.shared_ode import SharedLogitODE

    g = np.array([0.9, -0.4, -0.1])
    rng = np.random.default_rng(4)
    sizes = {"A": [0.1, 0.4, 1.5, 6.0], "B": [0.3, 1.0, 3.0, 12.0], "C": [0.2, 2.0, 20.0],
             "D": [0.5, 2.5, 10.0, 40.0]}
    rows = []
    for f, ps in sizes.items():
        xs = np.log10(np.asarray(ps) * 1e9)
        sol = solve_ivp(lambda x, z: g[0] + g[1] * np.tanh(z / 2) + g[2] * (x - 9.0),
                        (xs[0], xs[-1]), rng.uniform(-2.0, 0.5, 5), t_eval=xs,
                        rtol=1e-11, atol=1e-12)
        rows += [{"model": f"{f}{i}", "family": f, "params_b": p, **dict(zip(B, _score(z)))}
                 for i, (p, z) in enumerate(zip(ps, sol.y.T))]
    est = SharedLogitODE(floor_slack=SLACK, optimizer="lm", steps=200).fit(pd.DataFrame(rows))
    assert est.n_iter_ < 200
    np.testing.assert_allclose(np.asarray(est.field_.g), g, atol=0.05)
    assert np.sqrt(est.mse_) < 0.3


@pytest.mark.slow
def test_registered_shared_ode_never_sees_the_held_out_family(base_df):
    """The registered ``shared_ode`` (nested selection over its grid): poisoned later
    Llama-2 rows leave its predictions and its selected settings unchanged."""
    import capedyn.evaluation.heldout as H
    from capedyn.evaluation.selection import clear_cache

    poisoned = base_df.copy()
    later = (poisoned["family"] == "Llama-2") & (poisoned["model"] != "Llama2-7B")
    poisoned.loc[later, B] = 99.0
    kw = dict(train=["Pythia", "OPT"], methods={"shared_ode": H.METHODS["shared_ode"]},
              curves=False)
    clean = H.holdout(base_df, "Llama-2", **kw)
    clear_cache()
    dirty = H.holdout(poisoned, "Llama-2", **kw)
    assert list(clean.table["status"]) == ["ok"], clean.table["message"].tolist()
    np.testing.assert_array_equal(clean.predictions["pred"].to_numpy(),
                                  dirty.predictions["pred"].to_numpy())
    sel = ["family", "method", "cv_kind", "best_params", "cv_error"]
    assert clean.selections[sel].to_dict("records") == dirty.selections[sel].to_dict("records")
    assert not np.allclose(clean.predictions["actual"], dirty.predictions["actual"])


def test_the_shared_term_switches_share_one_compiled_fit(flat_mmlu_training, monkeypatch):
    """``state_term``/``scale_term`` mask the shared terms inside the fit instead of changing
    the field's structure: the four settings hand the compiled LM fit inputs of one
    structure and shape (so one program serves them all); a term switched off keeps a
    coefficient of exactly 0, a term switched on moves its coefficient, and the fitted
    field reports the settings."""
    import jax

    from capedyn.models import shared_ode as so

    seen = []
    real = so._fit_lm

    def spy(params, batch, tol, max_steps):
        leaves, treedef = jax.tree_util.tree_flatten((params, batch))
        seen.append((treedef, tuple(np.shape(a) for a in leaves)))
        return real(params, batch, tol, max_steps)

    monkeypatch.setattr(so, "_fit_lm", spy)
    fits = {(st, sc): _est(state_term=st, scale_term=sc, steps=40).fit(flat_mmlu_training)
            for st in (False, True) for sc in (False, True)}
    assert len(seen) == 4 and len(set(seen)) == 1
    for (st, sc), est in fits.items():
        g = np.asarray(est.field_.g)
        assert (est.field_.state_term, est.field_.scale_term) == (st, sc)
        assert (g[1] != 0.0) == st and (g[2] != 0.0) == sc, (st, sc, g)


def test_the_family_block_jacobian_equals_jacfwd_of_the_residuals(flat_mmlu_training, monkeypatch):
    """The LM fit's Jacobian is built family by family (a family's rows pushed through its
    solve with the shared field's and its own source's tangents); plain jax.jacfwd over
    every parameter of the residual function must give the same matrix, with a censored
    series, a switched-off shared term and the ridge rows in play."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from capedyn._jax import x64
    from capedyn.models import shared_ode as so

    seen = []
    real = so._fit_lm

    def spy(params, batch, tol, max_steps):
        seen.append((params, batch))
        return real(params, batch, tol, max_steps)

    monkeypatch.setattr(so, "_fit_lm", spy)
    _est(state_term=True, scale_term=False, censor_margin=3.0, steps=5).fit(flat_mmlu_training)
    params, batch = seen[0]
    with x64():  # the library fits in float64 inside its own scope; so does this check
        assert float(np.min(np.asarray(batch.bmask))) == 0.0  # a censored series
        flat, unravel = ravel_pytree(params)
        y = unravel(flat + 0.05 * np.random.default_rng(2).standard_normal(flat.size))
        r, jac = so._residual_jacobian(y, batch)
        dense = jax.jacfwd(lambda t: so._residuals(unravel(t), batch))(ravel_pytree(y)[0])
        scale = float(jnp.max(jnp.abs(dense)))
        np.testing.assert_allclose(np.asarray(jac), np.asarray(dense), rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(np.asarray(r), np.asarray(so._residuals(y, batch)),
                                   rtol=0, atol=1e-12)
        # the scale term is off: no data residual moves with its coefficient
        assert np.all(np.asarray(jac)[:np.asarray(batch.ys).size, 2] == 0.0)
