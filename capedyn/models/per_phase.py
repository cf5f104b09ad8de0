"""Analyses built on the coupling-ODE estimator: the per-phase (tax vs bonus) fits and the
scores the estimator's default penalties were selected by."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._jax import scoped_x64
from .._errors import CapedynError
from ..dynamics.state import N_STATE, SHORT, from_state, to_state
from ..data.tables import BENCHMARKS, complete_models
from .coupling_ode import PAPER_REFERENCE, CouplingODE
from ..dynamics.trajectory import trajectories


# --------------------------------------------------------------------------- analyses

@scoped_x64
def per_phase_analysis(df: pd.DataFrame, family: str = "Pythia", split_b: float = 1.2,
                       sensitivity: Sequence[float] = (0.1, 1.0, 3.0), **config) -> dict:
    """Fit the field separately on a family's tax models (≤ ``split_b`` billions: Pythia
    70M–1B) and bonus models (the rest: Pythia 1.4B–12B, integrated from 1.4B so the fitted
    points are 2.8B–12B), and compare the HS→TQA coupling of the two fits.

    Each phase has four models, so each fit is a linear field (``degree=1``, no running
    coupling, no family source) under an L2 penalty (``l2=0.3`` unless overridden): 30
    coefficients against 15 residuals, so the penalty, not the data, fixes most of them.
    ``l2=0.3`` is about the strongest penalty at which each phase still fits its own models
    to ~1.5%; stronger penalties pull both phases to the common drift and the ratio to 1, so
    the result is reported again for each ``sensitivity`` penalty. The HS→TQA coefficient is reported twice:
    ``latent`` = ∂(dz_TQA/dx)/∂z_HS, the linear coefficient of z_HS in the TQA equation; and
    ``score`` = ∂(dTQA/dx)/∂HS = latent · s'_TQA / s'_HS at the phase's mean state (TQA
    points per decade per HS point), the unit of the paper's 0.12 → 0.75. The difference of
    the two 5×5 linear matrices (latent, and score-space Jacobians) is summarised by its
    singular values; rank-1-ness = s1 / Σ s."""
    from ..dynamics.state import FLOORS, CEILING
    rows = complete_models(df[df["family"] == family]).sort_values("params_b")
    if len(rows) < 4:
        raise CapedynError(f"per-phase analysis needs ≥ 4 complete models of '{family}', "
                           f"found {len(rows)}")
    cfg = dict(degree=1, coupling="none", l2=0.3, l2_const=1e-3, l2_h=1e6, steps=800,
               progress=False)
    cfg.update(config)
    tax = rows[rows["params_b"] <= split_b]
    bonus = rows[rows["params_b"] > split_b]
    result: dict[str, Any] = {"family": family, "config": cfg,
                              "reference_paper": PAPER_REFERENCE["hs_to_tqa_coefficient"]}
    mats = {}
    for phase, part in (("tax", tax), ("bonus", bonus)):
        if len(part) < 2:
            raise CapedynError(f"phase '{phase}' of {family} has fewer than 2 models")
        est = CouplingODE(**cfg).fit(part)
        lin = np.asarray(est.field_.masked_coef())[:, 1:1 + N_STATE]
        zbar = to_state(part[list(BENCHMARKS)].to_numpy(float)).mean(axis=0)
        u = 1 / (1 + np.exp(-zbar))
        slope = (CEILING - FLOORS) * u * (1 - u)
        jac = slope[:, None] * lin / slope[None, :]
        hs, tqa = BENCHMARKS.index("hellaswag"), BENCHMARKS.index("truthfulqa")
        mats[phase] = (lin, jac)
        result[phase] = {
            "models": list(part["model"]), "fit_score": est.error_summary(part),
            "hs_to_tqa_latent": float(lin[tqa, hs]), "hs_to_tqa_score": float(jac[tqa, hs]),
            "linear_matrix_latent": lin.tolist(), "jacobian_score": jac.tolist(),
            "mean_state_scores": [float(v) for v in from_state(zbar)]}
    for kind, idx in (("latent", 0), ("score", 1)):
        a, b = result["tax"][f"hs_to_tqa_{kind}"], result["bonus"][f"hs_to_tqa_{kind}"]
        sv = np.linalg.svd(mats["bonus"][idx] - mats["tax"][idx], compute_uv=False)
        result[f"ratio_{kind}"] = float(b / a) if abs(a) > 1e-12 else float("nan")
        result[f"difference_singular_values_{kind}"] = sv.tolist()
        result[f"difference_rank1_share_{kind}"] = float(sv[0] / sv.sum())
    result["benchmarks"] = [SHORT[b] for b in BENCHMARKS]
    result["sensitivity"] = []
    for l2 in sensitivity:
        r = per_phase_analysis(df, family, split_b, sensitivity=(), **{**config, "l2": l2})
        result["sensitivity"].append({
            "l2": l2, **{f"{p}_hs_to_tqa_{k}": r[p][f"hs_to_tqa_{k}"]
                         for p in ("tax", "bonus") for k in ("latent", "score")},
            "ratio_latent": r["ratio_latent"], "ratio_score": r["ratio_score"],
            "difference_rank1_share_score": r["difference_rank1_share_score"]})
    return result


def tuning_scores(df: pd.DataFrame | None = None, exclude: Sequence[str] = ("Llama-2",),
                  anchor: str = "Pythia", **config) -> dict:
    """The scores the defaults were chosen by, for one configuration.

    ``exclude`` families are dropped from the table first (Llama-2: the P1 target never
    touches tuning). Then, over every remaining family with ≥ 3 complete models:
    ``lofo`` = relative MAE % (100·Σ|err| / Σ actual) when fitting all other families and predicting it from
    its smallest model; ``anchor_to`` = the same when fitting ``anchor`` (Pythia) alone;
    ``anchor_in_sample`` = the anchor fit's in-sample mean relative error %. Slow (one fit
    per family); a benchmark, not a test."""
    from ..data.tables import load_base_models
    df = load_base_models() if df is None else df
    df = df[~df["family"].isin(list(exclude))].reset_index(drop=True)
    cfg = {**config, "progress": False}
    trajs = {t.family: t for t in trajectories(df)}
    targets = [f for f, t in trajs.items() if len(t.models) >= 3]

    def rel_mae(est, fam):
        t = trajs[fam]
        init = {"params_b": t.params_b[0], **dict(zip(BENCHMARKS, t.scores[0]))}
        pred = est.predict(init, t.params_b[1:])[list(BENCHMARKS)].to_numpy()
        return float(100 * np.abs(pred - t.scores[1:]).sum() / t.scores[1:].sum())

    anchor_fit = CouplingODE(**cfg).fit(df[df["family"] == anchor])
    out = {"config": cfg, "excluded": list(exclude),
           "anchor_in_sample": anchor_fit.error_summary(df[df["family"] == anchor])["mean_rel_error_pct"],
           "anchor_to": {f: rel_mae(anchor_fit, f) for f in targets if f != anchor},
           "lofo": {f: rel_mae(CouplingODE(**cfg).fit(df[df["family"] != f]), f) for f in targets}}
    out["anchor_to_mean"] = float(np.mean(list(out["anchor_to"].values())))
    out["lofo_mean"] = float(np.mean(list(out["lofo"].values())))
    return out
