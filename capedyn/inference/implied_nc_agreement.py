"""The ODE-implied critical scale beside the coupling-level posterior: for every family in
both, whether the implied median lies inside the coupling-level 68% (and 95%) interval,
counted over the families whose data cross from tax to bonus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .._errors import CapedynError
from .implied_nc import DEFINITIONS, X_MAX, X_MIN
from .implied_nc_posterior import _implied_tables

__all__ = ["ImpliedNcAgreement", "implied_nc_agreement", "implied_nc_agreements"]

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
        from .._json import to_jsonable

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
