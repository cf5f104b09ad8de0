"""The explorer's per-view computations: what each page shows (Analyze: phase, nearest
models, h-field, the ODE's predictions with their bands; the ODE explorer's trajectories
and slider ranges; the phase map, frontier, Nc forest, held-out heat map and predictions
tracker), each a function of the :class:`~capedyn.explore.core.Explorer` state, so every
view is testable without a browser. Units as in :mod:`capedyn.explore.core`."""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .._jax import scoped_x64

from .core import (
    BAND_QUANTILES, BENCHMARKS, CONFORMAL_LEVEL, GRID_POINTS, LABELS, N_BAND_DRAWS, SCALE_FACTORS,
    TRANSITION_BAND, Explorer, InputProblem, ModelInput,
)


def phase_of(hs: float, tqa: float, params_b: float | None, ex: Explorer) -> dict[str, Any]:
    """Three-way phase: the algebraic classifier's tax/bonus, read as the transition when
    TQA is within :data:`TRANSITION_BAND` points of TQA_c; with a size, also the sign of
    γ12 the population fit gives there."""
    from ..coupling.phase import phase_classifier

    pc = phase_classifier(hs, tqa)
    phase = "transition" if abs(pc.margin) <= TRANSITION_BAND else pc.phase
    side = "above" if pc.margin > 0 else "below"
    reason = (f"TruthfulQA {tqa:g} is {abs(pc.margin):.2f} points {side} the critical "
              f"TQA_c = sqrt(0.187·HS) = {pc.tqa_critical:.2f}")
    if phase == "transition":
        reason += f" (within {TRANSITION_BAND:g} point: at the phase boundary)"
    out = {"phase": phase, "classifier_phase": pc.phase, "tqa_critical": pc.tqa_critical,
           "margin": pc.margin, "reason": reason}
    if params_b is not None:
        fit = ex.coupling_fit
        g = float(fit.predict(params_b))
        out.update(gamma12=g, regime="bonus" if g > 0 else "tax", nc_b=float(fit.nc_b),
                   gamma12_reading=(f"population fit γ12 = {fit.A:.3f}·log10 N {fit.B:+.3f} "
                                    f"gives γ12 = {g:+.3f} at {params_b:g}B "
                                    f"({'bonus' if g > 0 else 'tax'}; the population line "
                                    f"crosses zero at {fit.nc_b:.3g}B, its population Nc, "
                                    "not any one family's)"))
    return out


def nearest_models(ex: Explorer, inp: ModelInput, k: int = 5) -> pd.DataFrame:
    """The ``k`` known models closest to the input: base models by the RMS difference over
    the scores given (plus 10 points per decade of size when the size is given), frontier
    models by the distance in (SWE, GPQA)."""
    if inp.scores:
        cols = list(inp.scores)
        rows = ex.base.dropna(subset=cols).copy()
        diff = rows[cols].to_numpy(float) - np.array([inp.scores[c] for c in cols])
        d2 = (diff ** 2).mean(axis=1)
        if inp.params_b is not None:
            d2 = d2 + (10.0 * np.log10(rows["params_b"].to_numpy(float) / inp.params_b)) ** 2
        rows["distance"] = np.sqrt(d2)
        keep = ["model", "family", "params_b", *BENCHMARKS, "distance"]
    else:
        rows = ex.frontier.copy()
        rows["distance"] = np.hypot(rows["swe_bench"] - inp.swe, rows["gpqa_diamond"] - inp.gpqa)
        keep = ["model", "lab", "swe_bench", "gpqa_diamond", "release", "distance"]
    return rows.sort_values("distance", kind="stable").head(k)[keep].reset_index(drop=True)


def hfield_of(ex: Explorer, swe: float, gpqa: float) -> dict[str, Any]:
    from ..coupling.frontier import h_direction, h_field, is_specialist, reading

    line = ex.line
    h = h_field(swe, gpqa, line.slope, line.intercept)
    return {"h": h, "predicted_gpqa": line.slope * swe + line.intercept,
            "reading": reading(h), "direction": h_direction(h), "specialist": is_specialist(h),
            "line": line.label}


