"""Many Levenberg–Marquardt fits of the same shape as one compiled, vectorised program.

:func:`optimise_lm_many` runs :func:`capedyn.dynamics.optimise.optimise_lm` for a batch of
problems at once: the populations, 0/1 trainable masks, padded trajectory batches (with
their family-presence masks ``valid``/``mask``/``weight``), penalties (``l2`` and the
others), tolerances and step caps all carry a leading batch axis, and one ``jax.vmap`` of
the LM step advances every problem per call.

Each problem gets the result of its own fit. A vmapped loop runs until its slowest
problem stops, so a problem that has met its stopping test (or its step cap) is *frozen*:
its point, optimiser state (damping included), best point and history stop changing; the
batch keeps stepping only the others. Stopping, damping and the best-iterate bookkeeping
are therefore per problem, exactly as in the one-at-a-time loop; what may differ is the
last bits of floating point (batched matrix products and Cholesky factorisations can round
differently from their unbatched forms), and on a flat objective such a difference can
move the step where the stopping test first holds.

The step is compiled once per (field configuration, padded family/size bucket, batch
size); callers pad the batch size to a bucket (:func:`bucket_batch`) so that different
folds or tables of the same shape reuse it. When JAX sees several devices, the batch is
split over them (:mod:`capedyn._devices`) and each device steps its own problems.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._devices import map_over_shards, mesh_for, padded_size, shard_batch, to_host
from .._progress import Progress
from .objective import _float64
from .optimise import _finish_adaptive, _keep_frozen, _lm_start, _step, _unravel_like

__all__ = ["optimise_lm_many", "bucket_batch", "stack_tree", "unstack_tree"]


def bucket_batch(n: int) -> int:
    """Batch size a batch of ``n`` problems is padded to: a multiple of 8 (at least 8), so
    that a new fold or grid of similar size reuses the compiled step, and one that splits
    evenly over the devices (:func:`capedyn._devices.padded_size`)."""
    return max(8, padded_size(n, 8))


def stack_tree(trees):
    """Stack PyTrees of equal structure along a new leading axis (arrays only)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def unstack_tree(tree, i: int):
    """Element ``i`` of a stacked PyTree."""
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def _select(keep, new, old):
    """``new`` where ``keep`` (one bool per problem) else ``old``, leaf by leaf (arrays
    with a leading problem axis: LM states and flat points)."""
    return jax.tree_util.tree_map(
        lambda n, o: jnp.where(keep.reshape(keep.shape + (1,) * (jnp.ndim(n) - 1)), n, o),
        new, old)


_lm_start_many = eqx.filter_jit(jax.vmap(_lm_start))
_unravel_many = eqx.filter_jit(jax.vmap(_unravel_like))


@eqx.filter_jit
def _lm_step_many(state, args, tol, best, running, first):
    """One LM step of every running problem; finished ones are carried over unchanged.
    ``best`` = (objective, data MSE, flat point) of each problem's best iterate so far."""
    state_new, done, loss, mse = jax.vmap(_step)(state, args, tol)
    state = _select(running, state_new, state)
    # The loop's bookkeeping (optimise_lm): the first step records the start (the point
    # it accepts) as best, its objective when finite; later steps replace the best on a
    # finite, lower objective.
    best_loss, best_mse, best_y = best
    finite = jnp.isfinite(loss)
    update = running & (first | (finite & (loss < best_loss)))
    cand_loss = jnp.where(first, jnp.where(finite, loss, jnp.inf), loss)
    best = (jnp.where(update, cand_loss, best_loss), jnp.where(update, mse, best_mse),
            _select(update, state_new.y, best_y))
    return state, best, done, loss


def optimise_lm_many(pop, trainable, batch, pen, *, steps, tol, progress: bool = False,
                     label: str = "batched fit"):
    """:func:`~capedyn.dynamics.optimise.optimise_lm` for a batch of problems stacked along
    a leading axis (see the module docstring).

    ``pop``, ``trainable``, ``batch``, ``pen``: stacked with :func:`stack_tree`; ``steps``
    (B,) iteration caps (≥ 1); ``tol`` (B,) tolerances. Returns (best populations stacked,
    list of objective histories, array of data MSE at the best, points²), problem by
    problem as ``optimise_lm`` would return them."""
    pop, pen, trainable, batch = (_float64(t) for t in (pop, pen, trainable, batch))
    steps = np.asarray(steps, int)
    n = steps.shape[0]
    if n < 1 or np.any(steps < 1):
        from .._errors import InputError

        raise InputError("optimise_lm_many needs at least one problem and steps >= 1 each")
    tol_host = np.asarray(tol, float).reshape(n)
    tol = jnp.asarray(tol_host, jnp.float64)
    args = (batch, pen, trainable, pop)
    state = _lm_start_many(pop, args)
    best = (jnp.full(n, jnp.inf, jnp.float64), jnp.full(n, jnp.nan, jnp.float64), state.y)
    # the batch axis split over every device JAX sees (nothing moves with one device)
    state, args, tol, best = shard_batch((state, args, tol, best), n)
    step = _lm_step_many if mesh_for(n) is None else map_over_shards(_lm_step_many, 5)
    running = np.ones(n, bool)
    histories: list[list[float]] = [[] for _ in range(n)]
    with Progress(int(steps.max()), label, enabled=progress) as bar:
        for k in range(int(steps.max())):
            state, best, done, loss = step(
                state, args, tol, best, shard_batch(jnp.asarray(running), n),
                jnp.asarray(k == 0))
            loss, done = to_host((loss, done))
            for i in np.flatnonzero(running):
                histories[i].extend([float(loss[i])] * (2 if k == 0 else 1))
            running &= ~done & (k + 1 < steps)
            bar.update(k + 1, running=int(running.sum()))
            if not running.any():
                break
    best_loss, best_mse, best_y = to_host(best)  # from every process's devices
    best_y = _unravel_many(pop, best_y)
    out = jax.tree_util.tree_map(_keep_frozen, best_y, trainable, pop)
    mse = np.where(np.isfinite(best_loss), best_mse, np.nan)
    if batch.lm_solve_steps is None:
        return out, histories, mse
    return _finish_adaptive_many(out, trainable, batch, pen, histories, mse, steps, tol_host)


def _finish_adaptive_many(out, trainable, batch, pen, histories, mse, steps, tol):
    """:func:`~capedyn.dynamics.optimise._finish_adaptive` for each problem in turn (``out``
    is on the host already): its grid error estimated, and the fit continued on its own with
    the adaptive solve when the error exceeds the tolerance."""
    rows = [unstack_tree(out, i) for i in range(len(mse))]
    mse = np.array(mse, dtype=float)
    for i in np.flatnonzero(np.isfinite(mse)):
        rows[i], histories[i], mse[i] = _finish_adaptive(
            rows[i], unstack_tree(trainable, i), unstack_tree(batch, i), unstack_tree(pen, i),
            histories[i], None, steps=int(steps[i]), tol=float(tol[i]), progress=False)
    return stack_tree(rows), histories, mse
