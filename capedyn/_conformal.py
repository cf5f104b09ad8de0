"""The arithmetic of the family-level conformal intervals (CV+ across families), kept low
enough that the estimators (``capedyn.models``) can turn a stored calibration into bounds
without importing the benchmark (``capedyn.evaluation.intervals`` builds the calibration and
documents the method). Scores in percent (0–100), distances in decades of parameters."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._errors import InputError

__all__ = ["RATIO_BANDS", "MIN_DECADES", "SCALES", "ratio_band", "check_levels", "level_tag",
           "weighted_quantile", "conformal_bounds", "extreme_level", "FINITE_SAMPLE",
           "check_finite_sample", "tail_level"]

RATIO_BANDS: tuple[float, ...] = (float(np.log10(3.0)), 1.0)
"""Edges (decades of size ratio to the starting model) of the residual strata (``scale="bands"``)."""

MIN_DECADES = 0.25
"""Floor on the distance (decades) a residual is rescaled by (``scale="decades"``)."""

SCALES = ("decades", "bands")

FINITE_SAMPLE = ("calibrated", "guaranteed")
"""How the tail quantiles treat having only K families (see :func:`tail_level`)."""


def check_finite_sample(finite_sample: str) -> str:
    """``finite_sample`` if it is one of :data:`FINITE_SAMPLE`, else an ``InputError``."""
    if finite_sample not in FINITE_SAMPLE:
        raise InputError(f"finite_sample must be one of {FINITE_SAMPLE}, got {finite_sample!r}")
    return finite_sample


def tail_level(level: float, n_folds: int, finite_sample: str = "calibrated") -> float:
    """The quantile (0–1) of the family-weighted candidates that bounds an interval of
    nominal ``level`` from above (its mirror 1 − q bounds it from below).

    ``"guaranteed"``: CV+'s finite-sample inflation (1 − α/2)(K + 1)/K, capped at 1. It
    guarantees coverage ≥ ``level`` even when every point of a family errs alike (K atoms),
    and pays for it when a family's points spread: then the candidates are nearly
    continuous and the interval's actual level is about ``level`` + (2 − α)/K — 0.65 for a
    50 % interval with ten families. ``"calibrated"``: the plain 1 − α/2, whose coverage is
    the nominal one when families' points spread and at worst (K atoms) one rank short per
    tail: the bounds are then the order statistics of ranks ⌈(α/2)K⌉ and ⌈(1 − α/2)K⌉,
    covering with probability (their difference)/(K + 1) (5/11 for 50 % with ten)."""
    alpha = 1.0 - level
    if finite_sample == "guaranteed":
        return min(1.0, (1.0 - alpha / 2.0) * (n_folds + 1) / n_folds)
    return 1.0 - alpha / 2.0


def ratio_band(log_ratio) -> np.ndarray:
    """Stratum index of a size ratio (decades above the starting model): 0, 1 or 2."""
    return np.searchsorted(np.asarray(RATIO_BANDS), np.asarray(log_ratio, float), side="right")


def check_levels(levels: float | Sequence[float], what: str = "interval") -> tuple[float, ...]:
    """Nominal coverage level(s) as a tuple of floats strictly between 0 and 1."""
    seq = (levels,) if np.ndim(levels) == 0 else tuple(levels)
    what = what if what.endswith("levels") else f"{what} levels"
    try:
        out = tuple(float(lv) for lv in seq)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be numbers such as 0.9 or (0.5, 0.9), "
                         f"got {levels!r}") from None
    if not out or any(not 0.0 < lv < 1.0 for lv in out):
        raise InputError(f"{what} must lie strictly between 0 and 1 (e.g. 0.9), got {levels!r}")
    return out


def level_tag(level: float) -> str:
    """The percent a level is named by in column names: 0.9 → "90"."""
    return f"{round(100 * level):d}"


def extreme_level(n_folds: int, finite_sample: str = "calibrated") -> float:
    """The nominal level from which the intervals of ``n_folds`` families can take the
    extreme candidates: 1 − 2/(K + 1) with ``"guaranteed"`` (the (K + 1)/K inflation makes
    the upper quantile 1), 1 − 2/K with ``"calibrated"`` (the upper quantile passes the
    last family's weight)."""
    k = int(n_folds)
    return 1.0 - 2.0 / (k + 1) if finite_sample == "guaranteed" else 1.0 - 2.0 / k


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Quantile of a weighted sample taken at an actual value (inverted CDF)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    cum /= cum[-1]
    return float(values[order][min(np.searchsorted(cum, q - 1e-12), len(values) - 1)])


def conformal_bounds(fold_preds: np.ndarray, folds: Sequence[Any], bench: np.ndarray,
                     decades: np.ndarray, levels: Sequence[float] = (0.5, 0.9),
                     min_families: int = 5, scale: str = "decades",
                     finite_sample: str = "calibrated"
                     ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """CV+ bounds for J target points from K fold models.

    ``fold_preds``: (K, J) each fold model's prediction of the targets (percent);
    ``folds``: the K folds (each with ``residuals``, ``bench`` and ``decades`` arrays, as
    :class:`capedyn.evaluation.residuals.FoldModel`); ``bench``/``decades``: each target's
    benchmark index and distance above its start (decades); ``scale`` as in
    :mod:`capedyn.evaluation.intervals`; ``finite_sample`` as in :func:`tail_level`. Returns level → (lower (J,), upper (J,)) in
    percent, clipped to [0, 100]."""
    if scale not in SCALES:
        raise InputError(f"scale must be one of {SCALES}, got {scale!r}")
    check_finite_sample(finite_sample)
    k = len(folds)
    out = {lv: (np.full(len(bench), np.nan), np.full(len(bench), np.nan)) for lv in levels}
    if k == 0:
        return out
    for j in range(len(bench)):
        values, weights = _candidates(fold_preds[:, j], folds, int(bench[j]),
                                      float(decades[j]), min_families, scale)
        for lv in levels:
            hi_q = tail_level(lv, k, finite_sample)
            lo, hi = out[lv]
            lo[j] = weighted_quantile(values, weights, 1.0 - hi_q)
            hi[j] = weighted_quantile(values, weights, hi_q)
    return {lv: (np.clip(lo, 0.0, 100.0), np.clip(hi, 0.0, 100.0)) for lv, (lo, hi) in out.items()}


def _candidates(preds: np.ndarray, folds: Sequence[Any], bench: int, decades: float,
                min_families: int, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """Candidate values μ₋G(x)·(1 + s) and their weights (each family sums to one) in the
    narrowest stratum that enough families populate; with ``scale="decades"`` each residual
    s is first rescaled to the target's distance."""
    band = int(ratio_band(decades))
    same_band = ((lambda f: (f.bench == bench) & (ratio_band(f.decades) == band))
                 if scale == "bands" else None)
    selectors = [s for s in (same_band, lambda f: f.bench == bench,
                             lambda f: np.ones(len(f.bench), bool)) if s is not None]
    target = max(decades, MIN_DECADES)
    for select in selectors:
        picked = []
        for p, f in zip(preds, folds):
            m = select(f)
            if m.any():
                r = f.residuals[m]
                if scale == "decades":
                    r = r * target / np.maximum(f.decades[m], MIN_DECADES)
                picked.append((p, r))
        if len(picked) >= min(min_families, len(folds)):
            break
    values = np.concatenate([p * (1.0 + r) for p, r in picked])
    weights = np.concatenate([np.full(r.size, 1.0 / r.size) for _, r in picked])
    return values, weights
