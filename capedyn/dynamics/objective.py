"""The coupling-ODE fit's objective: the population of parameters, the penalties, the
score-space trajectory loss and the same objective as a residual vector (for Gauss–Newton)."""

from __future__ import annotations

import functools


import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .state import N_STATE, from_state
from .field import CouplingField, FamilyParams, solve_unchecked
from .trajectory import TrajectoryBatch

#: Solves inside the Gauss–Newton fit stop after this many adaptive steps: a trial point
#: whose field needs more over ≤ 3 decades is rejected (its residuals are set large), and a
#: failing trial is cheap. At the defaults every family's solve takes ≤ 10 steps.
LM_SOLVE_MAX_STEPS = 256
_FAILED_RESIDUAL = 1e3       # residual of a failed solve: finite, so the step is rejected


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


def predicted_trajectories(pop: Population, batch: TrajectoryBatch, *,
                           fixed_steps: int | None = None):
    """(scores in percent (F, M, 5), ok (F,)) for every padded family; ``fixed_steps`` as
    in :func:`~capedyn.dynamics.field.solve_unchecked` (None: the adaptive solve)."""
    solve = functools.partial(solve_unchecked, fixed_steps=fixed_steps)
    zs, ok = eqx.filter_vmap(solve, in_axes=(None, 0, 0, 0, 0))(
        pop.field, batch.z0, batch.x0, batch.xs, pop.families)
    return from_state(zs), ok


def data_loss(pop: Population, batch: TrajectoryBatch) -> Array:
    """Weighted mean squared error in points² over the masked (model, benchmark) pairs;
    NaN when any solve failed (so the optimiser skips the step instead of learning from it)."""
    return _weighted_mse(*predicted_trajectories(pop, batch), batch)


#: Largest error (points, any fitted family, model and benchmark) allowed for the
#: Gauss–Newton fit's fixed-step solve at the fitted parameters; beyond it the fit is
#: finished with the adaptive solve (:func:`fixed_step_gap`).
FIXED_STEP_TOLERANCE = 1e-3
#: The fixed grid's error is estimated against a grid this many times finer: Tsit5 is of
#: fifth order, so the finer grid's own error is ~4⁻⁵ ≈ 1e-3 of the coarse grid's.
_REFINEMENT = 4


def fixed_step_gap(pop: Population, batch: TrajectoryBatch,
                   residuals: Array | None = None) -> tuple[Array, Array]:
    """(estimated error of the ``batch.lm_solve_steps`` grid: its largest difference from a
    grid 4× finer over the masked points, in points; data MSE on the finer grid, points²)
    at ``pop``. ``residuals``: :func:`residual_vector` at ``pop`` when the caller has it (a
    fit's last residuals: the grid's predictions are read from it and only the finer grid
    is solved), else both grids are solved. The error is infinite when a solve fails on a
    real family, so a failure always counts as too large.

    Runs once per fit, so it is compiled for a short compilation rather than a fast run
    (XLA's backend optimisation level 0: ~1 s instead of ~4 s, a few ms a call)."""
    arrays, static = eqx.partition((pop, batch, residuals), eqx.is_array)
    return _gap_program(arrays, static)


@functools.partial(jax.jit, static_argnums=1,
                   compiler_options={"xla_backend_optimization_level": 0})
def _gap_program(arrays, static):
    return _fixed_step_gap(*eqx.combine(arrays, static))


def _fixed_step_gap(pop: Population, batch: TrajectoryBatch, residuals):
    fine, ok_fine = predicted_trajectories(pop, batch,
                                           fixed_steps=_REFINEMENT * batch.lm_solve_steps)
    if residuals is None:
        coarse, ok_coarse = predicted_trajectories(pop, batch, fixed_steps=batch.lm_solve_steps)
    else:
        # the data residuals are scale·(prediction − score) on the masked points; a failed
        # solve's (_FAILED_RESIDUAL) reads as a prediction far off, so it fails the check
        scale = _data_scale(batch)[:, None, None]
        err = residuals[:batch.ys.size].reshape(batch.ys.shape)
        coarse = batch.ys + err / jnp.where(scale > 0, scale, 1.0)
        ok_coarse = jnp.ones_like(ok_fine)
    diff = jnp.where(batch.mask[..., None], jnp.abs(coarse - fine), 0.0)
    good = jnp.all((ok_coarse & ok_fine) | ~batch.valid)
    return jnp.where(good, jnp.max(diff), jnp.inf), _weighted_mse(fine, ok_fine, batch)


