"""The ODE-implied critical scale carried through an ODE-level posterior: every kept draw
of a family's parameters (log10 Nc, h, and the true start scores and γ0 when the posterior
samples them) is solved in one vmapped batch, and each family's implied Nc is summarised
by its median and 68%/95% intervals in billions of parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._errors import CapedynError
from .._jax import scoped_x64
from ..data.tables import BENCHMARKS, log10_params
from .implied_nc import X_MAX, X_MIN, ImpliedNcBatch, _implied_nc_batches

__all__ = ["implied_nc_posterior"]

def _posterior_field(ode_posterior, fit):
    """The field an ODE-level posterior was sampled with (or ``fit``'s, when given)."""
    from .sampling import _resolve_fit

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
    from .result import QUANTILES

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
    from ..dynamics.state import to_state

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


