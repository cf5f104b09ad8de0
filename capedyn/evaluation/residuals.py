"""The residuals of an inner fold, the common ground of the conformal intervals
(:mod:`capedyn.evaluation.intervals`) and the ensemble (:mod:`capedyn.evaluation.ensemble`):
a held-out split's target points with their benchmark and distance above the start, a
fold model (a predictor fitted without one family, and that family's relative
residuals), and the relative residual itself. Scores in percent, distances in decades of
parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .._conformal import MIN_DECADES, RATIO_BANDS, ratio_band  # noqa: F401 (re-exported)
from .._errors import SolveError
from ..data.tables import BENCHMARKS
from .splits import Split

__all__ = ["RATIO_BANDS", "MIN_DECADES", "ratio_band", "FoldModel", "relative_residuals"]


def _points(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(sizes, actual (J,), benchmark index (J,), decades above the start (J,)) of a split's
    targets, points in model-major order (model i, benchmark k → i·5 + k)."""
    sizes = split.targets["params_b"].to_numpy(float)
    actual = split.targets[list(BENCHMARKS)].to_numpy(float).reshape(-1)
    nb = len(BENCHMARKS)
    bench = np.tile(np.arange(nb), len(sizes))
    ratio = np.repeat(np.log10(sizes / float(split.initial["params_b"])), nb)
    return sizes, actual, bench, ratio


@dataclass(frozen=True)
class FoldModel:
    """One inner fold: a predictor fitted without family ``family`` and that family's
    relative residuals, with their benchmark index and distance (decades above the start)."""

    family: str
    predict: Callable[[pd.Series, np.ndarray], np.ndarray]
    residuals: np.ndarray
    bench: np.ndarray
    decades: np.ndarray

    @property
    def band(self) -> np.ndarray:
        return ratio_band(self.decades)


def _scores(est, initial: pd.Series, sizes: np.ndarray) -> np.ndarray:
    out = est.predict(initial, sizes)[list(BENCHMARKS)].to_numpy(float)
    if out.shape != (len(sizes), len(BENCHMARKS)) or not np.all(np.isfinite(out)):
        raise SolveError("non-finite or misshapen prediction")
    return out.reshape(-1)


def relative_residuals(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """(actual − pred) / pred, with the prediction floored at 1 point (scores are percent)."""
    return (actual - pred) / np.maximum(pred, 1.0)
