"""Stage 7, steering: the authors' published internal-coupling measurements and steering
runs (benchmarks_data/), with the counts that check their claims computed from the tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["SteeringResult", "compute_steering"]


@dataclass(frozen=True)
class SteeringResult:
    """The curated tables and the checks read from them (couplings dimensionless)."""

    coupling: pd.DataFrame     # load_internal_coupling()
    models: pd.DataFrame       # one unit_net row per distinct model (duplicates dropped)
    runs: pd.DataFrame         # load_steering_results(runs=True)
    n_constant_layers: int     # models whose per-layer values are all equal (flagged)
    n_competing: int           # models with at least one competing unit
    n_no_competing: int        # models with none

    def model_rows(self) -> list[dict[str, Any]]:
        return _records(self.models, ("competing_count",))

    def run_rows(self) -> list[dict[str, Any]]:
        return _records(self.runs, ("n_prompts", "n_changed_reported", "n_changed_by_text",
                                    "n_judged_correct"))

    def summary(self) -> dict[str, Any]:
        return {"published_internal_models": len(self.models),
                "published_internal_models_with_competing_units": self.n_competing}


def compute_steering() -> SteeringResult:
    """Read the shipped tables and count what the data card's checks rest on."""
    from ..data.published import load_internal_coupling, load_steering_results

    c = load_internal_coupling()
    units = c[(c["measure"] == "unit_net") & ~c["flags"].str.contains("duplicate_of")]
    models = units.drop_duplicates("model").sort_values(["family", "params_b"],
                                                        kind="stable")
    return SteeringResult(
        coupling=c, models=models.reset_index(drop=True),
        runs=load_steering_results(runs=True),
        n_constant_layers=int(models["flags"].str.contains("per_layer_constant").sum()),
        n_competing=int((models["competing_count"] > 0).sum()),
        n_no_competing=int((models["competing_count"] == 0).sum()))


def _records(df: pd.DataFrame, counts: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows as dicts for the template: missing cells None, count columns as int."""
    out = []
    for rec in df.to_dict("records"):
        rec = {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}
        out.append({k: (int(v) if k in counts and v is not None else v) for k, v in rec.items()})
    return out
