"""Fitting the coupling ODE end to end: the :class:`CouplingODE` estimator, saved fits, and the
per-phase analysis.

What is fitted
    One universal :class:`~capedyn.ode.CouplingField` shared by every training family, one
    :class:`~capedyn.ode.FamilyParams` (log10 Nc_f and the source h_f) per family, and the
    population mean of log10 Nc. Every family with at least two complete models (all five
    scores) is integrated from its own smallest complete model; families with missing scores
    (Gemma-3, Gemma-4 and Qwen3 have only HellaSwag and TruthfulQA) cannot be integrated in the
    five-dimensional state and are left out of the fit.

Loss
    Mean squared error in score space (percent points) over every later model and benchmark,
    plus penalties (the MAP reading of Gaussian priors)::

        l2·‖linear coef‖² + l2_quad·‖quadratic coef‖² + l2_const·‖constant‖² + l2_gamma·gamma0²
        + l2_h·Σ_f ‖h_f‖² + l2_nc·Σ_f (log10 Nc_f − μ)² + 1e-3·((μ − nc_prior_mean)/nc_prior_sd)²

    Score space rather than latent space because the held-out metric is in points and
    because the logit stretches near-floor noise (MMLU at 25 ± 1 is several latent units).

Optimisation
    Default (``optimizer="lm"``): Levenberg–Marquardt from optimistix
    (``optx.LevenbergMarquardt``, normal equations solved by Cholesky) on the residual
    vector of :func:`residual_vector`, whose squared norm is the objective above (the data
    residuals are the weighted errors in points, each penalty a sqrt-weighted extra
    residual), so the objective is unchanged. The Jacobian is exact: forward mode
    (``jax.jacfwd``) through ``diffrax.diffeqsolve`` with ``diffrax.ForwardMode``, all
    families vmapped in one batch, computed once per trial point (a custom JVP rule hands
    optimistix the materialised matrix). The step is ``eqx.filter_jit``-compiled once per
    (field configuration, padded batch shape) and reused for every iteration and every fit
    of that shape — repeated fits, the folds of a held-out sweep — because which parameters
    are free is a dynamic 0/1 mask and the penalties are dynamic leaves. It stops at
    optimistix's Cauchy test with ``rtol = atol = tol`` (typically 15-45 steps).

    Where the time goes (4 families, 131 parameters, 291 residuals, 2 cores): compiling the
    step ≈ 5-20 s (once per shape); one Jacobian (131 forward tangents through the batched
    adaptive solve) ≈ 2 ms, one residual evaluation ≈ 0.3 ms, the damped normal-equation
    solve < 1 ms; the fit itself ≈ 0.1-0.4 s. Materialising the Jacobian by re-running the
    linearised solve inside every damped linear solve (optimistix's default for
    ``jac="fwd"``) cost 5-10x more per step, hence the custom JVP rule.

    ``optimizer="adam"``: Optax Adam (``optax.inject_hyperparams(optax.adam)`` inside
    ``optax.apply_if_finite``, so a step whose solve fails is skipped) with the learning
    rate of ``optax.warmup_cosine_decay_schedule``, gradients by reverse mode through
    ``diffrax.diffeqsolve``; the best iterate is kept, one compiled gradient and update.
    float64 throughout.

Defaults (chosen by leave-one-family-out, never with Llama-2)
    Picked on a grid with :func:`tuning_scores`, on the table *without* Llama-2: the mean
    relative MAE % (100·Σ|err| / Σ actual) of leave-one-family-out over the 9 families with ≥ 3 complete
    models ("LOFO"), and of Pythia-only fits predicting those 8 other families. Selected
    grid points (LOFO / Pythia→others / Pythia in-sample %)::

        l2 = 0.03 (first guess)           11.8 / 12.8 / 1.65
        l2 = 1                             11.5 / 11.7 / 1.74
        l2 = 10                             9.9 / 10.6 / 2.01
        l2 = 100                            9.0 / 10.2 / 2.31
        l2 = 300, l2_h = 1, l2_nc = 3       8.7 / 10.1 / 2.59   <- default
        l2 = 1000, l2_h = 1, l2_nc = 3      8.7 / 10.2 / 2.87
        degree = 1, l2 = 10                 9.0 / 10.1 / 2.36
        l2 = 100, coupling = "none"         8.9 / 10.1 / 2.30
        (references: pooled latent drift 9.9 / 9.8; shifted pooled polynomials in log N,
        degree 1-3: LOFO 12.5-14.9, Pythia→others 10.4-13.0)

    Held-out error fell as the penalty on the state-dependent part of the field grew: the
    data (≤ 8 models a family) support little more than a latent drift plus family sources,
    and the running-coupling term did not measurably improve held-out prediction. With these
    penalties the fitted gamma0 is small and the family Nc stay close to the population mean.

A family the fit has never seen
    Its Nc and h come from the *transfer rule*: a ridge regression, across the training
    families, of the fitted (log10 Nc_f, h_f) on the family's start — its initial latent
    state z0_f and log10 N0_f — with standardised features and penalty ``transfer_alpha``
    (in units of training families). With a single training family the rule returns that
    family's values. Nothing about the new family other than its one initial model is used.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import platform
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float
from sklearn.base import BaseEstimator

from ._errors import CapedynError, FitFileError, InputError
from ._json import to_jsonable
from ._io import atomic_write, atomic_write_json, check_writable_dir
from ._jax import scoped_x64
from ._progress import Progress
from ._state import N_STATE, SHORT, from_state, to_state
from .data import BENCHMARKS, complete_models, log10_params
from .ode import CouplingField, FamilyParams, predict_scores, solve_unchecked

FIT_FORMAT = "capedyn-coupling-ode"
FIT_FORMAT_VERSION = 1
PAPER_REFERENCE = {
    "in_sample_pythia_rel_error_pct": {"truthfulqa": 1.2, "hellaswag": 2.2, "arc": 4.0,
                                       "winogrande": 3.8, "mmlu": 7.0, "mean": 3.6},
    "heldout_llama2_rel_mae_pct": 5.6,
    "heldout_llama2_poly2_rel_mae_pct": 10.2,
    "hs_to_tqa_coefficient": {"tax": 0.12, "bonus": 0.75, "ratio": 6.3},
}
"""The papers' own figures, for side-by-side display only (never used in a computation)."""


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Trajectory:
    """One family's complete models sorted by size: ``x`` (log10 N), ``scores`` (percent)."""

    family: str
    models: tuple[str, ...]
    params_b: np.ndarray
    scores: np.ndarray

    @property
    def x(self) -> np.ndarray:
        return log10_params(self.params_b)


def trajectories(df: pd.DataFrame, min_models: int = 2) -> list[Trajectory]:
    """Families with ≥ ``min_models`` complete models, each sorted by size (table order of families)."""
    full = complete_models(df)
    out = []
    for fam in dict.fromkeys(full["family"]):
        rows = full[full["family"] == fam].sort_values("params_b", kind="stable")
        if len(rows) >= min_models:
            out.append(Trajectory(fam, tuple(rows["model"]), rows["params_b"].to_numpy(float),
                                  rows[list(BENCHMARKS)].to_numpy(float)))
    return out


class TrajectoryBatch(eqx.Module):
    """Families padded to a common number of save points. ``xs``/``ys`` include the initial
    model at index 0; ``mask`` is False at index 0 and on padding; ``valid`` is False for
    padding families (added so that array shapes fall in a few buckets and the compiled
    step is reused)."""

    x0: Float[Array, "F"]
    z0: Float[Array, "F 5"]
    xs: Float[Array, "F M"]
    ys: Float[Array, "F M 5"]
    mask: Bool[Array, "F M"]
    weight: Float[Array, "F"]
    valid: Bool[Array, "F"]


