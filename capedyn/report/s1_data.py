"""Stage 1, data: load and validate both shipped tables and count what they hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


__all__ = ["DataResult", "compute_data"]


@dataclass(frozen=True)
class DataResult:
    """The validated tables and a per-family count of the base models."""

    base: pd.DataFrame          # the base-model table (scores in percent, params_b in B)
    frontier: pd.DataFrame      # the frontier-model table
    complete: pd.DataFrame      # base models with all five scores
    families: pd.DataFrame      # family, models, complete, smallest_b, largest_b, source

    @property
    def n_labs(self) -> int:
        return int(self.frontier["lab"].nunique())

    def summary(self) -> dict[str, Any]:
        return {"n_base_models": len(self.base), "n_frontier_models": len(self.frontier)}


def compute_data(table: str = "measured") -> DataResult:
    """Load both shipped tables (validated by the loaders; the base-model table named
    ``table``, see :data:`capedyn.data.tables.BASE_TABLES`) and tabulate the families."""
    from ..data.tables import complete_models, load_base_models, load_frontier_models

    df = load_base_models(variant=table)
    fdf = load_frontier_models()
    complete = complete_models(df)
    n_complete = complete.groupby("family", sort=False).size()
    rows = [{"family": fam, "models": len(g), "complete": int(n_complete.get(fam, 0)),
             "smallest_b": float(g["params_b"].min()), "largest_b": float(g["params_b"].max()),
             "source": ", ".join(dict.fromkeys(g["source"].astype(str)))}
            for fam, g in df.groupby("family", sort=False)]
    return DataResult(base=df, frontier=fdf, complete=complete,
                      families=pd.DataFrame(rows))