def _data_scale(batch: TrajectoryBatch) -> Array:
    """Per family, the factor of its data residuals: sqrt(w_f / Σ w·n) (see :func:`residual_vector`)."""
    n = jnp.sum(batch.mask, axis=1) * N_STATE
    return jnp.sqrt(batch.weight / jnp.sum(batch.weight * n))


def _weighted_mse(pred, ok, batch: TrajectoryBatch) -> Array:
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


def residual_vector(pop: Population, batch: TrajectoryBatch, pen: Penalties, *,
                    adjoint: str = "forward") -> Array:
    """The residual vector r whose squared norm is :func:`objective` (when every solve
    succeeds): the data part ``sqrt(w_f / Σ w·n)·(pred − actual)`` (points) over every
    masked (model, benchmark), then each penalty as ``sqrt(weight)·quantity``. Padding
    families contribute zeros; a family whose solve fails gets large finite residuals so a
    trial step there is rejected rather than producing NaN. Each family is solved as
    ``batch.lm_solve_steps`` says (fixed Tsit5 steps, or adaptive when None)."""
    data = _family_data(batch)
    rows = eqx.filter_vmap(functools.partial(_family_residuals, adjoint=adjoint,
                                             steps=batch.lm_solve_steps),
                           in_axes=(None, 0, 0))(pop.field, pop.families, data)
    return jnp.concatenate([rows.ravel(), _penalty_residuals(pop, batch, pen)])


def residual_jacobian(y: Population, batch: TrajectoryBatch, pen: Penalties,
                      trainable: Population, start: Population) -> tuple[Array, Array]:
    """(r, J): :func:`residual_vector` at ``with_frozen(y, trainable, start)`` and its
    Jacobian with respect to ``ravel_pytree(y)``.

    A family's data residuals depend on the universal field and on that family's own
    parameters only, so each family's block is differentiated with respect to the field's
    and its own parameters (about 112) rather than every parameter (106 + 6 per family):
    on 14-18 families that halves the work of the Jacobian, the larger part of a
    Gauss–Newton step. Each block is built in forward mode, or with ``batch.jacobian ==
    "auto"`` in whichever mode is cheaper for its shape (:func:`_family_jacobian_mode`),
    and the blocks are laid out in ``ravel_pytree`` order (field coefficients, γ0, every
    family's log10 Nc, every family's h, μ); the penalty rows, which need no solve, are
    differentiated whole."""
    from jax.flatten_util import ravel_pytree

    data = _family_data(batch)

    def one(field, fam, fam_mask, fam_start, d):
        mode = _family_jacobian_mode(d.ys.size, (field, fam), batch.lm_solve_steps,
                                     batch.jacobian)

        def twice(a):
            fld = with_frozen(a[0], trainable.field, start.field)
            r = _family_residuals(fld, with_frozen(a[1], fam_mask, fam_start), d,
                                  adjoint=mode, steps=batch.lm_solve_steps)
            return r, r

        jac = jax.jacrev if mode == "reverse" else jax.jacfwd
        return jac(twice, has_aux=True)((field, fam))

    (d_field, d_fam), r_data = eqx.filter_vmap(one, in_axes=(None, 0, 0, 0, 0))(
        y.field, y.families, trainable.families, start.families, data)
    n_rows = r_data.size
    blocks = [d_field.coef.reshape(n_rows, -1), d_field.gamma0.reshape(n_rows, 1),
              own_family_columns(d_fam.log10_nc), own_family_columns(d_fam.h),
              jnp.zeros((n_rows, 1), r_data.dtype)]
    flat, unravel = ravel_pytree(y)

    def penalties(t):
        pen_r = _penalty_residuals(with_frozen(unravel(t), trainable, start), batch, pen)
        return pen_r, pen_r

    j_pen, r_pen = jax.jacfwd(penalties, has_aux=True)(flat)
    return (jnp.concatenate([r_data.ravel(), r_pen]),
            jnp.concatenate([jnp.concatenate(blocks, axis=1), j_pen]))