@scoped_x64
def ode_prediction(ex: Explorer, inp: ModelInput, bands: bool = True) -> dict[str, Any]:
    """Scores at 2x, 4x and 10x the size from the fitted ODE (an unseen family: Nc and h
    from the transfer rule), with its band: the 90% conformal interval of all five
    benchmarks once the calibration job is done (:func:`conformal_band`); until then the
    Nc-posterior band when it is ready, labelled as such."""
    model = ex.model
    start = {"params_b": inp.params_b, **inp.scores}
    sizes = np.array([f * inp.params_b for f in SCALE_FACTORS])
    central = model.predict(start, sizes)
    from ..models._extrapolation import check_prediction

    checks = check_prediction(getattr(model, "training_range_", None),
                              [inp.scores[b] for b in BENCHMARKS], inp.params_b, sizes)
    central["extrapolated"] = [bool(checks["start_outside"]) or float(s) in checks["sizes_outside"]
                               for s in sizes]
    out = {"table": central, "band": None, "band_note": "", "notes": checks["notes"]}
    if not bands:
        return out
    cal = ex.conformal_job.result if ex.conformal_job.state == "done" else None
    if cal is not None:
        out["band"] = conformal_band(cal, start, sizes)
        out["band_label"] = (f"{100 * CONFORMAL_LEVEL:.0f}% conformal interval "
                             "(leave-one-family-out residuals)")
        out["band_note"] = (f"{100 * CONFORMAL_LEVEL:.0f}% conformal interval from "
                            f"leave-one-family-out residuals: the fit refitted without each "
                            f"of {cal.n_folds} training families predicted that family from "
                            "its smallest model; their relative errors, rescaled per decade "
                            "of extrapolation, bound this new family's scores (CV+)")
        return out
    cj = ex.conformal_job
    pending = (f"the conformal interval is being calibrated ({100 * cj.progress:.0f}%, "
               f"{cj.elapsed:.0f} s so far; one refit per training family)"
               if cj.state == "running" else f"conformal interval unavailable: {cj.error}"
               if cj.state == "failed" else "conformal interval: not started")
    out["band_note"] = pending
    draws = ex.nc_draws(None)
    if draws is None:
        job = ex.posterior_job
        out["band_note"] = pending + "; " + (f"posterior band: the Nc posterior is being sampled "
                            f"({job.elapsed:.0f} s so far)" if job.state == "running" else
                            f"posterior band unavailable: {job.error}" if job.state == "failed"
                            else "posterior band: not started")
        return out
    lo, hi = _band(model, np.array([inp.scores[b] for b in BENCHMARKS]), inp.params_b,
                   sizes, draws)
    out["band"] = (lo, hi)
    out["band_label"] = (f"{100 * (BAND_QUANTILES[1] - BAND_QUANTILES[0]):.0f}% Nc-posterior band "
                         "(mainly TruthfulQA)")
    out["band_note"] = pending + "; meanwhile " + (f"{100 * (BAND_QUANTILES[1] - BAND_QUANTILES[0]):.0f}% band: "
                        f"{draws.size} posterior-predictive Nc draws of an unseen family "
                        "pushed through the fitted field (h at the transfer rule's value); Nc "
                        "enters through TruthfulQA's coupling to HellaSwag, so the other "
                        "bands are narrow")
    return out


def conformal_band(calibration, start: Mapping[str, float], sizes: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper), each (sizes, 5) in points: the :data:`CONFORMAL_LEVEL` conformal
    interval of a new family's five scores from ``start`` (its size and scores)."""
    from ..models._intervals import interval_columns
    from .._conformal import level_tag

    cols = interval_columns(calibration, start, sizes, (CONFORMAL_LEVEL,))
    t = level_tag(CONFORMAL_LEVEL)
    return (np.column_stack([cols[f"{b}_lo_{t}"] for b in BENCHMARKS]),
            np.column_stack([cols[f"{b}_hi_{t}"] for b in BENCHMARKS]))


_BAND_FN: dict[str, Any] = {}


def _band_solver():
    if "fn" not in _BAND_FN:
        import equinox as eqx
        import jax

        from ..dynamics.field import FamilyParams, solve_unchecked

        def many(field, z0, x0, xs, log10_nc, h):
            def one(lnc):
                return solve_unchecked(field, z0, x0, xs, FamilyParams(lnc, h))
            return jax.vmap(one)(log10_nc)

        _BAND_FN["fn"] = eqx.filter_jit(many)
    return _BAND_FN["fn"]