def _bucket_families(n: int) -> int:
    return max(2, 1 << (n - 1).bit_length())


def _bucket_points(m: int) -> int:
    return max(8, -(-m // 4) * 4)


@scoped_x64
def stack_trajectories(trajs: Sequence[Trajectory], family_weight: str = "models") -> TrajectoryBatch:
    """Pad trajectories into a :class:`TrajectoryBatch`: save points repeat the last size,
    padding families copy the first family with zero weight. ``family_weight``: "models"
    weighs every observation equally, "equal" every family."""
    n_f, m = _bucket_families(len(trajs)), _bucket_points(max(len(t.models) for t in trajs))
    xs = np.zeros((n_f, m))
    ys = np.zeros((n_f, m, N_STATE))
    mask = np.zeros((n_f, m), bool)
    valid = np.zeros(n_f, bool)
    for i in range(n_f):
        t = trajs[i] if i < len(trajs) else trajs[0]
        n = len(t.models)
        xs[i, :n], xs[i, n:] = t.x, t.x[-1]
        ys[i, :n], ys[i, n:] = t.scores, t.scores[-1]
        if i < len(trajs):
            mask[i, 1:n] = True
            valid[i] = True
    if family_weight == "models":
        weight = valid.astype(float)
    elif family_weight == "equal":
        weight = valid / np.maximum(mask.sum(axis=1), 1)
    else:
        raise InputError(f"family_weight must be 'models' or 'equal', got {family_weight!r}")
    return TrajectoryBatch(x0=jnp.asarray(xs[:, 0]), z0=jnp.asarray(to_state(ys[:, 0])),
                           xs=jnp.asarray(xs), ys=jnp.asarray(ys), mask=jnp.asarray(mask),
                           weight=jnp.asarray(weight), valid=jnp.asarray(valid))


def _pad_families(fams: FamilyParams, n: int) -> FamilyParams:
    """Extend stacked family parameters to ``n`` rows (copies of the first)."""
    k = fams.log10_nc.shape[0]
    idx = jnp.asarray(list(range(k)) + [0] * (n - k))
    return jax.tree_util.tree_map(lambda a: a[idx], fams)


# --------------------------------------------------------------------------- objective

class Population(eqx.Module):
    """Everything the fit learns: the universal field, the stacked family parameters
    (leading axis = family) and the population mean of log10 Nc."""

    field: CouplingField
    families: FamilyParams
    mu_nc: Float[Array, ""]


class Penalties(eqx.Module):
    """Regularisation weights (dynamic leaves, so changing them never recompiles)."""

    l2: Float[Array, ""]
    l2_quad: Float[Array, ""]
    l2_const: Float[Array, ""]
    l2_gamma: Float[Array, ""]
    l2_h: Float[Array, ""]
    l2_nc: Float[Array, ""]
    nc_prior_mean: Float[Array, ""]
    nc_prior_sd: Float[Array, ""]
    h_center: Float[Array, "5"]


_solve_batch = eqx.filter_vmap(solve_unchecked, in_axes=(None, 0, 0, 0, 0))


def predicted_trajectories(pop: Population, batch: TrajectoryBatch):
    """(scores in percent (F, M, 5), ok (F,)) for every padded family."""
    zs, ok = _solve_batch(pop.field, batch.z0, batch.x0, batch.xs, pop.families)
    return from_state(zs), ok


def data_loss(pop: Population, batch: TrajectoryBatch) -> Array:
    """Weighted mean squared error in points² over the masked (model, benchmark) pairs;
    NaN when any solve failed (so the optimiser skips the step instead of learning from it)."""
    pred, ok = predicted_trajectories(pop, batch)
    err = jnp.where(batch.mask[..., None], pred - batch.ys, 0.0)
    sq = jnp.sum(err ** 2, axis=(1, 2))
    n = jnp.sum(batch.mask, axis=1) * N_STATE
    mse = jnp.sum(batch.weight * sq) / jnp.sum(batch.weight * n)
    return jnp.where(jnp.all(ok | ~batch.valid), mse, jnp.nan)


def penalty(pop: Population, pen: Penalties, valid=None) -> Array:
    """Gaussian-prior penalties; ``valid`` masks padding families out."""
    coef = pop.field.masked_coef()
    fam = pop.families
    valid = jnp.ones(fam.log10_nc.shape, bool) if valid is None else valid
    h2 = jnp.sum((fam.h - pen.h_center) ** 2, axis=-1)
    nc2 = (fam.log10_nc - pop.mu_nc) ** 2
    n_lin = 1 + coef.shape[0]
    return (pen.l2 * jnp.sum(coef[:, 1:n_lin] ** 2) + pen.l2_quad * jnp.sum(coef[:, n_lin:] ** 2)
            + pen.l2_const * jnp.sum(coef[:, 0] ** 2)
            + pen.l2_gamma * pop.field.gamma0 ** 2
            + pen.l2_h * jnp.sum(jnp.where(valid, h2, 0.0))
            + pen.l2_nc * jnp.sum(jnp.where(valid, nc2, 0.0))
            + 1e-3 * ((pop.mu_nc - pen.nc_prior_mean) / pen.nc_prior_sd) ** 2)


def objective(pop: Population, batch: TrajectoryBatch, pen: Penalties):
    """(data MSE + penalties, data MSE)."""
    mse = data_loss(pop, batch)
    return mse + penalty(pop, pen, batch.valid), mse


@eqx.filter_jit
def loss_and_grad(pop: Population, batch: TrajectoryBatch, pen: Penalties):
    """((objective, data MSE), gradient w.r.t. every inexact array of ``pop``); compiled once
    per (field configuration, batch bucket) and shared by every fit and by the tests."""
    return eqx.filter_value_and_grad(objective, has_aux=True)(pop, batch, pen)


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


def _float64(tree):
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float64) if eqx.is_inexact_array(a) else a, tree)


def trainable_mask(pop: Population, **frozen: bool):
    """0/1 mask for :func:`optimise`: ``field``, ``gamma0``, ``log10_nc``, ``h``, ``mu_nc``
    set to False are frozen."""
    mask = jax.tree_util.tree_map(lambda a: jnp.ones_like(a) if eqx.is_inexact_array(a) else None, pop)
    picks = {"field": lambda p: p.field.coef, "gamma0": lambda p: p.field.gamma0,
             "log10_nc": lambda p: p.families.log10_nc, "h": lambda p: p.families.h,
             "mu_nc": lambda p: p.mu_nc}
    for name, keep in frozen.items():
        if not keep:
            mask = eqx.tree_at(picks[name], mask, replace_fn=jnp.zeros_like)
    return mask


# --------------------------------------------------------------------------- Gauss–Newton fit

#: Solves inside the Gauss–Newton fit stop after this many adaptive steps: a trial point
#: whose field needs more over ≤ 3 decades is rejected (its residuals are set large), and a
#: failing trial is cheap. At the defaults every family's solve takes ≤ 10 steps.
LM_SOLVE_MAX_STEPS = 256
_FAILED_RESIDUAL = 1e3


