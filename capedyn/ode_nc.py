"""The ODE-implied critical scale: a family's Nc read off its solved trajectory.

The coupling ODE carries a per-family parameter ``log10_nc`` inside its running-coupling
term, but with the universal part of the field free to move TruthfulQA on its own, that
parameter is not what the dynamics do: the data do not identify it. The quantity the
dynamics *do* determine is the running coupling of the solved trajectory itself,

    γ12^ODE(x) = (dTQA/dx) / (dHS/dx)     (TQA points per HS point, score units),

with both rates evaluated exactly from the field along the trajectory integrated from the
family's smallest model (scores in percent, x = log10 N, N in parameters). The
**ODE-implied critical scale** is the first x where γ12^ODE crosses zero from the tax side
(γ12 < 0) to the bonus side (γ12 > 0) while HellaSwag is rising, i.e. where dTQA/dx
changes sign from negative to positive; ``nc_b`` = 10^(x − 9) billions. A trajectory that
never crosses inside the scanned range reports ``crosses = False`` and the side it stays on.

With a posterior over the family parameters (draws of ``log10_nc`` and ``h``) the implied Nc
is computed draw by draw, which carries the posterior through the dynamics
(:func:`implied_nc_draws`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ._errors import CapedynError
from ._jax import scoped_x64
from .data import BENCHMARKS, log10_params

__all__ = ["ImpliedNc", "implied_nc", "implied_nc_draws", "implied_nc_table", "trajectory_coupling"]

HS, TQA = BENCHMARKS.index("hellaswag"), BENCHMARKS.index("truthfulqa")


@dataclass
class ImpliedNc:
    """Result of :func:`implied_nc`.

    ``log10_nc`` (log10 parameters) and ``nc_b`` (billions) of the first tax→bonus crossing,
    NaN when there is none; ``crosses``; ``side`` ("crosses", "tax" or "bonus": where the
    whole scanned range stays); ``x_range`` scanned (log10 N); ``curve``: DataFrame with
    ``log10_n``, ``params_b``, ``hs``, ``tqa``, ``dhs_dx``, ``dtqa_dx`` (points per decade)
    and ``gamma12`` along the trajectory.
    """

    log10_nc: float
    nc_b: float
    crosses: bool
    side: str
    x_range: tuple[float, float]
    curve: pd.DataFrame = field(repr=False)


@scoped_x64
def trajectory_coupling(ode_field, family, initial_scores, initial_params_b: float,
                        x_max: float, n_grid: int = 400) -> pd.DataFrame:
    """Scores and score-unit rates along the trajectory from one model up to ``x_max``
    (log10 N): the field evaluated exactly at the solved states (no finite differences)."""
    import jax
    import jax.numpy as jnp

    from ._state import from_state, to_state
    from .ode import _score_slope, solve

    x0 = float(log10_params(float(initial_params_b)))
    if not x_max > x0:
        raise CapedynError(f"x_max = {x_max:.3f} must lie above the initial log10 N = {x0:.3f}")
    xs = np.linspace(x0, float(x_max), int(n_grid))
    z0 = to_state(np.asarray(initial_scores, float))
    zs = np.asarray(solve(ode_field, z0, x0, xs, family, name="implied-Nc trajectory"))
    rates = np.asarray(jax.vmap(lambda x, z: ode_field(x, z, family))(jnp.asarray(xs), jnp.asarray(zs)))
    dscore = rates * np.asarray(_score_slope(jnp.asarray(zs)))
    scores = from_state(zs)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = dscore[:, TQA] / dscore[:, HS]
    return pd.DataFrame({"log10_n": xs, "params_b": 10 ** (xs - 9.0), "hs": scores[:, HS],
                         "tqa": scores[:, TQA], "dhs_dx": dscore[:, HS],
                         "dtqa_dx": dscore[:, TQA], "gamma12": gamma})


def _first_crossing(x: np.ndarray, dtqa: np.ndarray, dhs: np.ndarray) -> float:
    """x of the first − → + sign change of dTQA/dx where HS rises (linear interpolation)."""
    ok = dhs > 0
    for i in range(len(x) - 1):
        if ok[i] and ok[i + 1] and dtqa[i] < 0 <= dtqa[i + 1]:
            return float(x[i] - dtqa[i] * (x[i + 1] - x[i]) / (dtqa[i + 1] - dtqa[i]))
    return float("nan")


def implied_nc(ode_field, family, initial_scores, initial_params_b: float, *,
               x_max: float = 12.0, n_grid: int = 400) -> ImpliedNc:
    """The ODE-implied Nc of one family (see the module docstring).

    ``ode_field``: a :class:`capedyn.ode.CouplingField`; ``family``: its
    :class:`capedyn.ode.FamilyParams`; ``initial_scores``: the five scores (percent) of the
    family's smallest model at ``initial_params_b`` (billions); the trajectory is scanned up
    to ``x_max`` (log10 N; 12 = 1000B) on ``n_grid`` points.
    """
    curve = trajectory_coupling(ode_field, family, initial_scores, initial_params_b, x_max, n_grid)
    x, dt, dh = (curve[c].to_numpy() for c in ("log10_n", "dtqa_dx", "dhs_dx"))
    xc = _first_crossing(x, dt, dh)
    crosses = bool(np.isfinite(xc))
    side = "crosses" if crosses else ("bonus" if np.nanmedian(dt[dh > 0] if np.any(dh > 0) else dt) > 0
                                      else "tax")
    return ImpliedNc(log10_nc=xc, nc_b=float(10 ** (xc - 9.0)) if crosses else float("nan"),
                     crosses=crosses, side=side, x_range=(float(x[0]), float(x[-1])), curve=curve)


def implied_nc_draws(ode_field, log10_nc: Sequence[float], h: np.ndarray, initial_scores,
                     initial_params_b: float, *, x_max: float = 12.0, n_grid: int = 200) -> np.ndarray:
    """Implied log10 Nc for each posterior draw of one family's (log10_nc, h) with the field
    fixed: the posterior carried through the dynamics. NaN where a draw does not cross."""
    from .ode import FamilyParams

    h = np.asarray(h, float).reshape(len(log10_nc), -1)
    out = np.full(len(log10_nc), np.nan)
    for i, (lnc, hi) in enumerate(zip(log10_nc, h)):
        try:
            out[i] = implied_nc(ode_field, FamilyParams.make(float(lnc), hi), initial_scores,
                                initial_params_b, x_max=x_max, n_grid=n_grid).log10_nc
        except CapedynError:
            out[i] = np.nan
    return out


def implied_nc_table(model, df: pd.DataFrame | None = None, *, x_max: float = 12.0) -> pd.DataFrame:
    """One row per family of a fitted :class:`capedyn.fit.CouplingODE`: the family's own
    ``log10_nc`` parameter beside the ODE-implied Nc (billions), whether the trajectory
    crosses, whether the crossing lies inside the family's data (between its smallest and
    largest complete model) and the data range in billions. ``df`` is unused except to
    name the largest model size when the fit does not record it."""
    from .data import complete_models

    rows = []
    for name, fam in model.families_.items():
        start = model.starts_[name]
        res = implied_nc(model.field_, fam, start["scores"], start["params_b"], x_max=x_max)
        lo_b = float(start["params_b"])
        hi_b = np.nan
        if df is not None:
            own = complete_models(df[df["family"] == name])
            hi_b = float(own["params_b"].max()) if len(own) else np.nan
        inside = bool(res.crosses and np.isfinite(hi_b) and lo_b <= res.nc_b <= hi_b)
        rows.append({"family": name, "param_nc_b": float(fam.critical_scale_b),
                     "implied_nc_b": res.nc_b, "crosses": res.crosses, "side": res.side,
                     "crossing_inside_data": inside, "smallest_b": lo_b, "largest_b": hi_b})
    return pd.DataFrame(rows)
