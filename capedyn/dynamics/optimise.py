"""The two optimisers of the coupling-ODE fit: Optax Adam through the solver, and the default
compiled Levenberg–Marquardt on the residual vector with exact Jacobians."""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._progress import Progress
from .levenberg_marquardt import LMState, lm_start, lm_step
from .objective import (FIXED_STEP_TOLERANCE, Penalties, Population, _float64, _penalty_residuals,
                        fixed_step_gap, loss_and_grad, residual_jacobian, residual_vector,
                        with_frozen)
from .trajectory import TrajectoryBatch


@functools.lru_cache(maxsize=1)
def _adam():
    """One optimiser object for every fit (the learning rate is injected per step), so the
    compiled update is reused."""
    import optax

    return optax.apply_if_finite(optax.inject_hyperparams(optax.adam)(learning_rate=0.0),
                                 max_consecutive_errors=50)


@eqx.filter_jit
def _adam_update(pop, grads, trainable, opt_state, lr):
    import optax

    grads = jax.tree_util.tree_map(lambda g, m: g * m, grads, trainable)
    opt_state = optax.tree_utils.tree_set(opt_state, learning_rate=lr)
    updates, opt_state = _adam().update(grads, opt_state, pop)
    return eqx.apply_updates(pop, updates), opt_state


def optimise(pop: Population, trainable, batch: TrajectoryBatch, pen: Penalties, *,
             steps: int, learning_rate: float, warmup: int, progress: bool = True,
             label: str = "fit") -> tuple[Population, list[float], float]:
    """Adam on :func:`objective` over the leaves whose ``trainable`` entry is 1 (a PyTree of
    0/1 arrays shaped like the inexact arrays of ``pop``: a dynamic gradient mask, so freezing
    different parameters never recompiles). The learning rate follows
    ``optax.warmup_cosine_decay_schedule``. Returns (best population, objective history,
    data MSE at the best population)."""
    import optax

    schedule = optax.warmup_cosine_decay_schedule(
        init_value=learning_rate / 10, peak_value=learning_rate, warmup_steps=warmup,
        decay_steps=max(steps, warmup + 1), end_value=learning_rate / 100)
    # Strongly typed float64 leaves: a weakly typed initial value would make the first
    # Adam update change the input types and trigger a second compilation.
    pop, pen, trainable, batch = (_float64(t) for t in (pop, pen, trainable, batch))
    params = eqx.filter(pop, eqx.is_inexact_array)
    opt_state = _float64(_adam().init(params))
    rates = jnp.asarray(np.asarray(jax.vmap(schedule)(jnp.arange(max(steps, 1)))), jnp.float64)
    history: list[float] = []
    best = (np.inf, np.nan, pop)
    with Progress(steps, label, enabled=progress) as bar:
        for k in range(steps + 1):
            (loss, mse), grads = loss_and_grad(pop, batch, pen)
            loss = float(loss)
            history.append(loss)
            # Adam's last iterate can sit slightly above its best; keep the best one seen.
            if np.isfinite(loss) and loss < best[0]:
                best = (loss, float(mse), pop)
            if k == steps:
                break
            pop, opt_state = _adam_update(pop, grads, trainable, opt_state, rates[k])
            bar.update(k + 1, loss=loss, mse=float(mse))
    return best[2], history, best[1]


# --------------------------------------------------------------------------- Gauss–Newton fit

def _masked_residuals(y: Population, args) -> Array:
    """Residuals at ``y`` with frozen leaves (``trainable`` = 0) held at their start values."""
    batch, pen, trainable, start = args
    return residual_vector(with_frozen(y, trainable, start), batch, pen)


def _step(state: LMState, args, tol):
    """One Levenberg–Marquardt step of the fit on ``args`` = (batch, penalties, trainable
    mask, start), its Jacobian by :func:`residual_jacobian` (one differentiated solve per
    family gives the residuals and the Jacobian together). Returns (state, done, objective
    and data MSE at the last accepted point)."""
    def at(t):
        return residual_jacobian(_unravel_like(args[3], t), *args)

    state, done = lm_step(state, at, tol)
    return (state, done) + _loss_mse(state.residual, args)


_lm_step = eqx.filter_jit(_step)
"""One step, compiled once per (field configuration, batch bucket) and reused by every fit."""


def _lm_start(pop: Population, args) -> LMState:
    """The LM state at ``pop`` (flattened as :func:`jax.flatten_util.ravel_pytree` does)."""
    from jax.flatten_util import ravel_pytree

    batch, pen = args[:2]
    n_pen = jax.eval_shape(_penalty_residuals, pop, batch, pen).shape[0]  # no solve traced
    return lm_start(ravel_pytree(pop)[0], batch.ys.size + n_pen)


