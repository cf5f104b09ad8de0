"""Families as trajectories: complete models sorted by size, and the padded batch that
every ODE fit integrates at once (one compiled shape for many fits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float

from .._errors import InputError
from .._jax import scoped_x64
from .state import N_STATE, to_state
from ..data.tables import BENCHMARKS, complete_models, log10_params


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
    step is reused). ``lm_solve_steps``: how the Gauss–Newton fit solves each family, Tsit5
    on that many equal steps, or the adaptive solve when None; ``jacobian``: how it
    differentiates each family ("forward", or "auto": reverse mode where that is cheaper,
    see :func:`capedyn.dynamics.objective.residual_jacobian`). Both are static settings:
    part of the compiled program, not of the data."""

    x0: Float[Array, "F"]
    z0: Float[Array, "F 5"]
    xs: Float[Array, "F M"]
    ys: Float[Array, "F M 5"]
    mask: Bool[Array, "F M"]
    weight: Float[Array, "F"]
    valid: Bool[Array, "F"]
    lm_solve_steps: int | None = eqx.field(static=True, default=None)
    jacobian: str = eqx.field(static=True, default="forward")


def _bucket_families(n: int) -> int:
    return max(2, 1 << (n - 1).bit_length())


def _bucket_points(m: int) -> int:
    return max(8, -(-m // 4) * 4)


def pad_trajectories(trajs: Sequence[Trajectory]):
    """NumPy (xs, ys, mask, valid) of ``trajs`` padded to the family and point buckets:
    save points repeat the last size, padding families copy the first; ``mask`` marks the
    observed points after each start, ``valid`` the real families."""
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
    return xs, ys, mask, valid


@scoped_x64
def stack_trajectories(trajs: Sequence[Trajectory], family_weight: str = "models", *,
                       lm_solve_steps: int | None = None,
                       jacobian: str = "forward") -> TrajectoryBatch:
    """Pad trajectories into a :class:`TrajectoryBatch`: save points repeat the last size,
    padding families copy the first family with zero weight. ``family_weight``: "models"
    weighs every observation equally, "equal" every family. ``lm_solve_steps`` and
    ``jacobian`` as in :class:`TrajectoryBatch`."""
    xs, ys, mask, valid = pad_trajectories(trajs)
    if family_weight == "models":
        weight = valid.astype(float)
    elif family_weight == "equal":
        weight = valid / np.maximum(mask.sum(axis=1), 1)
    else:
        raise InputError(f"family_weight must be 'models' or 'equal', got {family_weight!r}")
    return TrajectoryBatch(x0=jnp.asarray(xs[:, 0]), z0=jnp.asarray(to_state(ys[:, 0])),
                           xs=jnp.asarray(xs), ys=jnp.asarray(ys), mask=jnp.asarray(mask),
                           weight=jnp.asarray(weight), valid=jnp.asarray(valid),
                           lm_solve_steps=lm_solve_steps, jacobian=jacobian)