def residual_vector(pop: Population, batch: TrajectoryBatch, pen: Penalties, *,
                    adjoint: str = "forward") -> Array:
    """The residual vector r whose squared norm is :func:`objective` (when every solve
    succeeds): the data part ``sqrt(w_f / Σ w·n)·(pred − actual)`` (points) over every
    masked (model, benchmark), then each penalty as ``sqrt(weight)·quantity``. Padding
    families contribute zeros; a family whose solve fails gets large finite residuals so a
    trial step there is rejected rather than producing NaN."""
    solve = functools.partial(solve_unchecked, adjoint=adjoint, max_steps=LM_SOLVE_MAX_STEPS)
    zs, ok = eqx.filter_vmap(solve, in_axes=(None, 0, 0, 0, 0))(
        pop.field, batch.z0, batch.x0, batch.xs, pop.families)
    pred = from_state(zs)
    n = jnp.sum(batch.mask, axis=1) * N_STATE
    scale = jnp.sqrt(batch.weight / jnp.sum(batch.weight * n))
    err = jnp.where(batch.mask[..., None], pred - batch.ys, 0.0)
    err = jnp.where((ok | ~batch.valid)[:, None, None], err,
                    jnp.where(batch.mask[..., None], _FAILED_RESIDUAL, 0.0))
    coef = pop.field.masked_coef()
    fam, v = pop.families, batch.valid
    n_lin = 1 + coef.shape[0]
    parts = [
        (scale[:, None, None] * err).ravel(),
        jnp.sqrt(pen.l2) * coef[:, 1:n_lin].ravel(),
        jnp.sqrt(pen.l2_quad) * coef[:, n_lin:].ravel(),
        jnp.sqrt(pen.l2_const) * coef[:, 0],
        (jnp.sqrt(pen.l2_gamma) * pop.field.gamma0)[None],
        (jnp.sqrt(pen.l2_h) * jnp.where(v[:, None], fam.h - pen.h_center, 0.0)).ravel(),
        jnp.sqrt(pen.l2_nc) * jnp.where(v, fam.log10_nc - pop.mu_nc, 0.0),
        (jnp.sqrt(1e-3) * (pop.mu_nc - pen.nc_prior_mean) / pen.nc_prior_sd)[None],
    ]
    return jnp.concatenate(parts)


def _masked_residuals(y: Population, args) -> Array:
    """Residuals at ``y`` with frozen leaves (``trainable`` = 0) held at their start values."""
    batch, pen, trainable, start = args
    pop = jax.tree_util.tree_map(lambda a, m, b: m * a + (1 - m) * b, y, trainable, start)
    return residual_vector(pop, batch, pen)


@jax.custom_jvp
def _lm_residuals(y: Population, args) -> Array:
    """:func:`_masked_residuals` whose forward derivative is the full Jacobian, built once
    per point by ``jax.jacfwd`` through the ``diffrax.ForwardMode`` solve. optimistix
    linearises the residual function at every trial point and its damped linear solve
    materialises the Jacobian; with this rule the materialisation is a matrix product with a
    matrix computed once, instead of re-running the linearised ODE solve per solve."""
    return _masked_residuals(y, args)


@_lm_residuals.defjvp
def _lm_residuals_jvp(primals, tangents):
    from jax.flatten_util import ravel_pytree

    y, args = primals
    dy, _ = tangents  # no derivative with respect to the data or the penalty weights
    flat, unravel = ravel_pytree(y)
    fn = lambda t: _masked_residuals(unravel(t), args)  # noqa: E731
    jac = jax.jacfwd(fn)(flat)
    return fn(flat), jac @ ravel_pytree(dy)[0]


def _lm_solver(tol: float):
    import lineax as lx
    import optimistix as optx

    # Normal equations with Cholesky: the damped system [J; sqrt(λ)I] is always full rank
    # (frozen and padding columns are zero in J) and (JᵀJ + λI) is small (≤ ~200²).
    return optx.LevenbergMarquardt(rtol=tol, atol=tol, linear_solver=lx.Normal(lx.Cholesky()))


_LM_OPTIONS = {"jac": "fwd"}


@eqx.filter_jit
def _lm_init(y, args, tol):
    solver = _lm_solver(tol)
    f_struct = jax.eval_shape(lambda: _lm_residuals(y, args))
    return solver.init(_lm_fn, y, args, _LM_OPTIONS, f_struct, None, frozenset())


_LM_INIT_CACHE: dict = {}


def _lm_initial_state(y, args, tol):
    """optimistix's initial LM state for ``y``. The state carries jaxprs (from linearising
    the residual function) as static parts, and a new jaxpr object would make the compiled
    step miss its cache; so the first state built for a given (structure, shapes) is kept
    and later fits only replace its starting point (everything else in an initial state is
    a constant)."""
    leaves, treedef = jax.tree_util.tree_flatten((y, args))
    key = (treedef, tuple((np.shape(a), str(getattr(a, "dtype", type(a)))) for a in leaves))
    if key not in _LM_INIT_CACHE:
        if len(_LM_INIT_CACHE) >= 32:
            _LM_INIT_CACHE.clear()
        _LM_INIT_CACHE[key] = _lm_init(y, args, tol)
    return eqx.tree_at(lambda s: s.y_eval, _LM_INIT_CACHE[key], y)


@eqx.filter_jit
def _lm_step(y, state, args, tol):
    """One Levenberg–Marquardt step (accepted or rejected) and the termination test;
    compiled once per (field configuration, batch bucket) and reused by every fit."""
    solver = _lm_solver(tol)
    y, state, _ = solver.step(_lm_fn, y, args, _LM_OPTIONS, state, frozenset())
    done, result = solver.terminate(_lm_fn, y, args, _LM_OPTIONS, state, frozenset())
    loss, mse = _lm_eval(y, args)
    return y, state, done, result, loss, mse


def _lm_eval(y, args):
    """(objective, data MSE in points²) at ``y`` from one residual evaluation: the data
    residuals come first and their squares sum to the weighted MSE."""
    r = _masked_residuals(y, args)
    n_data = args[0].ys.size
    return jnp.sum(r * r), jnp.sum(r[:n_data] ** 2)


_lm_eval_jit = eqx.filter_jit(_lm_eval)


def _lm_fn(y, args):
    return _lm_residuals(y, args), None


def optimise_lm(pop: Population, trainable, batch: TrajectoryBatch, pen: Penalties, *,
                steps: int, tol: float = 1e-6, progress: bool = True,
                label: str = "fit") -> tuple[Population, list[float], float]:
    """Levenberg–Marquardt (``optimistix.LevenbergMarquardt``) on :func:`residual_vector`:
    the same objective as :func:`optimise`, minimised as a least-squares problem with exact
    Jacobians (forward mode through the Diffrax solve, all families batched).

    ``trainable`` as in :func:`optimise` (a dynamic mask: freezing never recompiles).
    ``steps`` caps the number of LM iterations (accepted or rejected); the run stops
    earlier when optimistix's Cauchy test holds with ``rtol = atol = tol`` on both the
    parameters and the objective. One compiled step is reused for every iteration and every
    fit with the same field configuration and padded batch shape (crossval folds, repeated
    fits). Returns (best population, objective after each step, data MSE at the best)."""
    pop, pen, trainable, batch = (_float64(t) for t in (pop, pen, trainable, batch))
    args = (batch, pen, trainable, pop)
    tol = jnp.asarray(tol, jnp.float64)
    # The tolerance is a traced leaf inside the solver: one compilation for any value.
    state = _lm_initial_state(pop, args, tol)
    y = pop
    loss0, mse0 = (float(v) for v in _lm_eval_jit(pop, args))
    history = [loss0]
    best = (loss0 if np.isfinite(loss0) else np.inf, mse0, pop)
    with Progress(steps, label, enabled=progress) as bar:
        for k in range(steps):
            y, state, done, _, loss, mse = _lm_step(y, state, args, tol)
            loss = float(loss)
            history.append(loss)
            if np.isfinite(loss) and loss < best[0]:
                best = (loss, float(mse), y)
            bar.update(k + 1, loss=loss, mse=float(mse))
            if bool(done):
                break
    out = jax.tree_util.tree_map(lambda a, m, b: m * a + (1 - m) * b, best[2], trainable, pop)
    return out, history, (best[1] if np.isfinite(best[0]) else float("nan"))


