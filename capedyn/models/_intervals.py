"""``predict(..., interval=0.9)``: conformal bounds from a calibration stored on an estimator.

:func:`capedyn.conformalize` (in :mod:`capedyn.evaluation.conformal`) fits an estimator on a
training table and stores on it, as ``conformal_``, a :class:`Calibration`: the estimator's
leave-one-training-family-out fold models and their relative residuals. The decorator
:func:`interval_predict` gives an estimator's ``predict`` an ``interval`` keyword that turns
that calibration into CV+ bounds (:func:`capedyn._conformal.conformal_bounds`, the same
arithmetic as the held-out benchmark's intervals), so the estimators need not import the
benchmark that builds the calibration."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .._conformal import check_levels, conformal_bounds, level_tag
from .._errors import InputError, NotFittedError
from ..data.tables import BENCHMARKS

__all__ = ["Calibration", "interval_predict", "interval_columns"]


@dataclass(frozen=True)
class Calibration:
    """A conformal calibration of one fitted estimator.

    ``folds``: fold models (``family``, ``predict(initial, sizes)`` → flat (sizes × 5)
    scores in percent, ``residuals``, ``bench``, ``decades``), one per training family held
    out; ``scale``/``min_families``/``finite_sample``: as
    :func:`capedyn._conformal.conformal_bounds`;
    ``families``: the training families of the fit; ``seconds``: the calibration's cost."""

    folds: tuple
    scale: str = "decades"
    min_families: int = 5
    families: tuple[str, ...] = ()
    seconds: float = float("nan")
    finite_sample: str = "calibrated"

    @property
    def n_folds(self) -> int:
        return len(self.folds)


def interval_columns(calibration: Calibration, initial, sizes, levels: Sequence[float]
                     ) -> dict[str, np.ndarray]:
    """``{bench}_lo_{pct}``/``{bench}_hi_{pct}`` (percent, 0–100) for each level and each
    predicted size (billions of parameters) from ``initial`` (its ``params_b`` and scores)."""
    sizes = np.atleast_1d(np.asarray(sizes, float))
    p0 = float(initial["params_b"])
    if not p0 > 0:
        raise InputError(f"the initial model's params_b must be a positive size in billions, got {p0}")
    nb = len(BENCHMARKS)
    bench = np.tile(np.arange(nb), len(sizes))
    decades = np.repeat(np.log10(sizes / p0), nb)
    fold_preds = np.array([f.predict(initial, sizes) for f in calibration.folds]
                          ).reshape(len(calibration.folds), -1)
    bounds = conformal_bounds(fold_preds, calibration.folds, bench, decades, levels,
                              calibration.min_families, calibration.scale,
                              calibration.finite_sample)
    out = {}
    for lv in levels:
        lo, hi = (b.reshape(len(sizes), nb) for b in bounds[lv])
        for k, b in enumerate(BENCHMARKS):
            out[f"{b}_lo_{level_tag(lv)}"] = lo[:, k]
            out[f"{b}_hi_{level_tag(lv)}"] = hi[:, k]
    return out


_INTERVAL_DOC = """

        ``interval``: a nominal coverage level or a tuple of levels (e.g. ``0.9`` or
        ``(0.5, 0.9)``) adds, per level L and benchmark b, the columns ``{b}_lo_{L%}`` and
        ``{b}_hi_{L%}`` (e.g. ``hellaswag_lo_90``): the bounds, in points (0–100), of a
        conformal interval for a family absent from the training table (CV+ over the
        leave-one-training-family-out residuals). It needs a calibrated estimator:
        ``capedyn.conformalize(estimator, train_df)``."""


def interval_predict(predict: Callable) -> Callable:
    """Give ``predict(self, initial, params_b, ...)`` an ``interval=None`` keyword (above)."""

    @functools.wraps(predict)
    def wrapper(self, initial, params_b, *args: Any, interval=None, **kwargs: Any) -> pd.DataFrame:
        if interval is None:
            return predict(self, initial, params_b, *args, **kwargs)
        levels = check_levels(interval)
        calibration = getattr(self, "conformal_", None)
        if calibration is None:
            raise NotFittedError(
                f"{type(self).__name__} has no conformal calibration, so predict(interval=...) "
                "cannot bound it: call capedyn.conformalize(estimator, train_df) first (it fits "
                "the estimator and its leave-one-training-family-out folds)")
        if kwargs.get("family") is not None:
            raise InputError("interval= bounds a prediction for a family absent from the "
                             "training table; it does not apply with family= (a fitted family)")
        out = predict(self, initial, params_b, *args, **kwargs)
        cols = interval_columns(calibration, initial, out["params_b"].to_numpy(float), levels)
        out = out.assign(**cols)
        out.attrs["interval_levels"] = list(levels)
        return out

    sig = inspect.signature(predict)
    params = list(sig.parameters.values())
    if "interval" not in sig.parameters:
        at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
        params.insert(at, inspect.Parameter("interval", inspect.Parameter.KEYWORD_ONLY, default=None))
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__doc__ = (predict.__doc__ or "").rstrip() + _INTERVAL_DOC
    return wrapper