@scoped_x64
def _band(model, scores0: np.ndarray, p0: float, sizes: np.ndarray, draws: np.ndarray):
    import jax.numpy as jnp

    from ..dynamics.state import from_state, to_state
    from ..data.tables import log10_params

    fam = model.family_params(scores0, p0)
    xs = jnp.asarray(log10_params(np.sort(sizes)))
    pad = jnp.concatenate([xs, jnp.full((-xs.shape[0]) % 8, xs[-1])])
    zs, ok = _band_solver()(model.field_, jnp.asarray(to_state(scores0)),
                            jnp.asarray(float(log10_params(p0))), pad,
                            jnp.asarray(draws, float), jnp.asarray(fam.h))
    zs, ok = np.asarray(zs)[:, : xs.shape[0]], np.asarray(ok)
    if not ok.any():
        raise InputProblem("every ODE solve of the posterior band failed")
    scores = np.asarray(from_state(zs[ok]))  # (draws, sizes, 5)
    lo, hi = np.quantile(scores, BAND_QUANTILES, axis=0)
    return lo, hi


def analyze(ex: Explorer, inp: ModelInput, bands: bool = True) -> dict[str, Any]:
    """Everything the Analyze page shows for one model (messages instead of exceptions)."""
    out: dict[str, Any] = {"input": inp, "phase": None, "hfield": None, "ode": None,
                           "notes": []}
    if "hellaswag" in inp.scores and "truthfulqa" in inp.scores:
        out["phase"] = phase_of(inp.scores["hellaswag"], inp.scores["truthfulqa"],
                                inp.params_b, ex)
    elif inp.scores:
        out["notes"].append("phase: needs HellaSwag and TruthfulQA")
    if inp.swe is not None and inp.gpqa is not None:
        out["hfield"] = hfield_of(ex, inp.swe, inp.gpqa)
    out["nearest"] = nearest_models(ex, inp) if (inp.scores or inp.swe is not None) else None
    if inp.complete:
        try:
            out["ode"] = ode_prediction(ex, inp, bands=bands)
        except Exception as exc:  # a failed solve is a message, not a trace
            out["notes"].append(f"ODE prediction failed: {exc}")
    elif inp.scores:
        missing = [LABELS[b] for b in BENCHMARKS if b not in inp.scores]
        out["notes"].append("ODE prediction at 2x, 4x, 10x: needs the size and all five "
                            f"scores (missing: {', '.join(missing) or 'size'})")
    return out


# --------------------------------------------------------------------------- ODE explorer

def nc_bounds(ex: Explorer) -> tuple[float, float]:
    """Slider range of log10 Nc in billions: 0.01B-1000B, widened to hold every fitted
    family's value with half a decade to spare."""
    v = np.array([float(np.asarray(p.log10_nc)) - 9.0 for p in ex.model.families_.values()])
    return (float(min(-2.0, np.floor(2 * (v.min() - 0.5)) / 2)),
            float(max(3.0, np.ceil(2 * (v.max() + 0.5)) / 2)))


def source_bounds(ex: Explorer) -> tuple[float, float]:
    """Slider range of the source terms h: the fitted families' range, widened."""
    h = np.stack([np.asarray(p.h) for p in ex.model.families_.values()])
    m = float(max(1.0, 1.5 * np.abs(h).max()))
    return -round(m, 1), round(m, 1)


@scoped_x64
def trajectories(ex: Explorer, start: Mapping[str, float], family: str | None,
                 log10_nc: float, h: Sequence[float], up_to_b: float | None = None) -> pd.DataFrame:
    """The ODE's trajectory from ``start`` (params_b + five scores) with the fitted field and
    the given family parameters (log10 Nc in parameters, h per benchmark), on
    :data:`GRID_POINTS` sizes up to ``up_to_b`` (default: the family's largest model or
    100x the start). Long table: params_b, benchmark, score."""
    from ..dynamics.field import FamilyParams, predict_scores

    p0 = float(start["params_b"])
    if up_to_b is None:
        fam_rows = ex.base[ex.base["family"] == family] if family else ex.base.iloc[:0]
        up_to_b = max(100.0 * p0, float(fam_rows["params_b"].max()) if len(fam_rows) else 0.0)
    sizes = np.geomspace(p0, up_to_b, GRID_POINTS)
    fam = FamilyParams.make(float(log10_nc), np.asarray(h, float))
    scores0 = np.array([float(start[b]) for b in BENCHMARKS])
    pred = predict_scores(ex.model.field_, fam, scores0, p0, sizes, name=family or "start")
    wide = pd.DataFrame(pred, columns=list(BENCHMARKS))
    wide.insert(0, "params_b", sizes)
    return wide.melt(id_vars="params_b", var_name="benchmark", value_name="score")