# --------------------------------------------------------------------------- transfer rule

class TransferRule(eqx.Module):
    """Ridge regression of (log10 Nc_f, h_f) on the standardised start (z0_f, x0_f).

    ``predict(z0, x0)`` returns the FamilyParams an unseen family gets from its one initial
    model. With a single training family ``weights`` is zero and the rule returns that
    family's values."""

    feat_mean: Float[Array, "6"]
    feat_scale: Float[Array, "6"]
    target_mean: Float[Array, "6"]
    weights: Float[Array, "6 6"]

    @classmethod
    @scoped_x64
    def fit(cls, z0: np.ndarray, x0: np.ndarray, fams: FamilyParams, alpha: float) -> "TransferRule":
        feats = np.column_stack([np.asarray(z0), np.asarray(x0)])
        targets = np.column_stack([np.asarray(fams.log10_nc), np.asarray(fams.h)])
        mean, tmean = feats.mean(axis=0), targets.mean(axis=0)
        scale = feats.std(axis=0)
        scale = np.where(scale > 1e-9, scale, 1.0)
        phi = (feats - mean) / scale
        if len(feats) < 2:
            w = np.zeros((feats.shape[1], targets.shape[1]))
        else:
            a = phi.T @ phi + alpha * len(feats) * np.eye(phi.shape[1])
            w = np.linalg.solve(a, phi.T @ (targets - tmean))
        return cls(jnp.asarray(mean), jnp.asarray(scale), jnp.asarray(tmean), jnp.asarray(w))

    def predict(self, z0, x0) -> FamilyParams:
        phi = (jnp.concatenate([jnp.asarray(z0, float), jnp.atleast_1d(jnp.asarray(x0, float))])
               - self.feat_mean) / self.feat_scale
        t = self.target_mean + phi @ self.weights
        return FamilyParams(log10_nc=t[0], h=t[1:])


class _Saved(eqx.Module):
    """What ``model.eqx`` holds."""

    population: Population
    transfer: TransferRule


# --------------------------------------------------------------------------- estimator

OPTIMIZERS = ("lm", "adam")
DEFAULT_STEPS = {"lm": 200, "adam": 1500}
"""Iteration cap per optimiser when ``steps=None``: LM stops much earlier at its tolerance
(≈ 15-40 steps on the shipped data); Adam runs every step."""


class ConfigError(CapedynError, ValueError):
    """An estimator setting is invalid; the message names the argument."""


