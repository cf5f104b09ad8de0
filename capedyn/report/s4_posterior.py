"""Stage 4, posterior: per-family Nc posteriors by NumPyro NUTS, the coupling-level model
and (in a full run) the ODE-level model. The report's one table of each family's Nc is
here (the coupling-level posterior, with its intervals); the crossing of each family's own
least-squares line, from stage 2, is shown beside it under its own name."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from .config import RunConfig
from .s1_data import DataResult
from .s2_coupling import CouplingResult
from .s3_ode import OdeResult

__all__ = ["PosteriorResult", "compute_posterior"]


@dataclass(frozen=True)
class PosteriorResult:
    """The two posteriors (:class:`capedyn.NcPosterior`); ``ode`` is None when skipped.
    ``implied``: the ODE-implied Nc of every family carried through the ODE-level draws
    beside the coupling-level posterior (:class:`capedyn.ImpliedNcAgreement`), None
    when the ODE-level posterior is skipped; ``implied_linear`` the same with the "linear"
    definition (the coupling-level law fitted to the trajectory over the family's sizes).
    ``least_squares``: stage 2's per-family least-squares lines
    (:func:`capedyn.family_couplings`: γ0 and the line's zero crossing ``nc_b``, no
    interval), shown beside the posterior under their own name; None when stage 2 did not
    run."""

    coupling: Any
    ode: Any | None
    implied: Any | None = None
    implied_linear: Any | None = None
    least_squares: pd.DataFrame | None = None

    @property
    def family_nc_range(self) -> tuple[float, float] | None:
        """Smallest and largest coupling-level posterior median Nc (B) among the families
        whose median lies within their own tested sizes; None when there is none."""
        fams = self.coupling.table
        fams = fams[fams["kind"] == "family"]
        if not {"smallest_b", "largest_b"} <= set(fams.columns):
            return None
        med = fams["nc_median_b"].astype(float)
        ok = med[(med >= fams["smallest_b"]) & (med <= fams["largest_b"])]
        return (float(ok.min()), float(ok.max())) if len(ok) else None

    def least_squares_row(self, family: str) -> dict[str, Any] | None:
        """The family's own least-squares line (stage 2), or None."""
        ls = self.least_squares
        if ls is None:
            return None
        hit = ls[ls["family"] == family]
        return hit.iloc[0].to_dict() if len(hit) else None

    def summary(self) -> dict[str, Any]:
        post = self.coupling
        out = {"posterior_coupling": {
            **_headline(post), "seconds": post.runtime_s,
            "families": {r["family"]: [r["nc_median_b"], r["nc_ci95_lo_b"], r["nc_ci95_hi_b"]]
                         for r in post.family_rows().to_dict("records")},
            "family_nc_range_b": _finite_range(self.family_nc_range)}}
        if self.ode is not None:
            out["posterior_ode"] = {**_headline(self.ode), "seconds": self.ode.runtime_s}
        if self.implied is not None:
            out["implied_nc_agreement"] = self.implied.to_dict()
        if self.implied_linear is not None:
            d = self.implied_linear.to_dict()
            out["implied_nc_agreement_linear"] = {k: v for k, v in d.items() if k != "config"}
        return out


def _finite_range(r: tuple[float, float] | None) -> list[float] | None:
    return list(r) if r is not None and all(math.isfinite(v) for v in r) else None


def _headline(post) -> dict[str, Any]:
    pop = post.row("population")
    return {"population_nc_median_b": pop["nc_median_b"],
            "population_nc_ci95_b": [pop["nc_ci95_lo_b"], pop["nc_ci95_hi_b"]],
            "divergences": post.divergences, "rhat_max": float(post.table["rhat_max"].max()),
            "ess_bulk_min": float(post.table["ess_bulk_min"].min())}


def compute_posterior(data: DataResult, ode: OdeResult, cfg: RunConfig,
                      log: Callable[[str], None] = lambda m: None,
                      coupling: CouplingResult | None = None) -> PosteriorResult:
    """Coupling-level NUTS (``cfg.nuts_*``) and, when ``cfg.ode_posterior``, ODE-level NUTS
    with the universal field held at the all-family fit of stage 3. ``coupling``: stage 2's
    result, whose per-family least-squares lines are carried for the report's table."""
    from ..inference import sampling as po

    log("posterior: coupling-level NUTS")
    post = po.sample_posterior(data.base, model="coupling", chains=cfg.nuts_chains,
                               samples=cfg.nuts_samples, warmup=cfg.nuts_warmup, seed=cfg.seed,
                               progress=False)
    ode_post = None
    if cfg.ode_posterior:
        log("posterior: ODE-level NUTS")
        ode_post = po.sample_posterior(data.base, model="ode", fit=ode.all_families,
                                       chains=cfg.ode_nuts_chains, samples=cfg.ode_nuts_samples,
                                       warmup=cfg.ode_nuts_warmup, seed=cfg.seed,
                                       progress=False)
    implied = implied_linear = None
    if ode_post is not None:
        from ..inference.implied_nc_agreement import implied_nc_agreements

        log("posterior: ODE-implied Nc through the ODE-level draws")
        both = implied_nc_agreements(ode_post, post, seed=cfg.seed,
                                     definitions=("crossing", "linear"))
        implied, implied_linear = both["crossing"], both["linear"]
    return PosteriorResult(coupling=post, ode=ode_post, implied=implied,
                           implied_linear=implied_linear,
                           least_squares=coupling.family_nc if coupling is not None else None)