# --------------------------------------------------------------------------- other views

def phase_map(ex: Explorer) -> dict[str, Any]:
    """Base models on HellaSwag x TruthfulQA with their classifier phase, the boundary
    TQA_c(HS), and γ12 per pair with the population fit against size."""
    from ..coupling.phase import phase_classifier

    pts = ex.base.dropna(subset=["hellaswag", "truthfulqa"]).copy()
    pc = phase_classifier(pts["hellaswag"].to_numpy(), pts["truthfulqa"].to_numpy())
    pts["phase"] = np.asarray(pc.phase)
    pts["margin"] = np.asarray(pc.margin)
    hs = np.linspace(max(0.0, pts["hellaswag"].min() - 3), min(100.0, pts["hellaswag"].max() + 3), 151)
    boundary = pd.DataFrame({"hellaswag": hs, "truthfulqa": 100 * np.sqrt(0.187 * hs / 100)})
    pairs = ex.pairs[~ex.pairs["skipped"]].copy()
    fit = ex.coupling_fit
    n = np.geomspace(pairs["params_b_mid"].min(), pairs["params_b_mid"].max(), 60)
    curve = pd.DataFrame({"params_b": n, "gamma12": fit.predict(n)})
    return {"points": pts, "boundary": boundary, "pairs": pairs, "fit": fit, "fit_curve": curve}


def frontier_view(ex: Explorer) -> dict[str, Any]:
    from ..coupling.frontier import lab_summary, model_fields

    line = ex.line
    models = pd.DataFrame(model_fields(ex.frontier, line))
    labs = pd.DataFrame([{k: v for k, v in e.items() if k != "trajectory"}
                         for e in lab_summary(ex.frontier, line)])
    x = np.linspace(max(0.0, models["swe_bench"].min() - 3), min(100.0, models["swe_bench"].max() + 3), 100)
    lo, hi = line.band(x)
    band = pd.DataFrame({"swe_bench": x, "gpqa": line.predict(x), "lo": lo, "hi": hi})
    return {"models": models, "labs": labs, "line": line, "band": band}


def nc_forest(ex: Explorer) -> pd.DataFrame | None:
    """The posterior table (Nc median, 68% and 95% intervals in billions), or None until
    the posterior is ready."""
    post = ex.posterior()
    if post is None:
        return None
    return post.table.copy()


def holdout_matrix(ex: Explorer) -> pd.DataFrame:
    """Relative MAE % of every method (rows) on every held-out family (columns): the fast
    methods always, the learned ones once their background run has finished."""
    table = ex.fast_holdout().table
    if ex.holdout_job.state == "done":
        table = pd.concat([ex.holdout_job.result, table], ignore_index=True)
    ok = table[table["status"] == "ok"]
    mat = ok.pivot_table(index="method", columns="family", values="rel_mae_pct", sort=False)
    mat["mean"] = mat.mean(axis=1)
    return mat.sort_values("mean")


def predictions(ex: Explorer, on=None) -> pd.DataFrame:
    from ..evaluation.predictions import evaluate

    return ex._cached(f"predictions-{on}", lambda: pd.DataFrame(
        evaluate(ex.base, ex.frontier, on=on)))


@scoped_x64
def warm_up(ex: Explorer) -> float:
    """Load the fit and compile the solves the pages use; returns seconds taken."""
    t0 = time.perf_counter()
    fam = ex.fitted_families()[0]
    start = ex.family_start(fam)
    analyze(ex, ModelInput(start["params_b"], {b: start[b] for b in BENCHMARKS}), bands=False)
    p = ex.model.families_[fam]
    trajectories(ex, start, fam, float(np.asarray(p.log10_nc)), np.asarray(p.h))
    scores0 = np.array([start[b] for b in BENCHMARKS])
    _band(ex.model, scores0, start["params_b"],
          np.array([f * start["params_b"] for f in SCALE_FACTORS]),
          np.full(N_BAND_DRAWS, float(ex.model.mu_nc_)))
    return time.perf_counter() - t0
