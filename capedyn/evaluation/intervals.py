"""Predictive intervals for held-out families, and how well they cover.

A point prediction of a family's larger models is only as useful as the interval that
comes with it. Every method of the benchmark gets a distribution-free interval by
**cross-conformal prediction with families as the exchangeable unit** (CV+, Barber et al.
2021), built only from the training table:

1. Inside the training table each family G with enough complete models is held out in
   turn, exactly as the benchmark holds out a family: the method is fitted on the other
   training families (model μ₋G), starts from G's smallest model and predicts G's others.
   Each predicted point gives a **relative residual** s = (actual − pred) / pred.
2. For a target point of the held-out family F (benchmark b, d decades of size above
   F's starting model), each inner model μ₋G predicts it from F's starting model, and the
   candidate values are μ₋G(x)·(1 + s·d/d_G) over G's residuals of the same benchmark,
   each residual rescaled from the distance d_G it was made at to the target's distance d
   (``scale="decades"``, the default; both distances floored at a quarter decade). Every
   family weighs one in total, however many models it has. The interval at level 1 − α
   runs between the α/2 and 1 − α/2 weighted quantiles of those candidates
   (``finite_sample="calibrated"``, the default), or with CV+'s finite-sample inflation
   (K + 1)/K for K families (``"guaranteed"``; at its cap, the extreme candidates).
   The inflation guarantees coverage ≥ 1 − α even if all of a family's points erred
   alike; when they spread, it raises the actual level to about 1 − α + (2 − α)/K (a 50 %
   interval covers about 65 % with ten families), so the default aims at the nominal
   level instead (:func:`capedyn._conformal.tail_level` gives both, with their worst cases).
3. Why per decade: an extrapolation's error grows with how far it reaches, so a relative
   error per decade makes a short and a long extrapolation comparable, and every inner
   point can inform every target (with ten-odd families, no point is to spare).
   ``scale="bands"`` instead keeps residuals unscaled and stratifies them by size-ratio band
   (up to 3×, 3–10×, beyond 10×). A stratum with residuals from fewer than
   ``min_families`` families falls back to the benchmark over every band, then to every
   benchmark.

Bounds are clipped to the score range [0, 100] (percent). The held-out family F is
absent from every fit, residual and quantile that shapes its own interval: only its
starting model is used, as the point prediction uses it.

Why not MAPIE or crepes: both calibrate a regressor ``f(X) → y`` on held-out rows. Here a
"row" is a whole family whose points are predicted jointly from one starting model by a
model refitted without that family, and the exchangeable unit is the family, not the
point; the family-weighted CV+ quantile over per-fold models is a dozen lines, written out
in ``capedyn/_conformal.py`` (low, so that an estimator's ``predict(..., interval=0.9)`` can
use it after :func:`capedyn.evaluation.conformal.conformalize`). The scores use ``scoringrules`` (the interval score of Gneiting and Raftery 2007).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._conformal import (  # noqa: F401 (re-exported)
    MIN_DECADES, RATIO_BANDS, SCALES, _candidates, check_finite_sample, check_levels,
    conformal_bounds, level_tag, ratio_band, weighted_quantile,
)
from .._errors import InputError
from .._progress import Progress
from ..data.tables import BENCHMARKS, complete_models
from .conformal import fold_models, interval_rows, interval_scores, split_intervals
from .residuals import FoldModel, _points, _scores  # noqa: F401 (re-exported)
from .selection import _fitted
from .splits import Split, make_split

__all__ = ["LEVELS", "RATIO_BANDS", "FoldModel", "fold_models", "conformal_bounds",
           "interval_scores", "IntervalResult", "interval_benchmark"]

LEVELS: tuple[float, ...] = (0.5, 0.9)
"""Nominal coverage levels scored by default."""

_FAILURES = (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError)


_weighted_quantile = weighted_quantile


@dataclass
class IntervalResult:
    """Held-out predictions with conformal intervals.

    ``points``: one row per (family, method, model, benchmark): ``pred``, ``actual`` and
    ``lo_50``/``hi_50``/``lo_90``/``hi_90`` (percent) for the levels asked; ``table``: per
    method, :func:`interval_scores`; ``weights``: the ensemble's member weights per outer
    family (empty without an ensemble); ``failed``: (family, method, message)."""

    points: pd.DataFrame
    table: pd.DataFrame
    weights: pd.DataFrame = field(default_factory=pd.DataFrame)
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)
    levels: tuple[float, ...] = LEVELS
    seconds: float = float("nan")
    finite_sample: str = "calibrated"

    def to_dict(self) -> dict:
        from .._json import to_jsonable

        return to_jsonable({"levels": list(self.levels), "finite_sample": self.finite_sample,
                            "table": self.table.to_dict("records"),
                            "weights": self.weights.to_dict("records"),
                            "failed": self.failed.to_dict("records"), "seconds": self.seconds})


def interval_benchmark(df: pd.DataFrame, methods: Mapping[str, Callable[[], Any]] | Sequence[str]
                       | None = None, families: Sequence[str] | None = None,
                       levels: Sequence[float] = LEVELS, min_models: int = 3,
                       min_families: int = 5, scale: str = "decades",
                       finite_sample: str = "calibrated",
                       progress: bool = True) -> IntervalResult:
    """Leave each family out (as P2 does) and give every method's predictions of its models
    conformal intervals built from the training families alone (module docstring).

    ``methods``: names of the benchmark's methods at their fixed settings (default: all of
    them, the ensemble included) or a mapping name → factory. ``families``: the families to
    hold out (default: every family with at least ``min_models`` complete models).
    ``scale``: "decades" (default) or "bands"; ``finite_sample``: "calibrated" (default) or
    "guaranteed"; see the module docstring."""
    if scale not in SCALES:
        raise InputError(f"scale must be one of {SCALES}, got {scale!r}")
    check_finite_sample(finite_sample)
    levels = check_levels(levels)
    factories = _factories(methods)
    counts = complete_models(df).groupby("family").size()
    held = [f for f in (families or dict.fromkeys(df["family"])) if counts.get(f, 0) >= min_models]
    rows, weights, failed = [], [], []
    t0 = time.perf_counter()
    with Progress(len(held) * len(factories), "intervals", enabled=progress) as bar:
        for i, fam in enumerate(held):
            split = make_split(df, fam)
            for j, (name, factory) in enumerate(factories.items()):
                bar.update(i * len(factories) + j, family=fam, method=name)
                try:
                    rows += _one(name, factory(), split, levels, min_models, min_families,
                                 scale, finite_sample, weights)
                except _FAILURES as exc:
                    failed.append({"family": fam, "method": name,
                                   "message": f"{type(exc).__name__}: {exc}"})
            bar.update((i + 1) * len(factories))
    points = pd.DataFrame(rows)
    return IntervalResult(points=points, table=interval_scores(points, levels) if len(points) else
                          pd.DataFrame(), weights=pd.DataFrame(weights),
                          failed=pd.DataFrame(failed, columns=["family", "method", "message"]),
                          levels=levels, seconds=time.perf_counter() - t0,
                          finite_sample=finite_sample)


def _factories(methods) -> dict[str, Callable[[], Any]]:
    from .heldout import FIXED_METHODS

    if methods is None:
        return dict(FIXED_METHODS)
    if isinstance(methods, Mapping):
        return dict(methods)
    unknown = [m for m in methods if m not in FIXED_METHODS]
    if unknown:
        raise InputError(f"unknown method(s) {unknown}; valid methods: {', '.join(FIXED_METHODS)}")
    return {m: FIXED_METHODS[m] for m in dict.fromkeys(methods)}


def _one(name: str, estimator, split: Split, levels, min_models: int, min_families: int,
         scale: str, finite_sample: str, weights: list) -> list[dict]:
    """Rows of one (outer family, method): point predictions and their intervals."""
    est, _ = _fitted(estimator, {}, split.train)
    if isinstance(est, BaseException):
        raise est
    sizes, actual, _, _ = _points(split)
    pred = _scores(est, split.initial, sizes)
    folds, bounds = split_intervals(estimator, split, levels, min_models, min_families, scale,
                                    finite_sample)
    if hasattr(est, "weights_"):
        weights.append({"family": split.family, "method": name, **est.weights_})
    nb = len(BENCHMARKS)
    models = split.targets["model"].to_numpy()
    return [{"family": split.family, "method": name, "model": models[p // nb],
             "params_b": float(sizes[p // nb]), "benchmark": BENCHMARKS[p % nb],
             "pred": float(pred[p]), "actual": float(actual[p]), "n_folds": len(folds),
             **interval_rows(levels, bounds, p)}
            for p in range(len(pred))]
