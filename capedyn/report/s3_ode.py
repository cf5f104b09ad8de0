"""Stage 3, ode: the coupling ODE fit on every complete family, on Pythia alone (the
papers' in-sample check), and, in a full run, the per-phase (tax vs bonus) fits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..data.tables import BENCHMARKS
from .config import RunConfig
from .s1_data import DataResult

__all__ = ["OdeResult", "compute_ode", "in_sample_errors"]


@dataclass(frozen=True)
class OdeResult:
    """Both fitted models, their in-sample errors (scores in points, errors in % of the
    measured score) and the per-phase coefficients (None when skipped: quick runs)."""

    base: pd.DataFrame              # the base-model table (for the figure)
    all_families: Any               # CouplingODE fitted on every complete family
    families: pd.DataFrame          # family, models, start, nc_b, h_norm, mae, rel_mae_pct
    in_sample: dict[str, Any]       # summarise_errors over every fitted family
    pythia: Any                     # CouplingODE fitted on Pythia alone
    pythia_errors: dict[str, Any]   # summarise_errors of the Pythia-only fit
    per_phase: dict[str, Any] | None  # per_phase_analysis, or None (skipped)

    @property
    def gamma0(self) -> float:
        """γ0 of the all-family fit's running coupling (per decade)."""
        return float(self.all_families.field_.gamma0)

    @property
    def population_nc_b(self) -> float:
        return 10 ** (self.all_families.mu_nc_ - 9)

    def summary(self) -> dict[str, Any]:
        m = self.all_families
        out: dict[str, Any] = {
            "pythia_in_sample_mean_rel_error_pct": self.pythia_errors["mean_rel_error_pct"],
            "ode_all_families": {"n_families": len(m.families_), "loss": m.loss_,
                                 "mse_points2": m.mse_, "population_nc_b": self.population_nc_b,
                                 "in_sample_rel_mae_pct": self.in_sample["rel_mae_pct"]}}
        if self.per_phase is not None:
            out["per_phase_ratio_score"] = self.per_phase["ratio_score"]
        return out


def compute_ode(data: DataResult, cfg: RunConfig, log: Callable[[str], None] = lambda m: None,
                progress: bool = False) -> OdeResult:
    """Fit the coupling ODE on every complete family and on Pythia alone (``cfg.ode_steps``,
    ``cfg.pythia_steps``), and the per-phase fits unless ``cfg.quick``."""
    from ..models.coupling_ode import CouplingODE, summarise_errors

    df = data.base
    log("ode: fit on every complete family")
    model = CouplingODE(**cfg.steps("ode"), seed=cfg.seed, progress=progress).fit(df)
    errs = in_sample_errors(model, df)
    rows = []
    for fam, p in model.families_.items():
        e = summarise_errors(errs[errs["family"] == fam])
        rows.append({"family": fam, "models": len(model.starts_[fam]["models"]),
                     "start": model.starts_[fam]["model"], "nc_b": p.critical_scale_b,
                     "h_norm": float(np.linalg.norm(np.asarray(p.h))),
                     "mae": e["mae"], "rel_mae_pct": e["rel_mae_pct"]})
    total = summarise_errors(errs)

    py = df[df["family"] == "Pythia"]
    log("ode: Pythia-only fit")
    pythia = CouplingODE(**cfg.steps("pythia"), seed=cfg.seed, progress=progress).fit(py)
    pe = summarise_errors(in_sample_errors(pythia, py))

    ph = None
    if not cfg.quick:
        from ..models.per_phase import per_phase_analysis

        log("ode: per-phase analysis (Pythia tax vs bonus models)")
        ph = per_phase_analysis(df)
    return OdeResult(base=df, all_families=model, families=pd.DataFrame(rows), in_sample=total,
                     pythia=pythia, pythia_errors=pe, per_phase=ph)


_PAD = 8  # predictions are padded to a fixed number of sizes: one compiled solve for all


def _predict_padded(model, start: dict, sizes: Sequence[float], family: str | None,
                    pad: int = _PAD) -> np.ndarray:
    """Scores (len(sizes), 5) predicted from a family's start; the size list is padded to a
    multiple of ``pad`` with its last value so every call has the same shape (one compile)."""
    sizes = np.asarray(sizes, dtype=float)
    n = len(sizes)
    m = pad * max(1, -(-n // pad))
    padded = np.concatenate([sizes, np.full(m - n, sizes[-1])])
    init = {"params_b": start["params_b"], **dict(zip(BENCHMARKS, start["scores"]))}
    pred = model.predict(init, padded, family=family)
    return pred[list(BENCHMARKS)].to_numpy(dtype=float)[:n]


def in_sample_errors(model, df: pd.DataFrame) -> pd.DataFrame:
    """Long table (family, model, benchmark, pred, actual) of each fitted family integrated
    from its own smallest complete model with its fitted parameters."""
    from ..data.tables import complete_models

    full = complete_models(df)
    rows = []
    for fam, start in model.starts_.items():
        g = full[full["family"] == fam].sort_values("params_b")
        g = g[g["params_b"] > start["params_b"]]
        if g.empty:
            continue
        pred = _predict_padded(model, start, g["params_b"].to_numpy(), fam)
        actual = g[list(BENCHMARKS)].to_numpy(dtype=float)
        for i, name in enumerate(g["model"]):
            for k, b in enumerate(BENCHMARKS):
                rows.append({"family": fam, "model": name, "benchmark": b,
                             "pred": float(pred[i, k]), "actual": float(actual[i, k])})
    return pd.DataFrame(rows)
