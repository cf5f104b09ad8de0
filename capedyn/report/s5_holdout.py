"""Stage 5, holdout: SINDy's sparse HellaSwag equation on Pythia, and the held-out family
benchmark (P1: train on Pythia, predict Llama-2; P2: leave one family out), every method
on the same splits with nested selection of its settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from ..data.tables import BENCHMARKS
from .config import RunConfig
from .s1_data import DataResult

__all__ = ["HoldoutResult", "SindyFit", "compute_holdout", "holdout_methods",
           "LOFO_MIN_MODELS", "QUICK_LOFO_FAMILIES"]

_SMALL_SINDY_GRID = {"thresholds": (0.03, 0.3), "alphas": (0.1, 10.0)}

LOFO_MIN_MODELS = 3
"""P2 holds out a family only when it has at least this many complete models."""

QUICK_LOFO_FAMILIES = 3
"""A quick run's P2 holds out only the first this-many eligible families (table order);
each held-out family costs a coupling-ODE compile and fit, which dominates a quick run."""


@dataclass(frozen=True)
class SindyFit:
    """One SINDy fit on Pythia: its HellaSwag equation and the selected settings."""

    variant: str            # "cv", "one_se" or "fraction"
    hs_equation: str        # the HS equation as pysindy prints it
    terms_kept: int         # non-zero terms of the HS equation
    library_size: int       # terms in the library
    n_terms: int            # non-zero terms over all five equations
    threshold: float
    alpha: float


@dataclass(frozen=True)
class HoldoutResult:
    """SINDy fits and both benchmark protocols (errors in % of the measured score and in
    score points)."""

    sindy: dict[str, SindyFit]      # by variant: "cv", "one_se", "fraction"
    methods: tuple[str, ...]        # benchmark methods, in the benchmark's order
    p1: Any                         # capedyn.evaluation.heldout result of P1 (with curves)
    p2: Any                         # capedyn.evaluation.heldout cross-validation result of P2

    @property
    def p1_rel_mae_pct(self) -> dict[str, float | None]:
        """P1 relative MAE % by method (None when the method did not finish)."""
        return {r.method: (r.rel_mae_pct if r.status == "ok" else None)
                for r in self.p1.table.itertuples(index=False)}

    @property
    def p2_by_family(self) -> pd.DataFrame:
        """P2 relative MAE %: one row per held-out family, one column per method."""
        wide = self.p2.table.pivot(index="family", columns="method", values="rel_mae_pct")
        return wide[[m for m in self.methods if m in wide.columns]]

    @property
    def p2_failed(self) -> pd.DataFrame:
        """P2 rows (family, method, status, message) of the fits that did not finish."""
        return self.p2.table[self.p2.table["status"] != "ok"]

    @property
    def p2_selected(self) -> dict[str, list[tuple[str, Any]]]:
        """Method → [(held-out family, settings chosen inside its training set)]."""
        sel = self.p2.selections
        if not len(sel):
            return {}
        return {m: [(r.family, r.best_params) for r in g.itertuples(index=False)]
                for m, g in sel.groupby("method", sort=False)}

    def summary(self) -> dict[str, Any]:
        summ = self.p2.summary
        return dict(
            llama2_rel_mae_pct=dict(self.p1_rel_mae_pct),
            lofo_mean_rel_mae_pct={s.method: s.mean_rel_mae_pct for s in summ.itertuples(index=False)},
            lofo_median_rel_mae_pct={s.method: s.median_rel_mae_pct
                                     for s in summ.itertuples(index=False)},
            lofo_families=list(self.p2.splits["family"]) if len(self.p2.splits) else [],
            sindy_pythia_terms={"cv": self.sindy["cv"].n_terms,
                                "one_se": self.sindy["one_se"].n_terms})


def holdout_methods(cfg: RunConfig) -> dict[str, Callable[[], Any]]:
    """Every benchmark method with nested selection; the gradient-fitted ones with this
    run's step budget and seed (quick runs: short budgets and small grids)."""
    from ..evaluation.heldout import configured_methods

    overrides = {"coupling_ode": {**cfg.steps("holdout"), "seed": cfg.seed, "progress": False}}
    grids = None
    if cfg.quick:  # small grids and budgets: the CV solves and inner fits dominate
        overrides.update(sindy_ode=_SMALL_SINDY_GRID, sindy_ode_1se=_SMALL_SINDY_GRID,
                         shared_ode={"steps": int(cfg.holdout_steps or 60)})
        # the gradient-fitted ODEs keep their default settings here (no nested selection):
        # a smoke test of the pipeline, not the analysis
        grids = {"logit_rate": {"floor_slack": [10.0, 5.0, 0.0]},
                 "pca_capability": {"n_components": [2, 1], "floor_slack": [10.0, 5.0]},
                 "latent_skill": {"n_skills": [2, 1], "floor_slack": [10.0, 5.0]},
                 "poly_anchored": {"degree": [2, 1, 3]}}
    return configured_methods(overrides, grids=grids)


def compute_holdout(data: DataResult, cfg: RunConfig, log: Callable[[str], None] = lambda m: None,
                    progress: bool = False) -> HoldoutResult:
    """SINDy on Pythia (three variants), then P1 and P2 with :func:`holdout_methods`."""
    from ..evaluation import heldout as ho
    from ..models.sindy import SparseCouplingODE

    df = data.base
    py = df[df["family"] == "Pythia"]
    small = _SMALL_SINDY_GRID if cfg.quick else {}
    fits = {"cv": SparseCouplingODE().fit(py),
            "fraction": SparseCouplingODE(state="fraction").fit(py),
            "one_se": SparseCouplingODE(selection="1se", **small).fit(py)}
    hs = BENCHMARKS.index("hellaswag")
    sindy = {k: SindyFit(variant=k, hs_equation=m.equations()[hs],
                         terms_kept=len(m.equation_terms("hellaswag")),
                         library_size=int(m.coef_.shape[1]), n_terms=int(m.n_terms_),
                         threshold=m.threshold_, alpha=m.alpha_)
             for k, m in fits.items()}

    methods = holdout_methods(cfg)
    log("holdout: P1 (train Pythia, predict Llama-2), every method")
    r1 = ho.p1(df, methods=methods, curves=True, progress=False)
    log("holdout: P2 (leave one family out), every method")
    r2 = ho.crossval(df, families=_lofo_families(df, cfg), methods=methods,
                     min_models=LOFO_MIN_MODELS, progress=progress)
    return HoldoutResult(sindy=sindy, methods=tuple(methods), p1=r1, p2=r2)


def _lofo_families(df: pd.DataFrame, cfg: RunConfig) -> list[str] | None:
    """Families P2 is asked to hold out: all (None), or in a quick run the first
    :data:`QUICK_LOFO_FAMILIES` eligible ones followed by the ineligible ones (which P2
    lists as skipped, as in a full run)."""
    if not cfg.quick:
        return None
    from ..data.tables import families

    eligible = families(df, min_models=LOFO_MIN_MODELS, complete=True)
    return eligible[:QUICK_LOFO_FAMILIES] + [f for f in families(df) if f not in eligible]