def _check_number(name: str, value, *, integer: bool = False, lo: float | None = None,
                  lo_open: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"CouplingODE({name}=...) must be a number, got {value!r}")
    if integer and not float(value).is_integer():
        raise ConfigError(f"CouplingODE({name}=...) must be a whole number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ConfigError(f"CouplingODE({name}=...) must be finite, got {value!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        bound = f"> {lo:g}" if lo_open else f">= {lo:g}"
        raise ConfigError(f"CouplingODE({name}=...) must be {bound}, got {value!r}")
    return int(v) if integer else v


class CouplingODE(BaseEstimator):
    """Scikit-learn style estimator for the coupling ODE (see the module docstring).

    Settings (stored as given; ``get_params``/``set_params``/``sklearn.base.clone`` work and
    are validated when ``fit`` runs, raising :class:`ConfigError` naming the argument):

    ``optimizer`` "lm" (default: Levenberg–Marquardt with optimistix on the residual vector,
    forward-mode Jacobians through the Diffrax solve) or "adam" (Optax Adam with a
    warm-up + cosine schedule); ``steps`` iteration cap (None: 200 for "lm", 1500 for
    "adam"); ``tol`` LM's relative/absolute tolerance on parameters and objective;
    ``learning_rate`` peak Adam rate and ``warmup`` Adam warm-up iterations (Adam only);
    ``l2`` on non-constant field coefficients (``l2_quad`` on the quadratic ones, None: same
    as ``l2``); ``l2_const`` on the constant column; ``l2_gamma`` on gamma0; ``l2_h`` on
    family sources; ``l2_nc`` shrinkage of log10 Nc_f to the population mean, which has a
    weak prior N(``nc_prior_mean``, ``nc_prior_sd``) (log10 N); ``degree`` of the polynomial
    library (1 or 2); ``coupling`` ("score", "latent" or "none", see :mod:`capedyn.ode`);
    ``kappa_max`` cap of the score-unit conversion; ``transfer_alpha`` ridge penalty of the
    transfer rule; ``family_weight`` "models" or "equal"; ``seed`` for the initial
    coefficient jitter; ``progress`` shows a progress line on stderr.

    Fitted attributes (set by ``fit``): ``field_`` (CouplingField), ``families_`` (name →
    FamilyParams), ``starts_`` (name → initial model, size, scores), ``transfer_``
    (TransferRule), ``mu_nc_``, ``loss_`` (final objective), ``mse_`` (final data MSE,
    points²), ``history_`` (objective per iteration), ``n_iter_``, ``optimizer_`` (what ran).
    """

    def __init__(self, *, optimizer: str = "lm", steps: int | None = None, tol: float = 1e-6,
                 learning_rate: float = 0.02, warmup: int = 100, l2: float = 300.0,
                 l2_quad: float | None = None, l2_const: float = 1e-3, l2_gamma: float = 1e-2,
                 l2_h: float = 1.0, l2_nc: float = 3.0, nc_prior_mean: float = 9.5,
                 nc_prior_sd: float = 1.0, degree: int = 2, coupling: str = "score",
                 kappa_max: float = 4.0, transfer_alpha: float = 1.0,
                 family_weight: str = "models", seed: int = 0, progress: bool | None = True):
        self.optimizer = optimizer
        self.steps = steps
        self.tol = tol
        self.learning_rate = learning_rate
        self.warmup = warmup
        self.l2 = l2
        self.l2_quad = l2_quad
        self.l2_const = l2_const
        self.l2_gamma = l2_gamma
        self.l2_h = l2_h
        self.l2_nc = l2_nc
        self.nc_prior_mean = nc_prior_mean
        self.nc_prior_sd = nc_prior_sd
        self.degree = degree
        self.coupling = coupling
        self.kappa_max = kappa_max
        self.transfer_alpha = transfer_alpha
        self.family_weight = family_weight
        self.seed = seed
        self.progress = progress

    @property
    def config(self) -> dict:
        """The settings as a dict (same as ``get_params()``); what ``save`` records."""
        return self.get_params()

    def _validated(self) -> dict:
        """Checked, typed settings (raises :class:`ConfigError` naming the argument)."""
        c = self.get_params()
        if c["optimizer"] not in OPTIMIZERS:
            raise ConfigError(f"CouplingODE(optimizer=...) must be one of {OPTIMIZERS}, "
                              f"got {c['optimizer']!r}")
        out = dict(c)
        out["steps"] = _check_number("steps", c["steps"], integer=True, lo=1, allow_none=True)
        if out["steps"] is None:
            out["steps"] = DEFAULT_STEPS[c["optimizer"]]
        out["tol"] = _check_number("tol", c["tol"], lo=0, lo_open=True)
        out["learning_rate"] = _check_number("learning_rate", c["learning_rate"], lo=0, lo_open=True)
        out["warmup"] = _check_number("warmup", c["warmup"], integer=True, lo=0)
        for k in ("l2", "l2_const", "l2_gamma", "l2_h", "l2_nc", "transfer_alpha"):
            out[k] = _check_number(k, c[k], lo=0)
        out["l2_quad"] = _check_number("l2_quad", c["l2_quad"], lo=0, allow_none=True)
        out["nc_prior_mean"] = _check_number("nc_prior_mean", c["nc_prior_mean"])
        out["nc_prior_sd"] = _check_number("nc_prior_sd", c["nc_prior_sd"], lo=0, lo_open=True)
        out["kappa_max"] = _check_number("kappa_max", c["kappa_max"], lo=0, lo_open=True)
        out["seed"] = _check_number("seed", c["seed"], integer=True, lo=0)
        if isinstance(c["degree"], bool) or c["degree"] not in (0, 1, 2):
            raise ConfigError(f"CouplingODE(degree=...) must be 0, 1 or 2, got {c['degree']!r}")
        out["degree"] = int(c["degree"])
        if c["coupling"] not in ("score", "latent", "none"):
            raise ConfigError("CouplingODE(coupling=...) must be 'score', 'latent' or 'none', "
                              f"got {c['coupling']!r}")
        if c["family_weight"] not in ("models", "equal"):
            raise ConfigError("CouplingODE(family_weight=...) must be 'models' or 'equal', "
                              f"got {c['family_weight']!r}")
        return out

    # ---- fitting
    def _penalties(self, h_center=None, cfg: dict | None = None) -> Penalties:
        c = self._validated() if cfg is None else cfg
        quad = c["l2"] if c["l2_quad"] is None else c["l2_quad"]
        scalars = (jnp.asarray(float(c[k] if k != "l2_quad" else quad)) for k in (
            "l2", "l2_quad", "l2_const", "l2_gamma", "l2_h", "l2_nc", "nc_prior_mean",
            "nc_prior_sd"))
        center = jnp.zeros(N_STATE) if h_center is None else jnp.asarray(h_center, float)
        return Penalties(*scalars, h_center=center)

    def _initial_population(self, trajs: Sequence[Trajectory], n_rows: int) -> Population:
        c = self._validated()
        field = CouplingField.zeros(degree=c["degree"], coupling=c["coupling"],
                                    kappa_max=c["kappa_max"])
        # Start from the mean latent drift per decade (first → last model of each family),
        # plus a small deterministic jitter so no coefficient starts exactly symmetric.
        drift = np.mean([(to_state(t.scores[-1]) - to_state(t.scores[0])) / (t.x[-1] - t.x[0])
                         for t in trajs], axis=0)
        rng = np.random.default_rng(c["seed"])
        coef = np.zeros(np.shape(field.coef))
        coef[:, 0] = drift
        coef[:, 1:] = 1e-3 * rng.standard_normal((coef.shape[0], coef.shape[1] - 1))
        field = eqx.tree_at(lambda f: f.coef, field, jnp.asarray(coef))
        fams = FamilyParams(log10_nc=jnp.full(n_rows, c["nc_prior_mean"]),
                            h=jnp.zeros((n_rows, N_STATE)))
        return Population(field, fams, jnp.asarray(c["nc_prior_mean"]))

    def _run_optimiser(self, cfg: dict, pop, trainable, batch, pen, *, steps: int, label: str,
                       warmup: int | None = None):
        if cfg["optimizer"] == "lm":
            return optimise_lm(pop, trainable, batch, pen, steps=steps, tol=cfg["tol"],
                               progress=cfg["progress"], label=label)
        return optimise(pop, trainable, batch, pen, steps=steps,
                        learning_rate=cfg["learning_rate"],
                        warmup=cfg["warmup"] if warmup is None else warmup,
                        progress=cfg["progress"], label=label)

    @scoped_x64
    def fit(self, df: pd.DataFrame, y=None) -> "CouplingODE":
        """Fit on every family of ``df`` with ≥ 2 complete models (base-model table format:
        ``model``, ``family``, ``params_b`` in billions, five scores in percent). The table
        is validated first (a bad size or score raises :class:`~capedyn.DataError` naming
        the row and column). ``y`` is ignored (scikit-learn signature)."""
        cfg = self._validated()
        df = _validated_table(df)
        trajs = trajectories(df)
        if not trajs:
            raise CapedynError("no family has two or more complete models (all five scores); "
                               "the coupling ODE needs at least one such family")
        batch = stack_trajectories(trajs, cfg["family_weight"])
        pop = self._initial_population(trajs, batch.x0.shape[0])
        coupled = cfg["coupling"] != "none"  # without the coupling term gamma0 and Nc do nothing
        trainable = trainable_mask(pop, gamma0=coupled, log10_nc=coupled, mu_nc=coupled)
        pop, history, mse = self._run_optimiser(
            cfg, pop, trainable, batch, self._penalties(cfg=cfg), steps=cfg["steps"],
            label=f"fit ({len(trajs)} families, {cfg['optimizer']})")
        if not np.isfinite(mse):
            raise CapedynError("every step of the fit had a failing ODE solve; increase the "
                               "regularisation (l2) or lower the learning rate")
        self.history_, self.mse_ = history, mse
        self._set_population(pop, trajs)
        self.loss_ = float(min(h for h in self.history_ if np.isfinite(h)))
        self.n_iter_ = len(self.history_) - 1
        self.optimizer_ = cfg["optimizer"]
        self.transfer_ = TransferRule.fit(np.asarray(batch.z0)[:len(trajs)],
                                          np.asarray(batch.x0)[:len(trajs)],
                                          self.population().families, cfg["transfer_alpha"])
        self.training_rows_sha256_ = _rows_sha256(trajs)
        return self

    def _set_population(self, pop: Population, trajs: Sequence[Trajectory]) -> None:
        self.field_ = pop.field
        self.mu_nc_ = float(pop.mu_nc)
        self.families_ = {t.family: FamilyParams(pop.families.log10_nc[i], pop.families.h[i])
                          for i, t in enumerate(trajs)}
        self.starts_ = {t.family: _start_record(t) for t in trajs}

    def _check_fitted(self) -> None:
        if not hasattr(self, "field_"):
            raise CapedynError("this CouplingODE is not fitted yet; call fit(df) or load_fit(path)")

    def population(self) -> Population:
        """The fitted universal field with the fitted families stacked in ``families_`` order
        (for posteriors and diagnostics)."""
        self._check_fitted()
        names = list(self.families_)
        fams = FamilyParams(jnp.stack([self.families_[n].log10_nc for n in names]),
                            jnp.stack([self.families_[n].h for n in names]))
        return Population(self.field_, fams, jnp.asarray(self.mu_nc_))

    @scoped_x64
    def fit_family(self, df_new: pd.DataFrame, name: str | None = None, *,
                   steps: int | None = None) -> FamilyParams:
        """Fit one new family's log10 Nc and h with the population (field, μ) frozen.

        ``df_new`` holds the family's models (≥ 2 complete). Both parameters are shrunk, with
        the main fit's ``l2_nc`` and ``l2_h``, toward the transfer rule's prediction from the
        family's smallest model. ``steps``: iteration cap of the estimator's optimiser (None:
        its default; Adam 300). The result is stored in ``families_`` and returned."""
        self._check_fitted()
        cfg = self._validated()
        steps = _check_number("steps", steps, integer=True, lo=1, allow_none=True)
        if steps is None:
            steps = 300 if cfg["optimizer"] == "adam" else DEFAULT_STEPS["lm"]
        trajs = trajectories(_validated_table(df_new))
        if name is not None:
            trajs = [t for t in trajs if t.family == name]
        if len(trajs) != 1:
            found = [t.family for t in trajs]
            raise CapedynError("fit_family needs exactly one family with ≥ 2 complete models; "
                               f"found {found or 'none'}" + ("" if name is None else f" named '{name}'"))
        traj = trajs[0]
        batch = stack_trajectories(trajs)
        prior = self.transfer_.predict(batch.z0[0], batch.x0[0])
        n_rows = batch.x0.shape[0]
        fams = FamilyParams(jnp.full(n_rows, prior.log10_nc), jnp.tile(prior.h, (n_rows, 1)))
        pop = Population(self.field_, fams, prior.log10_nc)  # μ := rule's Nc, frozen
        coupled = cfg["coupling"] != "none"
        trainable = trainable_mask(pop, field=False, gamma0=False, mu_nc=False, log10_nc=coupled)
        pop, _, mse = self._run_optimiser(
            cfg, pop, trainable, batch, self._penalties(h_center=prior.h, cfg=cfg), steps=steps,
            warmup=min(50, steps // 4), label=f"fit_family {traj.family}")
        if not np.isfinite(mse):
            raise CapedynError(f"fit_family {traj.family}: every ODE solve failed")
        result = FamilyParams(pop.families.log10_nc[0], pop.families.h[0])
        self.families_[traj.family] = result
        self.starts_[traj.family] = _start_record(traj)
        return result

    # ---- prediction
    def family_params(self, initial_scores, initial_params_b, family: str | None = None) -> FamilyParams:
        """A fitted family's parameters (``family`` given) or the transfer rule's for an unseen one."""
        self._check_fitted()
        if family is not None:
            if family not in self.families_:
                raise CapedynError(f"family '{family}' is not part of this fit; known: "
                                   f"{', '.join(self.families_)}")
            return self.families_[family]
        z0 = to_state(np.asarray(initial_scores, float))
        return self.transfer_.predict(z0, log10_params(float(initial_params_b)))

    @scoped_x64
    def predict(self, initial, params_b, *, family: str | None = None) -> pd.DataFrame:
        """Scores at ``params_b`` (billions; scalar or list) from one initial model.

        ``initial``: mapping/Series with ``params_b`` and the five score columns (percent).
        ``family``: use that training family's fitted Nc and h; by default (an unseen family)
        they come from the transfer rule applied to ``initial``. Returns one row per requested
        size: ``params_b`` and the five score columns."""
        self._check_fitted()
        scores, p0 = _initial_from(initial)
        sizes = np.atleast_1d(np.asarray(params_b, dtype=float))
        fam = self.family_params(scores, p0, family)
        label = family or str(_get(initial, "family", None) or _get(initial, "model", None) or "initial")
        pred = predict_scores(self.field_, fam, scores, p0, sizes, name=label)
        out = pd.DataFrame(pred, columns=list(BENCHMARKS))
        out.insert(0, "params_b", sizes)
        return out

    @scoped_x64
    def error_table(self, df: pd.DataFrame, *, use_fitted_families: bool = True) -> pd.DataFrame:
        """One row per (family, later model, benchmark): ``pred`` and ``actual`` (percent)
        and ``abs_err`` (points), every family of ``df`` with ≥ 2 complete models
        integrated from its smallest complete model. A family present in the fit uses its
        fitted parameters (unless ``use_fitted_families=False``); any other gets the
        transfer rule."""
        self._check_fitted()
        rows = []
        for t in trajectories(_validated_table(df)):
            fam_name = t.family if (use_fitted_families and t.family in self.families_) else None
            init = {"params_b": t.params_b[0], **dict(zip(BENCHMARKS, t.scores[0])), "family": t.family}
            pred = self.predict(init, t.params_b[1:], family=fam_name)
            for j, model in enumerate(t.models[1:]):
                for k, b in enumerate(BENCHMARKS):
                    rows.append({"family": t.family, "model": model, "benchmark": b,
                                 "pred": float(pred[b].iloc[j]), "actual": float(t.scores[j + 1, k])})
        if not rows:
            raise CapedynError("nothing to score: no family with ≥ 2 complete models")
        out = pd.DataFrame(rows)
        return out.assign(abs_err=(out["pred"] - out["actual"]).abs())

    def error_summary(self, df: pd.DataFrame, *, use_fitted_families: bool = True) -> dict:
        """The errors of :meth:`error_table` summarised (JSON-ready). Per benchmark: relative
        error % = 100·mean|pred − actual| / mean(actual) and MAE (points). Overall:
        ``mean_rel_error_pct`` = mean of the five per-benchmark values (the paper's "mean
        error"), ``rel_mae_pct`` = 100·Σ|err| / Σ actual over all pairs, ``mae`` (points)."""
        return summarise_errors(self.error_table(df, use_fitted_families=use_fitted_families))

    def score(self, df: pd.DataFrame, y=None) -> float:
        """Negative mean relative error in percent (greater is better, scikit-learn's
        convention): ``-error_summary(df)["mean_rel_error_pct"]``, so ``-2.6`` means the
        trajectories integrated from each family's smallest model are off by 2.6% of the
        measured scores on average over the five benchmarks. ``y`` is ignored."""
        return -float(self.error_summary(df)["mean_rel_error_pct"])

    # ---- persistence
    def save(self, path: str | Path, *, data_path: str | Path | None = None) -> Path:
        """Write ``path/model.eqx`` and ``path/meta.json`` (atomically, meta last).
        ``data_path``: the CSV the training table came from (None: the shipped table).
        ``meta.json`` records the settings as they are now (``get_params()``)."""
        self._check_fitted()
        path = check_writable_dir(path)
        saved = _Saved(self.population(), self.transfer_)
        model_file = atomic_write(path / "model.eqx", lambda p: eqx.tree_serialise_leaves(p, saved))
        meta = {
            "format": FIT_FORMAT, "format_version": FIT_FORMAT_VERSION,
            "config": to_jsonable(self.get_params()), "field_config": self.field_.config,
            "optimizer_run": getattr(self, "optimizer_", None),
            "n_iter": getattr(self, "n_iter_", None),
            "n_families": len(self.families_), "families": [
                {"name": n, **self.starts_[n], "log10_nc": float(f.log10_nc),
                 "nc_b": f.critical_scale_b, "h": [float(v) for v in np.asarray(f.h)]}
                for n, f in self.families_.items()],
            "population": {"mu_nc": self.mu_nc_, "nc_b": 10 ** (self.mu_nc_ - 9),
                           "gamma0": float(self.field_.gamma0)},
            "loss": self.loss_, "mse_points2": self.mse_,
            "metrics": getattr(self, "metrics_", None),
            "data": {"source": str(data_path) if data_path else "<capedyn>/benchmarks_data/base_models.csv",
                     "csv_sha256": _file_sha256(data_path),
                     "training_rows_sha256": getattr(self, "training_rows_sha256_", None)},
            "model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
            "versions": _versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_json(path / "meta.json", meta)
        self.meta_ = meta
        return path


def _validated_table(df) -> pd.DataFrame:
    """The table checked by :func:`capedyn.data.validate_base_models` (a non-positive or
    non-finite size, a score outside 0-100, ... raise a DataError naming row and column)."""
    from .data import validate_base_models

    return validate_base_models(df)


def _start_record(t: Trajectory) -> dict:
    return {"model": t.models[0], "params_b": float(t.params_b[0]),
            "scores": [float(s) for s in t.scores[0]], "models": list(t.models)}


def _get(obj, key, default=None):
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError):
        return default


def _initial_from(initial) -> tuple[np.ndarray, float]:
    if isinstance(initial, pd.DataFrame):
        if len(initial) != 1:
            raise InputError(f"initial must be one model (one row); got {len(initial)} rows")
        initial = initial.iloc[0]
    missing = [k for k in ("params_b", *BENCHMARKS) if _get(initial, k) is None]
    if missing:
        raise InputError(f"initial model lacks {missing}; give params_b (billions) and the five "
                         f"scores {list(BENCHMARKS)} in percent")
    try:
        scores = np.array([float(initial[b]) for b in BENCHMARKS])
        p0 = float(initial["params_b"])
    except (TypeError, ValueError) as exc:
        raise InputError(f"initial model values must be numbers ({exc})") from None
    bad = [b for b, s in zip(BENCHMARKS, scores) if not (np.isfinite(s) and 0 <= s <= 100)]
    if bad:
        raise InputError(f"initial scores {bad} must be finite percentages in [0, 100] "
                         "(all five are needed to integrate the ODE)")
    if not (np.isfinite(p0) and p0 > 0):
        raise InputError(f"initial params_b must be a positive size in billions, got {p0}")
    return scores, p0


def summarise_errors(err: pd.DataFrame) -> dict:
    """Metrics from a long table with columns benchmark, pred, actual (and family, model)."""
    err = err.assign(abs_err=(err["pred"] - err["actual"]).abs())
    per = {}
    for b in BENCHMARKS:
        sub = err[err["benchmark"] == b]
        per[b] = {"rel_error_pct": float(100 * sub["abs_err"].mean() / sub["actual"].mean()),
                  "mae": float(sub["abs_err"].mean()), "n": int(len(sub))}
    return {
        "per_benchmark": per,
        "mean_rel_error_pct": float(np.mean([per[b]["rel_error_pct"] for b in BENCHMARKS])),
        "rel_mae_pct": float(100 * err["abs_err"].sum() / err["actual"].sum()),
        "mae": float(err["abs_err"].mean()),
        "n_pairs": int(len(err)),
        "families": sorted(set(err["family"])) if "family" in err else [],
    }


def _rows_sha256(trajs: Sequence[Trajectory]) -> str:
    text = "\n".join(f"{t.family},{m},{p!r}," + ",".join(repr(float(s)) for s in sc)
                     for t in trajs for m, p, sc in zip(t.models, t.params_b, t.scores))
    return hashlib.sha256(text.encode()).hexdigest()


def _file_sha256(path) -> str:
    if path is None:
        text = resources.files("capedyn.benchmarks_data").joinpath("base_models.csv").read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _versions() -> dict:
    import diffrax
    import optax

    from . import __version__
    return {"capedyn": __version__, "jax": jax.__version__, "equinox": eqx.__version__,
            "diffrax": diffrax.__version__, "optax": optax.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


# --------------------------------------------------------------------------- loading

def shipped_fits() -> list[str]:
    """Names of the fits shipped in ``capedyn.fits``."""
    root = resources.files("capedyn.fits")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.joinpath("meta.json").is_file())


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        return p
    name = p.name if p.parent in (Path("."), Path("fits")) else None
    if name and name in shipped_fits():
        return Path(str(resources.files("capedyn.fits").joinpath(name)))
    if p.exists():
        raise FitFileError(f"{p} is a file; a fit is a folder holding model.eqx and meta.json")
    raise FitFileError(f"no fit at '{path}'; pass a folder written by CouplingODE.save or "
                       f"`capedyn fit`, or a shipped fit name ({', '.join(shipped_fits()) or 'none'})")


@scoped_x64
def load_fit(path: str | Path) -> CouplingODE:
    """Load a saved fit: a folder (``model.eqx`` + ``meta.json``) or a shipped fit's name
    (e.g. ``"all_families"``). Raises :class:`~capedyn.FitFileError` for a missing or corrupt
    file, or a fit made for a different field configuration."""
    folder = _resolve(path)
    meta_file, model_file = folder / "meta.json", folder / "model.eqx"
    if not meta_file.is_file():
        raise FitFileError(f"{folder}: meta.json is missing; the fit is incomplete — refit "
                           "it with `capedyn fit --out ...`")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FitFileError(f"{meta_file}: not valid JSON ({exc}); refit") from None
    if not isinstance(meta, dict) or meta.get("format") != FIT_FORMAT:
        raise FitFileError(f"{meta_file}: not a capedyn coupling-ODE fit (format "
                           f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("format_version") != FIT_FORMAT_VERSION:
        raise FitFileError(f"{meta_file}: fit format version {meta.get('format_version')} but "
                           f"this capedyn reads version {FIT_FORMAT_VERSION}; refit")
    config = meta.get("config") or {}
    unknown = sorted(set(config) - set(CouplingODE().get_params()))
    if unknown:
        raise FitFileError(f"{meta_file}: options {unknown} are unknown to this capedyn; refit")
    try:
        est = CouplingODE(**config)
        checked = est._validated()
        template_field = CouplingField.zeros(degree=checked["degree"], coupling=checked["coupling"],
                                             kappa_max=checked["kappa_max"])
    except (TypeError, ValueError) as exc:
        raise FitFileError(f"{meta_file}: invalid configuration ({exc}); refit") from None
    if meta.get("field_config") != template_field.config:
        raise FitFileError(
            f"{meta_file}: made for a different field configuration "
            f"({meta.get('field_config')}) than this capedyn builds ({template_field.config}); "
            "refit with this version")
    if not model_file.is_file():
        raise FitFileError(f"{folder}: model.eqx is missing; refit")
    blob = model_file.read_bytes()
    if meta.get("model_sha256") and hashlib.sha256(blob).hexdigest() != meta["model_sha256"]:
        raise FitFileError(f"{model_file}: checksum does not match meta.json (the file is "
                           "corrupt or was replaced); refit")
    n = int(meta.get("n_families", 0))
    fams = FamilyParams(jnp.zeros(n), jnp.zeros((n, N_STATE)))
    like = _Saved(Population(template_field, fams, jnp.asarray(0.0)),
                  TransferRule(jnp.zeros(6), jnp.ones(6), jnp.zeros(6), jnp.zeros((6, 6))))
    try:
        saved = eqx.tree_deserialise_leaves(model_file, like)
    except Exception as exc:  # any decode failure means the file is unusable
        raise FitFileError(f"{model_file}: cannot be read as this fit's parameters "
                           f"({type(exc).__name__}: {exc}); refit") from None
    leaves = jax.tree_util.tree_leaves(saved)
    if not all(bool(jnp.all(jnp.isfinite(v))) for v in leaves):
        raise FitFileError(f"{model_file}: holds non-finite parameters; refit")
    pop = saved.population
    trajs = [Trajectory(f["name"], tuple(f["models"]), np.array([f["params_b"]]),
                        np.array([f["scores"]])) for f in meta["families"]]
    est._set_population(pop, trajs)
    for f, t in zip(meta["families"], trajs):
        est.starts_[t.family]["models"] = list(f["models"])
    est.transfer_ = saved.transfer
    est.loss_, est.mse_ = meta.get("loss"), meta.get("mse_points2")
    est.history_ = []
    est.metrics_ = meta.get("metrics")
    est.meta_ = meta
    est.training_rows_sha256_ = meta.get("data", {}).get("training_rows_sha256")
    return est


# --------------------------------------------------------------------------- analyses

@scoped_x64
def per_phase_analysis(df: pd.DataFrame, family: str = "Pythia", split_b: float = 1.2,
                       sensitivity: Sequence[float] = (0.1, 1.0, 3.0), **config) -> dict:
    """Fit the field separately on a family's tax models (≤ ``split_b`` billions: Pythia
    70M–1B) and bonus models (the rest: Pythia 1.4B–12B, integrated from 1.4B so the fitted
    points are 2.8B–12B), and compare the HS→TQA coupling of the two fits.

    Each phase has four models, so each fit is a linear field (``degree=1``, no running
    coupling, no family source) under an L2 penalty (``l2=0.3`` unless overridden): 30
    coefficients against 15 residuals, so the penalty, not the data, fixes most of them.
    ``l2=0.3`` is about the strongest penalty at which each phase still fits its own models
    to ~1.5%; stronger penalties pull both phases to the common drift and the ratio to 1, so
    the result is reported again for each ``sensitivity`` penalty. The HS→TQA coefficient is reported twice:
    ``latent`` = ∂(dz_TQA/dx)/∂z_HS, the linear coefficient of z_HS in the TQA equation; and
    ``score`` = ∂(dTQA/dx)/∂HS = latent · s'_TQA / s'_HS at the phase's mean state (TQA
    points per decade per HS point), the unit of the paper's 0.12 → 0.75. The difference of
    the two 5×5 linear matrices (latent, and score-space Jacobians) is summarised by its
    singular values; rank-1-ness = s1 / Σ s."""
    from ._state import FLOORS, CEILING
    rows = complete_models(df[df["family"] == family]).sort_values("params_b")
    if len(rows) < 4:
        raise CapedynError(f"per-phase analysis needs ≥ 4 complete models of '{family}', "
                           f"found {len(rows)}")
    cfg = dict(degree=1, coupling="none", l2=0.3, l2_const=1e-3, l2_h=1e6, steps=800,
               progress=False)
    cfg.update(config)
    tax = rows[rows["params_b"] <= split_b]
    bonus = rows[rows["params_b"] > split_b]
    result: dict[str, Any] = {"family": family, "config": cfg,
                              "reference_paper": PAPER_REFERENCE["hs_to_tqa_coefficient"]}
    mats = {}
    for phase, part in (("tax", tax), ("bonus", bonus)):
        if len(part) < 2:
            raise CapedynError(f"phase '{phase}' of {family} has fewer than 2 models")
        est = CouplingODE(**cfg).fit(part)
        lin = np.asarray(est.field_.masked_coef())[:, 1:1 + N_STATE]
        zbar = to_state(part[list(BENCHMARKS)].to_numpy(float)).mean(axis=0)
        u = 1 / (1 + np.exp(-zbar))
        slope = (CEILING - FLOORS) * u * (1 - u)
        jac = slope[:, None] * lin / slope[None, :]
        hs, tqa = BENCHMARKS.index("hellaswag"), BENCHMARKS.index("truthfulqa")
        mats[phase] = (lin, jac)
        result[phase] = {
            "models": list(part["model"]), "fit_score": est.error_summary(part),
            "hs_to_tqa_latent": float(lin[tqa, hs]), "hs_to_tqa_score": float(jac[tqa, hs]),
            "linear_matrix_latent": lin.tolist(), "jacobian_score": jac.tolist(),
            "mean_state_scores": [float(v) for v in from_state(zbar)]}
    for kind, idx in (("latent", 0), ("score", 1)):
        a, b = result["tax"][f"hs_to_tqa_{kind}"], result["bonus"][f"hs_to_tqa_{kind}"]
        sv = np.linalg.svd(mats["bonus"][idx] - mats["tax"][idx], compute_uv=False)
        result[f"ratio_{kind}"] = float(b / a) if abs(a) > 1e-12 else float("nan")
        result[f"difference_singular_values_{kind}"] = sv.tolist()
        result[f"difference_rank1_share_{kind}"] = float(sv[0] / sv.sum())
    result["benchmarks"] = [SHORT[b] for b in BENCHMARKS]
    result["sensitivity"] = []
    for l2 in sensitivity:
        r = per_phase_analysis(df, family, split_b, sensitivity=(), **{**config, "l2": l2})
        result["sensitivity"].append({
            "l2": l2, **{f"{p}_hs_to_tqa_{k}": r[p][f"hs_to_tqa_{k}"]
                         for p in ("tax", "bonus") for k in ("latent", "score")},
            "ratio_latent": r["ratio_latent"], "ratio_score": r["ratio_score"],
            "difference_rank1_share_score": r["difference_rank1_share_score"]})
    return result


@scoped_x64
def bench_fit(df: pd.DataFrame | None = None, repeats: int = 1, **config) -> dict:
    """Time a fit on all families with ≥ 2 complete models: compile once (a short warm-up fit
    with the same shapes and settings), then ``repeats`` timed fits."""
    import os
    import time

    from .data import load_base_models
    df = load_base_models() if df is None else df
    cfg = {**CouplingODE().get_params(), **config, "progress": False}
    t0 = time.perf_counter()
    CouplingODE(**{**cfg}).fit(df)  # includes compilation
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        est = CouplingODE(**cfg).fit(df)
        times.append(time.perf_counter() - t0)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"first_fit_with_compile_s": first, "fit_s": times, "optimizer": est.optimizer_,
            "n_iter": est.n_iter_,
            "n_families": len(est.families_),
            "loadavg": load, "cpu_count": os.cpu_count()}


def tuning_scores(df: pd.DataFrame | None = None, exclude: Sequence[str] = ("Llama-2",),
                  anchor: str = "Pythia", **config) -> dict:
    """The scores the defaults were chosen by, for one configuration.

    ``exclude`` families are dropped from the table first (Llama-2: the P1 target never
    touches tuning). Then, over every remaining family with ≥ 3 complete models:
    ``lofo`` = relative MAE % (100·Σ|err| / Σ actual) when fitting all other families and predicting it from
    its smallest model; ``anchor_to`` = the same when fitting ``anchor`` (Pythia) alone;
    ``anchor_in_sample`` = the anchor fit's in-sample mean relative error %. Slow (one fit
    per family); a benchmark, not a test."""
    from .data import load_base_models
    df = load_base_models() if df is None else df
    df = df[~df["family"].isin(list(exclude))].reset_index(drop=True)
    cfg = {**config, "progress": False}
    trajs = {t.family: t for t in trajectories(df)}
    targets = [f for f, t in trajs.items() if len(t.models) >= 3]

    def rel_mae(est, fam):
        t = trajs[fam]
        init = {"params_b": t.params_b[0], **dict(zip(BENCHMARKS, t.scores[0]))}
        pred = est.predict(init, t.params_b[1:])[list(BENCHMARKS)].to_numpy()
        return float(100 * np.abs(pred - t.scores[1:]).sum() / t.scores[1:].sum())

    anchor_fit = CouplingODE(**cfg).fit(df[df["family"] == anchor])
    out = {"config": cfg, "excluded": list(exclude),
           "anchor_in_sample": anchor_fit.error_summary(df[df["family"] == anchor])["mean_rel_error_pct"],
           "anchor_to": {f: rel_mae(anchor_fit, f) for f in targets if f != anchor},
           "lofo": {f: rel_mae(CouplingODE(**cfg).fit(df[df["family"] != f]), f) for f in targets}}
    out["anchor_to_mean"] = float(np.mean(list(out["anchor_to"].values())))
    out["lofo_mean"] = float(np.mean(list(out["lofo"].values())))
    return out