def _family_jacobian_mode(n_rows: int, wrt, steps: int | None, jacobian: str) -> str:
    """"reverse" or "forward" for one family's Jacobian block: forward when ``jacobian`` is
    "forward", else whichever is cheaper to run.

    Forward mode pushes one tangent per parameter through the solve, reverse mode pulls
    one cotangent per residual row back through it. On the shipped families' Jacobian
    (16 padded families, 113 parameters per block, one BLAS thread) reverse took 3.9 ms
    against 5.9 ms forward at 40 rows per block, 6.4 against 8.6 at 60, 9.1 against 9.3 at
    80 and 18.3 against 14.9 at 120: reverse is chosen below 2/3 as many rows as
    parameters. Only for fixed-step solves: through an adaptive one reverse mode would
    checkpoint up to ``LM_SOLVE_MAX_STEPS`` steps. Reverse mode costs more to compile (the
    step of a four-family fit: 3.5 s to trace and 2.7 s to compile against 1.8 s and 2.0 s),
    which a single fit does not win back; hence "forward" by default."""
    n_tangents = sum(a.size for a in jax.tree_util.tree_leaves(wrt) if eqx.is_inexact_array(a))
    cheaper = steps is not None and 3 * n_rows < 2 * n_tangents
    return "reverse" if jacobian == "auto" and cheaper else "forward"


def own_family_columns(d: Array) -> Array:
    """Jacobian columns of a per-family parameter, laid out as ``ravel_pytree`` lays out its
    leaf: ``d`` (F, R, *shape) holds family f's R residual rows differentiated by f's own
    value; the result (F·R, F·size) places that block in f's columns and zeros elsewhere
    (a family's rows do not depend on another family's parameters)."""
    n_f, n_r = d.shape[:2]
    own = jnp.eye(n_f, dtype=bool).reshape((n_f, 1, n_f) + (1,) * (d.ndim - 2))
    return jnp.where(own, d[:, :, None], 0.0).reshape(n_f * n_r, -1)


def with_frozen(y, trainable, start):
    """``y`` with the leaves masked out by ``trainable`` (0) held at ``start`` (any pytree)."""
    return jax.tree_util.tree_map(lambda a, m, b: m * a + (1 - m) * b, y, trainable, start)


class _FamilyData(eqx.Module):
    """One family's slice of a :class:`TrajectoryBatch` (a leading family axis when batched)."""

    z0: Array
    x0: Array
    xs: Array
    ys: Array
    mask: Array
    valid: Array
    scale: Array


def _family_data(batch: TrajectoryBatch) -> _FamilyData:
    return _FamilyData(batch.z0, batch.x0, batch.xs, batch.ys, batch.mask, batch.valid,
                       _data_scale(batch))


def _family_residuals(field: CouplingField, family: FamilyParams, d: _FamilyData, *,
                      adjoint: str, steps: int | None) -> Array:
    """One family's data residuals (M·5,), as :func:`residual_vector` lays them out."""
    zs, ok = solve_unchecked(field, d.z0, d.x0, d.xs, family, adjoint=adjoint,
                             max_steps=LM_SOLVE_MAX_STEPS, fixed_steps=steps)
    err = jnp.where(d.mask[:, None], from_state(zs) - d.ys, 0.0)
    err = jnp.where(ok | ~d.valid, err, jnp.where(d.mask[:, None], _FAILED_RESIDUAL, 0.0))
    return (d.scale * err).ravel()


def _penalty_residuals(pop: Population, batch: TrajectoryBatch, pen: Penalties) -> Array:
    """The penalties of :func:`residual_vector` as ``sqrt(weight)·quantity`` residuals."""
    coef = pop.field.masked_coef()
    fam, v = pop.families, batch.valid
    n_lin = 1 + coef.shape[0]
    parts = [
        jnp.sqrt(pen.l2) * coef[:, 1:n_lin].ravel(),
        jnp.sqrt(pen.l2_quad) * coef[:, n_lin:].ravel(),
        jnp.sqrt(pen.l2_const) * coef[:, 0],
        (jnp.sqrt(pen.l2_gamma) * pop.field.gamma0)[None],
        (jnp.sqrt(pen.l2_h) * jnp.where(v[:, None], fam.h - pen.h_center, 0.0)).ravel(),
        jnp.sqrt(pen.l2_nc) * jnp.where(v, fam.log10_nc - pop.mu_nc, 0.0),
        (jnp.sqrt(1e-3) * (pop.mu_nc - pen.nc_prior_mean) / pen.nc_prior_sd)[None],
    ]
    return jnp.concatenate(parts)
