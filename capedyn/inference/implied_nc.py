"""The ODE-implied critical scale: a family's Nc read off its solved trajectory.

The coupling ODE carries a per-family parameter ``log10_nc`` inside its running-coupling
term, but with the universal part of the field free to move TruthfulQA on its own, that
parameter is not what the dynamics do: the data do not identify it. The quantity the
dynamics *do* determine is the running coupling of the solved trajectory itself,

    γ12^ODE(x) = (dTQA/dx) / (dHS/dx)     (TQA points per HS point, score units),

with both rates evaluated exactly from the field along the trajectory through the family's
smallest model (scores in percent, x = log10 N, N in parameters). The trajectory is
solved upward from that model to ``x_max`` and, by default, also downward to ``x_min``
(the same field integrated in decreasing x), so that a family whose coupling has already
turned positive at its smallest model gets the scale where it turned, exactly as the
running-coupling line γ12 = γ0·(x − log10 Nc) of the coupling-level posterior places Nc
below a family's data when its data are all on the bonus side. The **ODE-implied critical
scale** is the first x of the scan (in increasing x) where γ12^ODE crosses zero from the
tax side (γ12 < 0) to the bonus side (γ12 > 0) while HellaSwag is rising, i.e. where
dTQA/dx changes sign from negative to positive; ``nc_b`` = 10^(x − 9) billions. A
trajectory that never crosses inside the scan reports ``crosses = False`` and the side it
stays on: ``"tax"`` (Nc above ``x_max``) or ``"bonus"`` (Nc below the scan).
``x_min=None`` scans upward from the smallest model only.

With a posterior over the family parameters (draws of ``log10_nc`` and ``h``, and of the
true start scores and each family's γ0 when the posterior samples them) the implied Nc
is computed draw by draw in one vmapped solve (:func:`implied_nc_draws`,
:func:`implied_nc_batch`), which carries the posterior through the dynamics;
:func:`implied_nc_posterior` does so for every family of an ODE-level posterior and
:func:`implied_nc_agreement` sets the result beside the coupling-level posterior.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._errors import CapedynError, SolveError
from .._jax import scoped_x64
from ..data.tables import BENCHMARKS, log10_params

__all__ = ["ImpliedNc", "ImpliedNcBatch", "implied_nc", "implied_nc_draws", "implied_nc_batch",
           "implied_nc_table", "trajectory_coupling", "X_MIN", "X_MAX"]

HS, TQA = BENCHMARKS.index("hellaswag"), BENCHMARKS.index("truthfulqa")
X_MIN = 7.0
"""Default lower end of the scan, log10 N (10M parameters: below every shipped family)."""
X_MAX = 12.0
"""Default upper end of the scan, log10 N (1000B parameters)."""


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


# --------------------------------------------------------------------------- the scan

DRAW_BATCH = 256
"""Rows per compiled batch in :func:`implied_nc_batch`; fewer rows are padded to the next
power of two and the last batch to the full size, so calls with the same grid sizes reuse a
handful of compilations."""
_SCAN_FN: dict = {}


def _scan_solver(backward: bool):
    """One jitted program: for a batch of (start, family) rows, vmapped, the adaptive solve
    upward from the start and (``backward``) downward from it, and the score-unit rates of
    HS and TQA at the saved points (the field evaluated exactly at the solved states).

    Downward integration uses :func:`capedyn.dynamics.field.solve_unchecked` (the one solve path) on the
    field read backwards, dz/ds = −f(x0 − s, z) with s = x0 − x ≥ 0."""
    if backward not in _SCAN_FN:
        import equinox as eqx
        import jax
        import jax.numpy as jnp

        from ..dynamics.field import FamilyParams, _score_slope, solve_unchecked

        class Reversed(eqx.Module):
            inner: Any
            x_ref: Any

            def __call__(self, s, z, family):
                return -self.inner(self.x_ref - s, z, family)

        def rates(fld, xs, zs, fam):
            r = jax.vmap(lambda x, z: fld(x, z, fam))(xs, zs) * _score_slope(zs)
            return jnp.stack([r[:, HS], r[:, TQA]], axis=-1)

        def one(fld, z0, x0, s_back, xs, lnc, h, g):
            fld = fld.with_gamma0(g)  # the row's own coupling strength
            fam = FamilyParams(log10_nc=lnc, h=h)
            zf, okf = solve_unchecked(fld, z0, x0, xs, fam)
            out = {"z_up": zf, "r_up": rates(fld, xs, zf, fam), "ok_up": okf}
            if backward:
                zb, okb = solve_unchecked(Reversed(fld, x0), z0, jnp.zeros_like(x0), s_back, fam)
                out.update(z_down=zb, r_down=rates(fld, x0 - s_back, zb, fam), ok_down=okb)
            return out

        _SCAN_FN[backward] = eqx.filter_jit(eqx.filter_vmap(one, in_axes=(None, 0, 0, 0, 0, 0, 0, 0)))
    return _SCAN_FN[backward]


def _scan(ode_field, z0, x0, lnc, h, *, x_min, x_max, n_grid, batch=DRAW_BATCH,
          keep_states=False, gamma0=None) -> dict:
    """Rows (D) solved in batches: ``x`` (D, n) increasing, ``dhs``/``dtqa`` (D, n) points per
    decade (NaN where the solve failed), ``ok`` (D,) upward solve succeeded, ``ok_down``,
    and ``z`` (D, n, 5) when ``keep_states``. ``gamma0`` (D,): each row's coupling strength
    (None: the field's)."""
    import jax.numpy as jnp

    d = z0.shape[0]
    g = np.broadcast_to(np.asarray(ode_field.gamma0 if gamma0 is None else gamma0, float),
                        (d,)).copy()
    n_up = int(n_grid)
    backward = x_min is not None
    n_down = max(2, n_up // 2) if backward else 1
    frac = np.linspace(0.0, 1.0, n_up)
    xs = x0[:, None] + (float(x_max) - x0)[:, None] * frac[None]
    xs[:, -1] = float(x_max)
    span = np.maximum(x0 - float(x_min), 0.0) if backward else np.zeros(d)
    s_back = span[:, None] * np.linspace(0.0, 1.0, n_down)[None]
    fn = _scan_solver(backward)
    n_tot = n_up + n_down - 1
    x_all = np.concatenate([(x0[:, None] - s_back)[:, :0:-1], xs], axis=1)
    dhs, dtqa = np.full((d, n_tot), np.nan), np.full((d, n_tot), np.nan)
    ok, ok_down = np.zeros(d, bool), np.ones(d, bool)
    z_all = np.full((d, n_tot, len(BENCHMARKS)), np.nan) if keep_states else None
    # A power of two (at most ``batch``): few distinct shapes, so few compilations.
    batch = int(2 ** np.ceil(np.log2(max(1, min(int(batch), d)))))
    for s in range(0, d, batch):
        idx = np.arange(s, s + batch) % d
        o = fn(ode_field, jnp.asarray(z0[idx]), jnp.asarray(x0[idx]), jnp.asarray(s_back[idx]),
               jnp.asarray(xs[idx]), jnp.asarray(lnc[idx]), jnp.asarray(h[idx]),
               jnp.asarray(g[idx]))
        n = min(batch, d - s)
        rows = slice(s, s + n)
        r_up = np.asarray(o["r_up"])[:n]
        ok[rows] = np.asarray(o["ok_up"])[:n] & np.all(np.isfinite(r_up), axis=(1, 2))
        dhs[rows, n_down - 1:], dtqa[rows, n_down - 1:] = r_up[..., 0], r_up[..., 1]
        if keep_states:
            z_all[rows, n_down - 1:] = np.asarray(o["z_up"])[:n]
        if backward:
            r_dn = np.asarray(o["r_down"])[:n][:, :0:-1]
            ok_down[rows] = np.asarray(o["ok_down"])[:n] & np.all(np.isfinite(r_dn), axis=(1, 2))
            good = ok_down[rows][:, None]
            dhs[rows, :n_down - 1] = np.where(good, r_dn[..., 0], np.nan)
            dtqa[rows, :n_down - 1] = np.where(good, r_dn[..., 1], np.nan)
            if keep_states:
                z_all[rows, :n_down - 1] = np.where(good[..., None],
                                                    np.asarray(o["z_down"])[:n][:, :0:-1], np.nan)
    dhs[~ok], dtqa[~ok] = np.nan, np.nan
    return {"x": x_all, "dhs": dhs, "dtqa": dtqa, "ok": ok, "ok_down": ok_down, "z": z_all}


def _check_scan(x0: np.ndarray, x_min, x_max, n_grid) -> None:
    if not np.all(np.isfinite(x0)):
        raise CapedynError("start sizes must be finite log10 N values")
    if np.any(~(float(x_max) > x0)):
        raise CapedynError(f"x_max = {float(x_max):.3f} (log10 N) must lie above every start's "
                           f"log10 N (largest {float(np.max(x0)):.3f})")
    if x_min is not None and not float(x_min) < float(x_max):
        raise CapedynError(f"x_min = {float(x_min):.3f} must lie below x_max = {float(x_max):.3f}")
    if int(n_grid) < 4:
        raise CapedynError(f"n_grid must be at least 4 points, got {n_grid}")


@scoped_x64
def trajectory_coupling(ode_field, family, initial_scores, initial_params_b: float,
                        x_max: float = X_MAX, n_grid: int = 400, *,
                        x_min: float | None = X_MIN) -> pd.DataFrame:
    """Scores and score-unit rates along the trajectory through one model, from ``x_min``
    (None: from the model itself) up to ``x_max`` (log10 N): the field evaluated exactly at
    the solved states (no finite differences). ``n_grid`` points above the model and
    ``n_grid // 2`` below it."""
    from ..dynamics.state import from_state, to_state

    x0 = np.array([float(log10_params(float(initial_params_b)))])
    _check_scan(x0, x_min, x_max, n_grid)
    z0 = to_state(np.asarray(initial_scores, float).reshape(1, -1))
    sc = _scan(ode_field, z0, x0, np.asarray(family.log10_nc, float).reshape(1),
               np.asarray(family.h, float).reshape(1, -1), x_min=x_min, x_max=x_max,
               n_grid=n_grid, keep_states=True)
    if not sc["ok"][0]:
        raise SolveError(f"ODE solve failed for the implied-Nc trajectory between log10 N = "
                         f"{x0[0]:.3f} and {float(x_max):.3f}: the state blew up or the step "
                         "budget ran out; scan a shorter range (x_max)")
    keep = np.isfinite(sc["dhs"][0])
    xs, dh, dt = sc["x"][0][keep], sc["dhs"][0][keep], sc["dtqa"][0][keep]
    scores = from_state(sc["z"][0][keep])
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = dt / dh
    return pd.DataFrame({"log10_n": xs, "params_b": 10 ** (xs - 9.0), "hs": scores[:, HS],
                         "tqa": scores[:, TQA], "dhs_dx": dh, "dtqa_dx": dt, "gamma12": gamma})


def _first_crossings(x: np.ndarray, dtqa: np.ndarray, dhs: np.ndarray) -> np.ndarray:
    """Row-wise x of the first − → + sign change of dTQA/dx where HS rises, by linear
    interpolation between grid points; NaN for a row without one. Arrays (D, n) or (n,)."""
    x, dtqa, dhs = (np.atleast_2d(np.asarray(a, float)) for a in (x, dtqa, dhs))
    ok = dhs > 0
    cond = ok[:, :-1] & ok[:, 1:] & (dtqa[:, :-1] < 0) & (dtqa[:, 1:] >= 0)
    has = cond.any(axis=1)
    i = cond.argmax(axis=1)
    r = np.arange(x.shape[0])
    xa, xb, da, db = x[r, i], x[r, i + 1], dtqa[r, i], dtqa[r, i + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = xa - da * (xb - xa) / (db - da)
    return np.where(has, xc, np.nan)


def _sides(dtqa: np.ndarray, dhs: np.ndarray, crossing: np.ndarray) -> np.ndarray:
    """"crosses", or the side ("tax"/"bonus") a trajectory without a crossing stays on: the
    sign of the median dTQA/dx over the points where HS rises (all points if none)."""
    dtqa, dhs = np.atleast_2d(dtqa), np.atleast_2d(dhs)
    rising = np.where(dhs > 0, dtqa, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.where(np.any(dhs > 0, axis=1), np.nanmedian(rising, axis=1),
                       np.median(dtqa, axis=1))
    return np.where(np.isfinite(crossing), "crosses", np.where(med > 0, "bonus", "tax"))


def implied_nc(ode_field, family, initial_scores, initial_params_b: float, *,
               x_max: float = X_MAX, n_grid: int = 400, x_min: float | None = X_MIN) -> ImpliedNc:
    """The ODE-implied Nc of one family (see the module docstring).

    ``ode_field``: a :class:`capedyn.dynamics.field.CouplingField`; ``family``: its
    :class:`capedyn.dynamics.field.FamilyParams`; ``initial_scores``: the five scores (percent) of the
    family's smallest model at ``initial_params_b`` (billions); the trajectory through it is
    scanned from ``x_min`` (None: from the model itself) up to ``x_max`` (log10 N; 12 =
    1000B), ``n_grid`` points above the model.
    """
    curve = trajectory_coupling(ode_field, family, initial_scores, initial_params_b, x_max,
                                n_grid, x_min=x_min)
    x, dt, dh = (curve[c].to_numpy() for c in ("log10_n", "dtqa_dx", "dhs_dx"))
    xc = float(_first_crossings(x, dt, dh)[0])
    crosses = bool(np.isfinite(xc))
    side = str(_sides(dt, dh, np.array([xc]))[0])
    return ImpliedNc(log10_nc=xc, nc_b=float(10 ** (xc - 9.0)) if crosses else float("nan"),
                     crosses=crosses, side=side, x_range=(float(x[0]), float(x[-1])), curve=curve)


@dataclass
class ImpliedNcBatch:
    """Result of :func:`implied_nc_batch`, one entry per row (a draw or a family).

    ``log10_nc``: the first tax→bonus crossing (log10 N), NaN without one; ``side``:
    "crosses", "tax" (dTQA/dx stays negative: Nc above the scan), "bonus" (stays positive:
    Nc below the scan) or "failed" (the upward solve failed); ``solved``: the upward solve
    succeeded; ``solved_down``: the downward one did (when it fails only the upward part is
    scanned); ``x_min``/``x_max``: the scan (log10 N; ``x_min`` None = from each start)."""

    log10_nc: np.ndarray
    side: np.ndarray
    solved: np.ndarray
    solved_down: np.ndarray
    x_min: float | None
    x_max: float
    definition: str = "crossing"

    def extended(self) -> np.ndarray:
        """log10 Nc on the extended line: the crossing where there is one, +inf for a
        trajectory that stays on the tax side (Nc above the scan), −inf for one that stays
        on the bonus side (Nc below it), NaN for a failed solve. Quantiles of these values
        taken as actual draws (``method="inverted_cdf"``) are the implied-Nc quantiles."""
        out = np.where(self.side == "tax", np.inf,
                       np.where(self.side == "bonus", -np.inf, self.log10_nc))
        return np.where(self.solved & (self.side != "failed"), out, np.nan)


DEFINITIONS = ("crossing", "linear")
"""How an implied Nc is read off a trajectory (see :func:`implied_nc_batch`)."""


def _linear_zero(x, dtqa, dhs, x_lo, x_hi):
    """Row-wise zero of the straight line γ12 = a + b·x fitted to the trajectory's running
    coupling dTQA/dHS on [x_lo, x_hi] with weights dHS/dx (where HS rises), and the side
    ("crosses" when b > 0; otherwise "bonus"/"tax" by the sign of the weighted mean)."""
    inside = (x >= x_lo[:, None] - 1e-12) & (x <= x_hi[:, None] + 1e-12) & (dhs > 0)
    w = np.where(inside, dhs, 0.0)
    g = np.where(inside, dtqa / np.where(inside, dhs, 1.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        wsum = w.sum(axis=1)
        xm = (w * x).sum(axis=1) / wsum
        gm = (w * g).sum(axis=1) / wsum
        dx = np.where(inside, x - xm[:, None], 0.0)
        b = (w * dx * (g - gm[:, None])).sum(axis=1) / (w * dx ** 2).sum(axis=1)
        zero = xm - gm / b
    fitted = np.isfinite(b) & np.isfinite(gm)
    cross = fitted & (b > 0)
    side = np.where(cross, "crosses", np.where(gm > 0, "bonus", "tax"))
    return np.where(cross, zero, np.nan), np.where(fitted, side, "failed")


@scoped_x64
def implied_nc_batch(ode_field, z0: np.ndarray, x0: np.ndarray, log10_nc: np.ndarray,
                     h: np.ndarray, *, x_max: float = X_MAX, x_min: float | None = X_MIN,
                     n_grid: int = 200, batch: int = DRAW_BATCH, definition: str = "crossing",
                     x_fit=None, gamma0=None) -> ImpliedNcBatch:
    """Implied Nc of many (start, family parameters) rows, solved in vmapped batches.

    ``z0`` (D, 5) latent start states (:func:`capedyn.to_state` of the start scores in
    percent), ``x0`` (D,) their log10 N, ``log10_nc`` (D,) and ``h`` (D, 5) the family
    parameters (scalars broadcast), ``gamma0`` (D,) each row's coupling strength (None: the
    field's one value). Each row's trajectory is solved from ``x0`` up to
    ``x_max`` on ``n_grid`` points and down to ``x_min`` on ``n_grid // 2`` points (log10 N),
    one jitted ``vmap`` per ``batch`` rows; the Nc is then read off with NumPy:

    * ``definition="crossing"`` (default): the first tax→bonus crossing of dTQA/dHS, row
      by row exactly as :func:`implied_nc` does for one;
    * ``definition="linear"``: the running-coupling law of the coupling-level posterior,
      γ12 = γ0·(x − log10 Nc), fitted to the trajectory's dTQA/dHS between ``x0`` and
      ``x_fit`` (D,) (log10 N; the family's largest model; default ``x_max``) by least
      squares weighted by dHS/dx — the continuous form of the pair ratios ΔTQA/ΔHS, which
      weight the running coupling by HellaSwag's step — and Nc its zero (a line with
      γ0 ≤ 0 has none: side "bonus" or "tax" by the sign of its weighted mean). With this
      definition the ODE answers the question the coupling-level posterior answers.
    """
    return _implied_nc_batches(ode_field, z0, x0, log10_nc, h, x_max=x_max, x_min=x_min,
                               n_grid=n_grid, batch=batch, definitions=(definition,),
                               x_fit=x_fit, gamma0=gamma0)[definition]


@scoped_x64
def _implied_nc_batches(ode_field, z0, x0, log10_nc, h, *, x_max, x_min, n_grid,
                        batch=DRAW_BATCH, definitions=("crossing",),
                        x_fit=None, gamma0=None) -> dict[str, ImpliedNcBatch]:
    """:func:`implied_nc_batch` for several ``definitions`` from one scan (the solves do not
    depend on the definition, only the read-off does)."""
    for definition in definitions:
        if definition not in DEFINITIONS:
            raise CapedynError(f"definition must be one of {DEFINITIONS}, got {definition!r}")
    z0 = np.asarray(z0, float).reshape(-1, len(BENCHMARKS))
    d = z0.shape[0]
    x0 = np.broadcast_to(np.asarray(x0, float), (d,)).copy()
    lnc = np.broadcast_to(np.asarray(log10_nc, float), (d,)).copy()
    h = np.broadcast_to(np.asarray(h, float), (d, len(BENCHMARKS))).copy()
    _check_scan(x0, x_min, x_max, n_grid)
    sc = _scan(ode_field, z0, x0, lnc, h, x_min=x_min, x_max=x_max, n_grid=n_grid, batch=batch,
               gamma0=gamma0)
    out = {}
    for definition in definitions:
        if definition == "crossing":
            xc = _first_crossings(sc["x"], sc["dtqa"], sc["dhs"])
            side = _sides(sc["dtqa"], sc["dhs"], xc)
        else:
            hi = np.broadcast_to(np.asarray(float(x_max) if x_fit is None else x_fit, float), (d,))
            xc, side = _linear_zero(sc["x"], sc["dtqa"], sc["dhs"], x0,
                                    np.minimum(hi, float(x_max)))
        out[definition] = ImpliedNcBatch(
            log10_nc=np.where(sc["ok"], xc, np.nan), side=np.where(sc["ok"], side, "failed"),
            solved=sc["ok"], solved_down=sc["ok_down"], x_min=x_min, x_max=float(x_max),
            definition=definition)
    return out


def implied_nc_draws(ode_field, log10_nc: Sequence[float], h: np.ndarray, initial_scores,
                     initial_params_b: float, *, x_max: float = X_MAX, n_grid: int = 200,
                     x_min: float | None = X_MIN) -> np.ndarray:
    """Implied log10 Nc for each posterior draw of one family's (log10_nc, h) with the field
    fixed: the posterior carried through the dynamics. NaN where a draw does not cross (or
    its solve fails). All draws go through one vmapped solve (:func:`implied_nc_batch`);
    ``initial_scores`` in percent at ``initial_params_b`` billions."""
    from ..dynamics.state import to_state

    lnc = np.asarray(log10_nc, float).reshape(-1)
    h = np.asarray(h, float).reshape(len(lnc), -1)
    z0 = np.broadcast_to(to_state(np.asarray(initial_scores, float).reshape(-1)),
                         (len(lnc), len(BENCHMARKS)))
    x0 = float(log10_params(float(initial_params_b)))
    return implied_nc_batch(ode_field, z0, np.full(len(lnc), x0), lnc, h, x_max=x_max,
                            x_min=x_min, n_grid=n_grid).log10_nc

def implied_nc_table(model, df: pd.DataFrame | None = None, *, x_max: float = X_MAX,
                     x_min: float | None = X_MIN) -> pd.DataFrame:
    """One row per family of a fitted :class:`capedyn.models.coupling_ode.CouplingODE`: the family's own
    ``log10_nc`` parameter beside the ODE-implied Nc (billions), whether the trajectory
    crosses, whether the crossing lies inside the family's data (between its smallest and
    largest complete model) and the data range in billions. ``df`` is unused except to
    name the largest model size when the fit does not record it."""
    from ..data.tables import complete_models

    complete = complete_models(df) if df is not None else None
    rows = []
    for name, fam in model.families_.items():
        start = model.starts_[name]
        res = implied_nc(model.field_, fam, start["scores"], start["params_b"], x_max=x_max,
                         x_min=x_min)
        lo_b = float(start["params_b"])
        hi_b = np.nan
        if complete is not None:
            own = complete[complete["family"] == name]
            hi_b = float(own["params_b"].max()) if len(own) else np.nan
        inside = bool(res.crosses and np.isfinite(hi_b) and lo_b <= res.nc_b <= hi_b)
        rows.append({"family": name, "param_nc_b": float(fam.critical_scale_b),
                     "implied_nc_b": res.nc_b, "crosses": res.crosses, "side": res.side,
                     "crossing_inside_data": inside, "smallest_b": lo_b, "largest_b": hi_b})
    return pd.DataFrame(rows)
