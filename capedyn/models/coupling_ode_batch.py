"""Many coupling-ODE fits as one compiled program: :meth:`CouplingODE.fit_batch`.

A nested selection fits the same estimator on many training tables (the inner folds) with
many settings (the grid). These fits share a shape, so they run together: every family
that occurs in any of the tables gets one slot of a common padded
:class:`~capedyn.dynamics.trajectory.TrajectoryBatch`, and each fit sees the slots of its
own table through a *family-presence mask*: an absent family's ``valid``, ``mask`` and
``weight`` are zero (its data and penalty residuals are exactly zero) and its parameters
are frozen, so it has no influence on the fit. The penalties (``l2`` ...), tolerances and
step caps are batched arguments, and :func:`capedyn.dynamics.optimise_many.optimise_lm_many`
runs the Levenberg–Marquardt fits as one ``jax.vmap``, freezing each fit when it stops.

Settings that change the program (``degree``, ``coupling``, ``kappa_max``) split the batch
into groups; Adam fits run one at a time, as ``fit`` runs them.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np
import pandas as pd
from sklearn.base import clone

from .._errors import CapedynError
from .._jax import scoped_x64
from ..dynamics.field import FamilyParams
from ..dynamics.objective import Population, trainable_mask
from ..dynamics.optimise_many import bucket_batch, optimise_lm_many, stack_tree, unstack_tree
from ..dynamics.state import to_state
from ..dynamics.trajectory import (
    Trajectory, TrajectoryBatch, pad_trajectories, trajectories,
)

__all__ = ["fit_many"]

_FAILURES = (CapedynError, ValueError)


def _slot_key(t: Trajectory) -> tuple:
    """A family's identity in the common batch: its name and its exact rows (a family
    truncated by forward validation is a different slot)."""
    return (t.family, t.models, t.params_b.tobytes(), t.scores.tobytes())


def _common_arrays(slots: Sequence[Trajectory]):
    """(xs, ys, point mask) of every slot padded as ``stack_trajectories`` pads one table."""
    xs, ys, points, _ = pad_trajectories(slots)
    return xs, ys, points


def _masked_batch(xs, ys, points, present: np.ndarray, family_weight: str,
                  lm_solve_steps: int | None, jacobian: str) -> TrajectoryBatch:
    """The common arrays as one fit sees them: only the ``present`` slots count."""
    mask = points & present[:, None]
    weight = (present.astype(float) if family_weight == "models"
              else present / np.maximum(mask.sum(axis=1), 1))
    return TrajectoryBatch(x0=jnp.asarray(xs[:, 0]), z0=jnp.asarray(to_state(ys[:, 0])),
                           xs=jnp.asarray(xs), ys=jnp.asarray(ys), mask=jnp.asarray(mask),
                           weight=jnp.asarray(weight), valid=jnp.asarray(present),
                           lm_solve_steps=lm_solve_steps, jacobian=jacobian)


def _prepare(base, table, params):
    """(estimator, settings, trajectories) of one element, or the exception ``fit`` raises."""
    from ..data.tables import validate_base_models

    try:
        est = clone(base).set_params(**dict(params or {}))
        cfg = est._validated()
        trajs = trajectories(validate_base_models(table))  # as fit validates it
    except _FAILURES as exc:
        return exc
    if not trajs:
        return CapedynError("no family has two or more complete models (all five scores); "
                            "the coupling ODE needs at least one such family")
    return est, cfg, trajs


@scoped_x64
def _fit_group(items: list, progress: bool) -> list:
    """One batched LM run for elements sharing a field configuration."""
    slots: dict[tuple, int] = {}
    for _, _, trajs in items:
        for t in trajs:
            slots.setdefault(_slot_key(t), len(slots))
    ordered = list(slots)
    by_key = {_slot_key(t): t for _, _, trajs in items for t in trajs}
    xs, ys, points = _common_arrays([by_key[k] for k in ordered])
    n_f = xs.shape[0]
    pops, masks, batches, pens, index = [], [], [], [], []
    for est, cfg, trajs in items:
        idx = np.array([slots[_slot_key(t)] for t in trajs])
        present = np.zeros(n_f, bool)
        present[idx] = True
        batches.append(_masked_batch(xs, ys, points, present, cfg["family_weight"],
                                     cfg["lm_solve_steps"], cfg["jacobian"]))
        pop = est._initial_population(trajs, n_f)
        coupled = cfg["coupling"] != "none"
        tm = trainable_mask(pop, gamma0=coupled, log10_nc=coupled, mu_nc=coupled)
        # an absent family's Nc and h stay where they start (their residuals are zero too)
        fam_mask = jnp.asarray(present, float)
        tm = Population(tm.field, FamilyParams(tm.families.log10_nc * fam_mask,
                                               tm.families.h * fam_mask[:, None]), tm.mu_nc)
        pops.append(pop)
        masks.append(tm)
        pens.append(est._penalties(cfg=cfg))
        index.append(idx)
    n = len(items)
    pad = bucket_batch(n) - n  # repeats of the first element, stopped after one step
    steps = [cfg["steps"] for _, cfg, _ in items] + [1] * pad
    tol = [cfg["tol"] for _, cfg, _ in items] + [items[0][1]["tol"]] * pad
    stacked = [stack_tree(xs_ + xs_[:1] * pad) for xs_ in (pops, masks, batches, pens)]
    out, histories, mse = optimise_lm_many(*stacked, steps=steps, tol=tol, progress=progress,
                                           label=f"batched fit ({n} fits)")
    z0, x0 = to_state(ys[:, 0]), xs[:, 0]
    results = []
    for i, ((est, cfg, trajs), idx) in enumerate(zip(items, index)):
        p = unstack_tree(out, i)
        pop = Population(p.field, FamilyParams(p.families.log10_nc[idx], p.families.h[idx]),
                         p.mu_nc)
        try:
            results.append(est._finish_fit(cfg, trajs, z0[idx], x0[idx], pop, histories[i],
                                           float(mse[i])))
        except _FAILURES as exc:
            results.append(exc)
    return results


def fit_many(base, tables: Sequence[pd.DataFrame], params: Sequence[dict] | None = None, *,
             progress: bool = False) -> list:
    """Element i: ``clone(base).set_params(**params[i]).fit(tables[i])``, the LM fits batched
    (see the module docstring); the fitted estimator or the exception, per element."""
    params = [{}] * len(tables) if params is None else list(params)
    if len(params) != len(tables):
        from .._errors import InputError

        raise InputError(f"fit_batch needs one params dict per table; got {len(tables)} "
                         f"tables and {len(params)} params")
    results: list = [None] * len(tables)
    groups: dict[tuple, list[int]] = {}
    prepared = [_prepare(base, t, p) for t, p in zip(tables, params)]
    for i, item in enumerate(prepared):
        if isinstance(item, BaseException):
            results[i] = item
        elif item[1]["optimizer"] != "lm":
            try:
                results[i] = item[0].fit(tables[i])
            except _FAILURES as exc:
                results[i] = exc
        else:
            cfg = item[1]
            key = (cfg["degree"], cfg["coupling"], cfg["kappa_max"], cfg["lm_solve_steps"],
                   cfg["jacobian"])
            groups.setdefault(key, []).append(i)
    for members in groups.values():
        for i, r in zip(members, _fit_group([prepared[i] for i in members], progress)):
            results[i] = r
    return results
