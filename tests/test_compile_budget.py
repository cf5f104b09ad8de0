"""What the default fit compiles: one ODE solve inside the compiled Levenberg–Marquardt step
(the residuals are the Jacobian solve's own primal), and no other program that
holds a solve; compiling is the cost of a first fit, so a second solve slipping into the
step (or a separate residual program) doubles it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import capedyn as cd
from capedyn.dynamics import objective, optimise
from capedyn._jax import x64
from capedyn.dynamics.trajectory import stack_trajectories, trajectories

pytestmark = pytest.mark.xdist_group("fit_ode")


def _problem(df):
    est = cd.CouplingODE(seed=0, progress=False)
    cfg = est._validated()
    trajs = trajectories(df[df["family"].isin(["Pythia", "OPT"])])
    batch = stack_trajectories(trajs, lm_solve_steps=cfg["lm_solve_steps"])  # as fit builds it
    pop = est._initial_population(trajs, batch.x0.shape[0])
    tm = objective.trainable_mask(pop)
    pen = est._penalties(cfg=cfg)
    return tuple(objective._float64(t) for t in (pop, pen, tm, batch))


def test_the_lm_step_traces_one_solve(base_df, monkeypatch):
    import equinox as eqx

    calls = []
    real = objective.solve_unchecked

    def counting(*args, **kwargs):
        calls.append(kwargs.get("adjoint"))
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "solve_unchecked", counting)
    with x64():
        pop, pen, tm, batch = _problem(base_df)
        args = (batch, pen, tm, pop)
        tol = jnp.asarray(1e-6)
        state = optimise._lm_start(pop, args)
        jax.clear_caches()  # every solve inside the step is traced afresh
        calls.clear()
        eqx.filter_make_jaxpr(lambda s, a: optimise._lm_step(s, a, tol))(state, args)
    # one forward-mode solve gives the residuals and the Jacobian together
    assert calls == ["forward"]


def test_a_fit_compiles_no_separate_residual_program(base_df, monkeypatch):
    """optimise_lm reads the start's objective from the first step, not from a program of
    its own (which held a whole extra solve)."""
    compiled = []
    monkeypatch.setattr(optimise, "_lm_eval_jit",
                        lambda *a: compiled.append(1) or optimise._lm_eval(*a))
    est = cd.CouplingODE(seed=0, progress=False, steps=3).fit(
        base_df[base_df["family"].isin(["Pythia", "OPT"])])
    assert not compiled
    # the start's objective, computed independently of the fit's loop
    with x64():
        pop, pen, tm, batch = _problem(base_df)
        r = objective.residual_vector(pop, batch, pen)
        start_objective = float(jnp.sum(r * r))
    assert est.history_[0] == pytest.approx(start_objective, rel=1e-12)
    assert est.history_[1] == est.history_[0]  # the first step accepts the start