def _unravel_like(like: Population, flat: Array) -> Population:
    """``flat`` (as :func:`_lm_start` flattens) back into a population shaped like ``like``."""
    from jax.flatten_util import ravel_pytree

    return ravel_pytree(like)[1](flat)


# One compiled program each, instead of a handful of small eager operations per fit.
_lm_start_jit = eqx.filter_jit(_lm_start)
_unravel_like_jit = eqx.filter_jit(_unravel_like)


def _loss_mse(r, args):
    """(objective, data MSE in points²) from the residual vector: the data residuals come
    first and their squares sum to the weighted MSE."""
    n_data = args[0].ys.size
    return jnp.sum(r * r), jnp.sum(r[:n_data] ** 2)


def _lm_eval(y, args):
    """(objective, data MSE in points²) at ``y`` from one residual evaluation."""
    return _loss_mse(_masked_residuals(y, args), args)


_lm_eval_jit = eqx.filter_jit(_lm_eval)


def optimise_lm(pop: Population, trainable, batch: TrajectoryBatch, pen: Penalties, *,
                steps: int, tol: float = 1e-6, progress: bool = True,
                label: str = "fit") -> tuple[Population, list[float], float]:
    """Levenberg–Marquardt (:mod:`capedyn.dynamics.levenberg_marquardt`) on
    :func:`residual_vector`: the same objective as :func:`optimise`, minimised as a
    least-squares problem with exact Jacobians (through the Diffrax solve, family by
    family, in the mode ``batch.jacobian`` asks for).

    ``trainable`` as in :func:`optimise` (a dynamic mask: freezing never recompiles).
    ``steps`` caps the number of LM iterations (accepted or rejected); the run stops
    earlier when the Cauchy test holds with ``rtol = atol = tol`` on both the parameters
    and the residuals. One compiled step is reused for every iteration and every fit with
    the same field configuration and padded batch shape (crossval folds, repeated fits).
    Returns (best population, objective after each step, data MSE at the best)."""
    pop, pen, trainable, batch = (_float64(t) for t in (pop, pen, trainable, batch))
    args = (batch, pen, trainable, pop)
    tol = jnp.asarray(tol, jnp.float64)  # traced: one compilation for any tolerance
    state = _lm_start_jit(pop, args)
    history: list[float] = []
    best = (np.inf, float("nan"), state.y, None)  # (objective, data MSE, point, its residuals)
    if steps < 1:
        loss0, mse0 = (float(v) for v in _lm_eval_jit(pop, args))
        history, best = [loss0], (loss0 if np.isfinite(loss0) else np.inf, mse0, state.y, None)
    with Progress(steps, label, enabled=progress) as bar:
        for k in range(steps):
            state, done, loss, mse = _lm_step(state, args, tol)
            loss = float(loss)
            if k == 0:
                # The first step accepts the starting point, so its residuals are the
                # start's: the objective before any step, without a separate program.
                history.append(loss)
                best = (loss if np.isfinite(loss) else np.inf, float(mse), state.y,
                        state.residual)
            history.append(loss)
            if np.isfinite(loss) and loss < best[0]:
                best = (loss, float(mse), state.y, state.residual)
            bar.update(k + 1, loss=loss, mse=float(mse))
            if bool(done):
                break
    # Frozen leaves back at their start; in NumPy (exact: the mask is 0/1), which spares a
    # dozen tiny compiled programs per fit.
    point = _unravel_like_jit(pop, best[2])
    out = jax.tree_util.tree_map(_keep_frozen, point, trainable, pop)
    mse = best[1] if np.isfinite(best[0]) else float("nan")
    if batch.lm_solve_steps is None or not np.isfinite(mse):
        return out, history, mse
    return _finish_adaptive(out, trainable, batch, pen, history, best[3], steps=steps,
                            tol=tol, progress=progress, label=label)


def _finish_adaptive(pop: Population, trainable, batch: TrajectoryBatch, pen: Penalties,
                     history: list[float], residuals, **lm) -> tuple[Population, list[float], float]:
    """A fit made on fixed-step solves, with the grid's error estimated at the result (from
    ``residuals``, the fit's residual vector there): kept (with the data MSE of the finer
    grid) when the error is within ``FIXED_STEP_TOLERANCE`` points on every fitted point,
    otherwise continued from there with the adaptive solve."""
    gap, mse = (float(v) for v in fixed_step_gap(pop, batch, residuals))
    if gap <= FIXED_STEP_TOLERANCE:
        return pop, history, mse
    adaptive = dataclasses.replace(batch, lm_solve_steps=None)
    pop, more, mse = optimise_lm(pop, trainable, adaptive, pen, **lm)
    return pop, history + more[1:], mse


def _keep_frozen(a, m, b):
    m = np.asarray(m)
    return jnp.asarray(m * np.asarray(a) + (1 - m) * np.asarray(b))
