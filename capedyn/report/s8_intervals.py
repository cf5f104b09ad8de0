"""Stage 8, intervals: the held-out predictions scored as forecasts. Each method that is
cheap to refit gets conformal intervals on P2 (leave one family out; the intervals from
the training families' own leave-one-family-out residuals, :mod:`capedyn.evaluation.intervals`),
scored by coverage, mean width and interval score at 50% and 90%; and the ledger of how
many outer-split evaluations each design went through
(:mod:`capedyn.evaluation.ledger`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from .config import RunConfig
from .s1_data import DataResult

__all__ = ["IntervalsResult", "compute_intervals", "INTERVAL_METHODS", "INTERVAL_LEVELS"]

INTERVAL_METHODS: tuple[str, ...] = ("logit_rate", "pca_capability", "latent_skill",
                                     "poly1", "poly2", "poly3", "poly4", "poly2_anchored",
                                     "linear_ode")
"""Methods at their fixed settings whose intervals the report computes: those whose
refit per inner family takes well under a second (114 s for all nine on P2, measured on
two shared cores). The gradient-fitted ODEs (``coupling_ode``, ``shared_ode``) refit for half
a minute or more per inner family (about 110 refits each on P2), SINDy runs its own
cross-validation inside every refit (more than six minutes for ``sindy_ode`` alone) and the
ensemble refits every member; ``capedyn intervals --methods coupling_ode`` computes theirs."""

INTERVAL_LEVELS: tuple[float, ...] = (0.5, 0.9)


@dataclass(frozen=True)
class IntervalsResult:
    """The interval table (None when skipped), what was run and what it cost, and the
    design ledger."""

    table: pd.DataFrame | None     # per method: coverage_50/90, width_50/90 (points),
                                   # interval_score_50/90, n_points, mean_rel_mae_pct
    methods: tuple[str, ...]
    levels: tuple[float, ...]
    families: tuple[str, ...]      # held-out families
    failed: pd.DataFrame
    seconds: float | None
    skipped: str                   # why the table was not computed ("" when it was)
    ledger: pd.DataFrame           # method, design, p2_evaluations

    def summary(self) -> dict[str, Any]:
        if self.table is None:
            return {"intervals_seconds": None}
        t = self.table.set_index("method")
        return {"intervals_seconds": self.seconds,
                "intervals_coverage_90": t["coverage_90"].to_dict(),
                "intervals_coverage_50": t["coverage_50"].to_dict(),
                "intervals_score_90": t["interval_score_90"].to_dict()}


def compute_intervals(data: DataResult, cfg: RunConfig,
                      log: Callable[[str], None] = lambda m: None,
                      progress: bool = False) -> IntervalsResult:
    """P2 with conformal intervals for :data:`INTERVAL_METHODS` (skipped in a quick run),
    and the design ledger."""
    from ..evaluation.intervals import interval_benchmark
    from ..evaluation.ledger import design_ledger

    ledger = design_ledger()
    if cfg.quick:
        return IntervalsResult(None, INTERVAL_METHODS, INTERVAL_LEVELS, (), pd.DataFrame(),
                               None, "quick run", ledger)
    res = interval_benchmark(data.base, methods=list(INTERVAL_METHODS),
                             levels=INTERVAL_LEVELS, progress=progress)
    families = tuple(dict.fromkeys(res.points["family"])) if len(res.points) else ()
    log(f"intervals: {len(INTERVAL_METHODS)} methods on {len(families)} families "
        f"in {res.seconds:.0f}s")
    return IntervalsResult(res.table, INTERVAL_METHODS, INTERVAL_LEVELS, families, res.failed,
                           res.seconds, "", ledger)
