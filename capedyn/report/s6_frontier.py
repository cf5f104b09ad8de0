"""Stage 6, frontier: the SWE-bench → GPQA population line of frontier models, the h-field
(each model's distance off the line), per-lab means, leave-one-lab-out and saturation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..data.tables import BENCHMARKS
from .config import RunConfig
from .s1_data import DataResult
from .s2_coupling import CouplingResult

__all__ = ["FrontierResult", "compute_frontier"]


@dataclass(frozen=True)
class FrontierResult:
    """Every number of the frontier stage (scores and h in GPQA points)."""

    frontier: pd.DataFrame              # the frontier table (for the figure)
    line: Any                           # PopulationLine fitted in this run
    worked_example: dict[str, float]    # ours_pred, ours_h, paper_line_pred, paper_line_h
    labs: list[dict[str, Any]]          # frontier.lab_summary against this run's line
    lolo: dict[str, Any]                # frontier.leave_one_lab_out
    saturation: list[dict[str, Any]]    # benchmark, table, and frontier.saturation's fields
    family_nc_range: tuple[float, float] | None  # span of family Nc within tested sizes (B)
    family_nc_from: str = ""            # which Nc that span is of (stage 4's posterior
                                        #   medians; stage 2's least-squares crossings
                                        #   when the posterior did not run)

    def summary(self) -> dict[str, Any]:
        line = self.line
        return dict(frontier_slope=line.slope, frontier_intercept=line.intercept,
                    frontier_r=line.r, frontier_lolo_mean_mae=self.lolo["mean_mae"],
                    frontier_lab_mean_h={e["lab"]: e["mean_h"] for e in self.labs})


def compute_frontier(data: DataResult, coupling: CouplingResult | None,
                     cfg: RunConfig, posterior: Any = None) -> FrontierResult:
    """The line (``cfg.frontier_bootstrap`` case resamples, ``cfg.seed``), the papers'
    worked example under both lines, lab means, leave-one-lab-out and saturation. The
    cascade's Nc1 is set beside the span of the families' Nc: the coupling-level
    posterior's (``posterior``, stage 4) when present, else stage 2's least-squares
    crossings, named as such."""
    from ..coupling import frontier as fr

    fdf, df = data.frontier, data.base
    ref = fr.PAPER_REFERENCE
    line = fr.population_line(fdf, n_bootstrap=cfg.frontier_bootstrap, seed=cfg.seed)
    we = ref["worked_example"]
    example = {
        "ours_pred": float(line.predict(we["swe"])),
        "ours_h": fr.h_field(we["swe"], we["gpqa"], line.slope, line.intercept),
        "paper_line_pred": ref["slope"] * we["swe"] + ref["intercept"],
        "paper_line_h": fr.h_field(we["swe"], we["gpqa"], ref["slope"], ref["intercept"])}
    labs = fr.lab_summary(fdf, line)
    lolo = fr.leave_one_lab_out(fdf)
    sat = [{"benchmark": c, "table": what, **fr.saturation(table, c)}
           for table, cols, what in ((fdf, ("swe_bench", "gpqa_diamond"), "frontier"),
                                     (df, BENCHMARKS, "base models"))
           for c in cols]
    if posterior is not None:
        span, span_from = posterior.family_nc_range, "coupling-level posterior medians"
    elif coupling is not None:
        span, span_from = coupling.family_nc_range, "per-family least-squares crossings"
    else:
        span, span_from = None, ""
    return FrontierResult(frontier=fdf, line=line, worked_example=example, labs=labs, lolo=lolo,
                          saturation=sat, family_nc_range=span, family_nc_from=span_from)
