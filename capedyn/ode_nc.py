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

from ._errors import CapedynError, SolveError
from ._jax import scoped_x64
from .data import BENCHMARKS, log10_params

__all__ = ["ImpliedNc", "ImpliedNcBatch", "ImpliedNcAgreement", "implied_nc",
           "implied_nc_draws", "implied_nc_batch", "implied_nc_table", "implied_nc_posterior",
           "implied_nc_agreement", "implied_nc_agreements", "trajectory_coupling", "X_MIN", "X_MAX"]

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

    Downward integration uses :func:`capedyn.ode.solve_unchecked` (the one solve path) on the
    field read backwards, dz/ds = −f(x0 − s, z) with s = x0 − x ≥ 0."""
    if backward not in _SCAN_FN:
        import equinox as eqx
        import jax
        import jax.numpy as jnp

        from .ode import FamilyParams, _score_slope, solve_unchecked

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
    from ._state import from_state, to_state

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

    ``ode_field``: a :class:`capedyn.ode.CouplingField`; ``family``: its
    :class:`capedyn.ode.FamilyParams`; ``initial_scores``: the five scores (percent) of the
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
    from ._state import to_state

    lnc = np.asarray(log10_nc, float).reshape(-1)
    h = np.asarray(h, float).reshape(len(lnc), -1)
    z0 = np.broadcast_to(to_state(np.asarray(initial_scores, float).reshape(-1)),
                         (len(lnc), len(BENCHMARKS)))
    x0 = float(log10_params(float(initial_params_b)))
    return implied_nc_batch(ode_field, z0, np.full(len(lnc), x0), lnc, h, x_max=x_max,
                            x_min=x_min, n_grid=n_grid).log10_nc

def implied_nc_table(model, df: pd.DataFrame | None = None, *, x_max: float = X_MAX,
                     x_min: float | None = X_MIN) -> pd.DataFrame:
    """One row per family of a fitted :class:`capedyn.fit.CouplingODE`: the family's own
    ``log10_nc`` parameter beside the ODE-implied Nc (billions), whether the trajectory
    crosses, whether the crossing lies inside the family's data (between its smallest and
    largest complete model) and the data range in billions. ``df`` is unused except to
    name the largest model size when the fit does not record it."""
    from .data import complete_models

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


# --------------------------------------------------------------------------- posteriors

def _posterior_field(ode_posterior, fit):
    """The field an ODE-level posterior was sampled with (or ``fit``'s, when given)."""
    from .posterior import _resolve_fit

    if fit is not None:
        return _resolve_fit(fit)[0]
    if getattr(ode_posterior, "field_", None) is None:
        raise CapedynError("this ODE-level posterior carries no field (it was loaded from a "
                           "file); pass fit=... (the fit it was sampled with, e.g. "
                           "'all_families')")
    return ode_posterior.field_


def _ext_quantiles(ext: np.ndarray) -> np.ndarray:
    """The QUANTILES (2.5/16/50/84/97.5%) of extended log10 Nc draws, NaN draws dropped (all
    NaN when none is left): quantiles that are actual draws (``inverted_cdf``), so ±inf stay
    ±inf instead of turning into NaN by interpolation."""
    from .posterior_result import QUANTILES

    ext = ext[~np.isnan(ext)]
    if ext.size == 0:
        return np.full(len(QUANTILES), np.nan)
    return np.quantile(ext, QUANTILES, method="inverted_cdf")


@dataclass(frozen=True)
class _Draws:
    """Kept draws of an ODE-level posterior, chains and draws flattened (S draws, F families):
    ``log10_nc`` (S, F), ``h`` (S, F, 5), ``gamma0`` (S, F) or None (the field's one value)
    and ``start`` (S, F, 5) true start scores (percent) or None (the observed start)."""

    log10_nc: np.ndarray
    h: np.ndarray
    gamma0: np.ndarray | None = None
    start: np.ndarray | None = None

    def take(self, idx) -> "_Draws":
        return _Draws(*(None if v is None else v[idx]
                        for v in (self.log10_nc, self.h, self.gamma0, self.start)))


def _posterior_draws(idata_posterior, n_families: int) -> _Draws:
    """The family parameters of an ODE-level posterior (:class:`_Draws`)."""
    def flat(name, *extra):
        if name not in idata_posterior:
            return None
        v = idata_posterior[name]
        if "family" not in v.dims:
            return None
        order = ("chain", "draw", "family", *extra)
        return np.asarray(v.transpose(*order).values).reshape(-1, n_families,
                                                              *([len(BENCHMARKS)] if extra else []))

    return _Draws(log10_nc=flat("log10_nc"), h=flat("h", "benchmark"),
                  gamma0=flat("gamma0"), start=flat("start_scores", "benchmark"))


def _draws_batches(fld, data, draws: _Draws, **kw) -> dict[str, ImpliedNcBatch]:
    """Implied Nc of every draw (S, F) with each family's trajectory from the draw's start
    (``data``'s observed start when the posterior has none; rows family-major: reshape to
    (F, S)), the linear fit up to the family's largest model; ``kw`` as
    :func:`_implied_nc_batches`."""
    from ._state import to_state

    d = draws.log10_nc.shape[0]
    nb = len(BENCHMARKS)
    if draws.start is None:
        z0 = np.repeat(np.asarray(data.z0, float), d, axis=0)
    else:
        z0 = np.asarray(to_state(draws.start.transpose(1, 0, 2).reshape(-1, nb)))
    g = None if draws.gamma0 is None else draws.gamma0.T.reshape(-1)
    return _implied_nc_batches(fld, z0, np.repeat(np.asarray(data.x0, float), d),
                               draws.log10_nc.T.reshape(-1),
                               draws.h.transpose(1, 0, 2).reshape(-1, nb),
                               x_fit=np.repeat(log10_params(data.largest_b), d), gamma0=g, **kw)


def _summary_b(ext: np.ndarray) -> dict:
    """Median and equal-tailed 68%/95% intervals (billions) of extended log10 Nc draws
    (:func:`_ext_quantiles`: ±inf stay ±inf, 0 or inf in billions)."""
    q = _ext_quantiles(ext)
    if np.all(np.isnan(q)):
        return {k: np.nan for k in ("median", "lo68", "hi68", "lo95", "hi95")}
    with np.errstate(over="ignore"):
        b = 10.0 ** (q - 9.0)
    return {"lo95": b[0], "lo68": b[1], "median": b[2], "hi68": b[3], "hi95": b[4]}


@scoped_x64
def implied_nc_posterior(ode_posterior, *, fit=None, x_max: float = X_MAX,
                         x_min: float | None = X_MIN, n_grid: int = 200,
                         max_draws: int | None = None, seed: int = 0,
                         definition: str = "crossing") -> pd.DataFrame:
    """The ODE-implied Nc carried through an ODE-level posterior, one row per family.

    ``ode_posterior``: an :class:`capedyn.NcPosterior` from
    ``sample_posterior(model="ode")`` (the field it was sampled with is attached; pass
    ``fit`` for one read back from a file). Every kept draw of the family's ``log10_nc`` and
    ``h`` is solved from the family's smallest model (vmapped, :func:`implied_nc_batch`);
    ``max_draws`` thins to that many draws per family (at random, ``seed``).
    ``definition``: "crossing" (default) or "linear" (the coupling-level law fitted to the
    trajectory over the family's own sizes), see :func:`implied_nc_batch`.

    Columns: ``implied_median_b`` and ``implied_ci68_lo_b``/``hi_b``,
    ``implied_ci95_lo_b``/``hi_b`` (billions; quantiles over the draws with a draw that
    stays on the tax side counted as Nc = inf (above the scan) and one that stays on the
    bonus side as Nc = 0 (below the scan)), ``frac_cross``/``frac_tax``/``frac_bonus``/``frac_failed``
    (fractions of draws), ``n_draws``, ``smallest_b``, ``largest_b`` (the family's data) and
    ``crossing_inside_data`` (the implied median lies within the family's sizes).
    """
    return _implied_tables(ode_posterior, fit=fit, x_max=x_max, x_min=x_min, n_grid=n_grid,
                           max_draws=max_draws, seed=seed, definitions=(definition,))[definition]


def _implied_tables(ode_posterior, *, fit, x_max, x_min, n_grid, max_draws, seed,
                    definitions) -> dict[str, pd.DataFrame]:
    """:func:`implied_nc_posterior`'s table for each of ``definitions``, from one scan."""
    if getattr(ode_posterior, "model", "ode") != "ode":
        raise CapedynError(f"the implied Nc needs an ODE-level posterior "
                           f"(sample_posterior(model='ode')), got a {ode_posterior.model}-level one")
    if max_draws is not None and not (isinstance(max_draws, (int, np.integer)) and max_draws >= 1):
        raise CapedynError(f"max_draws must be a positive whole number or None, got {max_draws!r}")
    post = ode_posterior.idata.posterior
    fld = _posterior_field(ode_posterior, fit)
    data = ode_posterior.data
    fams = list(ode_posterior.families)
    rng = np.random.default_rng(seed)
    draws = _posterior_draws(post, len(fams))
    n = draws.log10_nc.shape[0]
    take = np.sort(rng.choice(n, size=int(max_draws), replace=False)) if max_draws and max_draws < n \
        else np.arange(n)
    res = _draws_batches(fld, data, draws.take(take), x_max=x_max, x_min=x_min,
                         n_grid=n_grid, definitions=tuple(definitions))
    return {dfn: _implied_table(res[dfn], data, fams, len(take)) for dfn in definitions}


def _implied_table(res: ImpliedNcBatch, data, fams: list[str], d: int) -> pd.DataFrame:
    """One row per family from ``d`` draws each (rows family-major)."""
    ext = res.extended().reshape(len(fams), d)
    side = res.side.reshape(len(fams), d)
    rows = []
    for i, name in enumerate(fams):
        s = _summary_b(ext[i])
        lo_b, hi_b = float(data.smallest_b[i]), float(data.largest_b[i])
        rows.append({"family": name, "implied_median_b": s["median"],
                     "implied_ci68_lo_b": s["lo68"], "implied_ci68_hi_b": s["hi68"],
                     "implied_ci95_lo_b": s["lo95"], "implied_ci95_hi_b": s["hi95"],
                     **{f"frac_{k}": float(np.mean(side[i] == v)) for k, v in
                        (("cross", "crosses"), ("tax", "tax"), ("bonus", "bonus"),
                         ("failed", "failed"))},
                     "n_draws": d, "smallest_b": lo_b, "largest_b": hi_b,
                     "crossing_inside_data": bool(lo_b <= s["median"] <= hi_b)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- agreement

@dataclass
class ImpliedNcAgreement:
    """Result of :func:`implied_nc_agreement`.

    ``table``: one row per family in both posteriors (see :func:`implied_nc_agreement`).
    Counts of families whose ODE-implied median lies inside the coupling-level 68%
    interval, over three sets of "families that cross inside their data":
    ``n_inside``/``n_agree``: the family's observed running coupling turns from tax to
    bonus (a pair with γ12 < 0 followed by one with γ12 > 0: the data themselves cross);
    ``n_coupling_inside``/``n_coupling_agree``: the coupling-level median lies inside the
    family's sizes; ``n_implied_inside``/``n_implied_agree``: the ODE-implied median does;
    ``n_families``/``n_agree_all``: every family. ``n_agree95``: families whose pairs turn
    with the implied median inside the coupling-level 95% interval.
    """

    table: pd.DataFrame
    n_inside: int
    n_agree: int
    n_coupling_inside: int
    n_coupling_agree: int
    n_implied_inside: int
    n_implied_agree: int
    n_families: int
    n_agree_all: int
    n_agree95: int
    definition: str
    config: dict

    def to_dict(self) -> dict:
        """JSON-ready form (infinite bounds become None: beyond the scan)."""
        from ._json import to_jsonable

        keys = ("n_inside", "n_agree", "n_coupling_inside", "n_coupling_agree",
                "n_implied_inside", "n_implied_agree", "n_families", "n_agree_all", "n_agree95")
        return to_jsonable({
            "definition": self.definition, **{k: getattr(self, k) for k in keys},
            "agreement": "ODE-implied median inside the coupling-level posterior's 68% "
                         "interval; n_inside counts the families whose observed running "
                         "coupling turns from tax to bonus",
            "units": "Nc in billions of parameters; an implied bound of 0 is below the scan "
                     "(the trajectory is on the bonus side throughout), null is above it "
                     "(tax side throughout)",
            "config": self.config, "families": self.table.to_dict("records")})


def _observed_turn(cdata, name: str) -> bool:
    """The family's usable pairs show a tax pair (γ12 < 0) followed by a bonus pair (> 0)."""
    i = list(cdata.families).index(name)
    sel = np.asarray(cdata.family_idx) == i
    g = np.asarray(cdata.gamma12, float)[sel][np.argsort(np.asarray(cdata.log10_n)[sel])]
    neg = np.flatnonzero(g < 0)
    return bool(neg.size and np.any(g[neg[0]:] > 0))


def implied_nc_agreement(ode_posterior, coupling_posterior, *, fit=None, x_max: float = X_MAX,
                         x_min: float | None = X_MIN, n_grid: int = 200,
                         max_draws: int | None = None, seed: int = 0,
                         definition: str = "crossing") -> ImpliedNcAgreement:
    """The ODE-implied Nc (from an ODE-level posterior) beside the coupling-level posterior.

    ``ode_posterior``: ``sample_posterior(df, model="ode")`` (``fit``: the fit it was
    sampled with, needed only when it was read back from a file); ``coupling_posterior``:
    ``sample_posterior(df, model="coupling")`` on the same table. The scan (``x_min``,
    ``x_max`` log10 N, ``n_grid``), thinning (``max_draws``, ``seed``) and ``definition``
    are those of :func:`implied_nc_posterior`.

    Table columns (Nc in billions): ``coupling_median_b``, ``coupling_ci68_lo_b``/``hi_b``,
    ``coupling_ci95_lo_b``/``hi_b``; ``implied_median_b``, ``implied_ci68_*``,
    ``implied_ci95_*`` (0 = below the scan, inf = above it), ``frac_cross``, ``frac_tax``,
    ``frac_bonus`` (fractions of draws); ``smallest_b``/``largest_b`` (the family's
    complete models); ``observed_turn`` (its pairs go from tax to bonus),
    ``coupling_inside_data`` and ``implied_inside_data`` (each median within the family's
    sizes); ``agree68``/``agree95`` (the implied median inside the coupling 68%/95%
    interval) and ``overlap68`` (the two 68% intervals overlap).
    """
    return implied_nc_agreements(ode_posterior, coupling_posterior, fit=fit, x_max=x_max,
                                 x_min=x_min, n_grid=n_grid, max_draws=max_draws, seed=seed,
                                 definitions=(definition,))[definition]


def implied_nc_agreements(ode_posterior, coupling_posterior, *, fit=None, x_max: float = X_MAX,
                          x_min: float | None = X_MIN, n_grid: int = 200,
                          max_draws: int | None = None, seed: int = 0,
                          definitions: Sequence[str] = DEFINITIONS) -> dict[str, ImpliedNcAgreement]:
    """:func:`implied_nc_agreement` for each of ``definitions`` (default both), from one
    solve of every draw (the definitions differ only in how the Nc is read off)."""
    tables = _implied_tables(ode_posterior, fit=fit, x_max=x_max, x_min=x_min, n_grid=n_grid,
                             max_draws=max_draws, seed=seed, definitions=tuple(definitions))
    config = {"x_min": x_min, "x_max": float(x_max), "n_grid": int(n_grid),
              "max_draws": max_draws, "seed": seed,
              "ode_posterior": dict(ode_posterior.config),
              "coupling_posterior": dict(coupling_posterior.config)}
    return {dfn: _agreement(tab, coupling_posterior, dfn, config) for dfn, tab in tables.items()}


def _agreement(ode_tab: pd.DataFrame, coupling_posterior, definition: str,
               config: dict) -> ImpliedNcAgreement:
    """The agreement of one definition's implied-Nc table with the coupling-level posterior."""
    cp = coupling_posterior.family_rows().set_index("family")
    cdata = coupling_posterior.data
    rows = []
    for r in ode_tab.to_dict("records"):
        name = r["family"]
        if name not in cp.index:
            continue
        c = cp.loc[name]
        lo, hi = r["smallest_b"], r["largest_b"]
        med = r["implied_median_b"]
        rows.append({
            "family": name, "n_models": int(c["n_models"]), "smallest_b": lo, "largest_b": hi,
            "coupling_median_b": float(c["nc_median_b"]),
            "coupling_ci68_lo_b": float(c["nc_ci68_lo_b"]), "coupling_ci68_hi_b": float(c["nc_ci68_hi_b"]),
            "coupling_ci95_lo_b": float(c["nc_ci95_lo_b"]), "coupling_ci95_hi_b": float(c["nc_ci95_hi_b"]),
            **{k: r[k] for k in ("implied_median_b", "implied_ci68_lo_b", "implied_ci68_hi_b",
                                 "implied_ci95_lo_b", "implied_ci95_hi_b", "frac_cross",
                                 "frac_tax", "frac_bonus", "frac_failed", "n_draws")},
            "observed_turn": _observed_turn(cdata, name) if cdata is not None else False,
            "coupling_inside_data": bool(lo <= float(c["nc_median_b"]) <= hi),
            "implied_inside_data": bool(lo <= med <= hi),
            "agree68": bool(c["nc_ci68_lo_b"] <= med <= c["nc_ci68_hi_b"]),
            "agree95": bool(c["nc_ci95_lo_b"] <= med <= c["nc_ci95_hi_b"]),
            "overlap68": bool(r["implied_ci68_lo_b"] <= c["nc_ci68_hi_b"]
                              and c["nc_ci68_lo_b"] <= r["implied_ci68_hi_b"])})
    if not rows:
        raise CapedynError("the two posteriors share no family; sample both on the same table")
    t = pd.DataFrame(rows)
    ok = t["agree68"]

    def count(col):
        return int(t[col].sum()), int((t[col] & ok).sum())

    (n_in, n_ag), (n_ci, n_ca), (n_ii, n_ia) = (count(c) for c in
                                                ("observed_turn", "coupling_inside_data",
                                                 "implied_inside_data"))
    return ImpliedNcAgreement(
        table=t, n_inside=n_in, n_agree=n_ag, n_coupling_inside=n_ci, n_coupling_agree=n_ca,
        n_implied_inside=n_ii, n_implied_agree=n_ia, n_families=len(t),
        n_agree_all=int(ok.sum()), n_agree95=int((t["observed_turn"] & t["agree95"]).sum()),
        definition=definition,
        config=config)
