"""Conformal calibration across families, shared by the interval benchmark
(:mod:`capedyn.evaluation.intervals`, which documents the method), the held-out benchmark's
``interval=`` option (:mod:`capedyn.evaluation.heldout`) and :func:`conformalize`, which
calibrates one estimator so that its ``predict(..., interval=0.9)`` returns bounds.

The inner folds (:func:`fold_models`), the bounds of one held-out split
(:func:`split_intervals`) and the forecast scores (:func:`interval_scores`) live here, below
both benchmarks, so each uses the same code. Scores in percent (0–100)."""

from __future__ import annotations

import inspect
import time
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .._conformal import SCALES, check_finite_sample, conformal_bounds, level_tag
from .._errors import InputError
from .._progress import Progress
from ..models._intervals import Calibration
from .residuals import FoldModel, _points, _scores, relative_residuals
from .selection import _fitted, inner_splits
from .splits import Split, relative_mae_pct

__all__ = ["fold_models", "split_intervals", "interval_scores", "interval_rows", "conformalize"]

_FAILURES = (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError)


class FoldPredictor:
    """A fold's fitted estimator as ``predict(initial, sizes)`` → flat (sizes × 5) scores
    (percent); a class rather than a closure so that a calibration can be pickled (the
    explorer computes it in another process)."""

    def __init__(self, estimator):
        self.estimator = estimator

    def __call__(self, initial, sizes) -> np.ndarray:
        return _scores(self.estimator, initial, np.atleast_1d(np.asarray(sizes, float)))


def fold_models(estimator, train_df: pd.DataFrame, min_models: int = 3,
                progress: Callable[[int, int, str], Any] | None = None) -> list[FoldModel]:
    """The inner leave-one-family-out folds of ``estimator`` on ``train_df``.

    An estimator that defines ``fold_models(train_df, min_models)`` (the ensemble: its
    weights are chosen again without each inner family) supplies its own; otherwise a fresh
    copy is fitted per fold (memoised with nested selection's fits, so folds shared with
    selection or with another outer split are fitted once). A fold whose fit or prediction
    fails is left out. ``progress(done, total, family)`` is called around each fold."""
    own = getattr(estimator, "fold_models", None)
    if callable(own):
        return own(train_df, min_models)
    kind, splits = inner_splits(train_df, min_models)
    if kind != "lofo":
        return []
    folds = []
    for i, sp in enumerate(splits):
        if progress is not None:
            progress(i, len(splits), sp.family)
        est, _ = _fitted(estimator, {}, sp.train)
        if isinstance(est, BaseException):
            continue
        sizes, actual, bench, decades = _points(sp)
        try:
            pred = _scores(est, sp.initial, sizes)
        except _FAILURES:
            continue
        folds.append(FoldModel(sp.family, FoldPredictor(est), relative_residuals(pred, actual),
                               bench, decades))
    if progress is not None:
        progress(len(splits), len(splits), "")
    return folds


def split_intervals(estimator, split: Split, levels: Sequence[float], min_models: int = 3,
                    min_families: int = 5, scale: str = "decades",
                    finite_sample: str = "calibrated"
                    ) -> tuple[list[FoldModel], dict[float, tuple[np.ndarray, np.ndarray]]]:
    """(fold models, level → (lower, upper)) for a held-out split's target points, in the
    model-major order of :func:`capedyn.evaluation.residuals._points` (model i, benchmark k
    → i·5 + k), percent. ``estimator`` is an unfitted template: it is refitted on each inner
    fold of ``split.train``; the held-out family gives only its starting model."""
    sizes, _, bench, decades = _points(split)
    folds = fold_models(estimator, split.train, min_models)
    fold_preds = np.array([f.predict(split.initial, sizes) for f in folds]).reshape(len(folds), -1)
    return folds, conformal_bounds(fold_preds, folds, bench, decades, levels, min_families, scale,
                                   finite_sample)


def interval_scores(points: pd.DataFrame, levels: Sequence[float] = (0.5, 0.9)) -> pd.DataFrame:
    """Per method: empirical coverage and mean width (points) of each level's intervals,
    the mean interval score (``scoringrules.interval_score``) at each level, the number of
    points, and the point error (mean over families of relative MAE %). ``points`` has
    ``method``, ``family``, ``pred``, ``actual`` and ``lo_{L%}``/``hi_{L%}`` per level."""
    import scoringrules as sr

    rows = []
    for method, sub in points.groupby("method", sort=False):
        ok = sub.dropna(subset=[f"lo_{level_tag(lv)}" for lv in levels])
        y = ok["actual"].to_numpy(float)
        row: dict[str, Any] = {"method": method, "n_points": int(len(ok)),
                               "n_without_interval": int(len(sub) - len(ok))}
        for lv in levels:
            t = level_tag(lv)
            lo, hi = ok[f"lo_{t}"].to_numpy(float), ok[f"hi_{t}"].to_numpy(float)
            row[f"coverage_{t}"] = float(np.mean((lo <= y) & (y <= hi))) if len(y) else np.nan
            row[f"width_{t}"] = float(np.mean(hi - lo)) if len(y) else np.nan
            row[f"interval_score_{t}"] = (
                float(np.mean(np.asarray(sr.interval_score(y, lo, hi, 1.0 - lv)))) if len(y) else np.nan)
        fam = [relative_mae_pct(g["pred"], g["actual"]) for _, g in sub.groupby("family")]
        row["mean_rel_mae_pct"] = float(np.mean(fam)) if fam else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def conformalize(estimator, train_df: pd.DataFrame, *, scale: str = "decades",
                 finite_sample: str = "calibrated",
                 min_models: int = 3, min_families: int = 5, fit: bool = True,
                 progress: bool | None = None,
                 callback: Callable[[int, int], Any] | None = None):
    """Fit ``estimator`` on ``train_df`` and calibrate its conformal intervals, so that
    ``estimator.predict(initial, params_b, interval=0.9)`` adds bounds (points, 0–100).

    The calibration is the one the held-out benchmark uses
    (:mod:`capedyn.evaluation.intervals`): each training family with at least
    ``min_models`` complete models is held out in turn, a copy of the estimator is refitted
    without it and predicts it from its smallest model; the relative residuals and the fold
    models are stored on the estimator as ``conformal_``
    (:class:`capedyn.models._intervals.Calibration`). Cost: one fit per such family on top
    of the fit itself (measured on two shared cores, ten training families: under a second
    for ``poly2`` and ``logit_rate``; about five minutes for the coupling ODE on eleven).
    ``scale`` and ``finite_sample`` choose the residual scaling and the tail quantile
    (:func:`capedyn._conformal.tail_level`). ``fit=False`` keeps an estimator already fitted on ``train_df`` (a saved fit) and only
    computes the folds. ``progress``: a bar on stderr (None: only on a terminal);
    ``callback(done, total)`` is called around each fold. A family the interval is for
    must be absent from ``train_df``: only its starting model is given to ``predict``. A
    later ``fit`` keeps the old ``conformal_``: calibrate again after refitting. Returns
    the fitted, calibrated estimator."""
    if scale not in SCALES:
        raise InputError(f"scale must be one of {SCALES}, got {scale!r}")
    check_finite_sample(finite_sample)
    if "interval" not in inspect.signature(estimator.predict).parameters:
        raise InputError(f"{type(estimator).__name__}.predict has no interval= keyword, so a "
                         "calibration could not be used: decorate it with "
                         "capedyn.interval_predict (as every estimator of capedyn is)")
    t0 = time.perf_counter()
    if fit:
        estimator.fit(train_df)
    template = getattr(estimator, "best_estimator_", estimator)  # nested selection: its choice
    kind, inner = inner_splits(train_df, min_models)
    with Progress(len(inner) if kind == "lofo" else 0, "calibrating intervals",
                  enabled=progress) as bar:
        folds = fold_models(template, train_df, min_models,
                            progress=lambda done, total, fam: (
                                bar.update(done, family=fam),
                                callback is not None and callback(done, total)))
    if len(folds) < 2:
        raise InputError(
            f"cannot calibrate intervals: {len(folds)} training famil{'y' if len(folds) == 1 else 'ies'} "
            f"could be held out (each needs at least {min_models} complete models and a fit "
            "that succeeds without it); add families with three or more complete models")
    families = tuple(dict.fromkeys(train_df["family"]))
    estimator.conformal_ = Calibration(tuple(folds), scale, int(min_families), families,
                                       time.perf_counter() - t0, finite_sample)
    return estimator


def interval_rows(levels: Sequence[float], bounds: dict, p: int) -> dict[str, float]:
    """``lo_{L%}``/``hi_{L%}`` of point ``p`` for each level (helper of the benchmarks' rows)."""
    return {k: float(v) for lv in levels
            for k, v in ((f"lo_{level_tag(lv)}", bounds[lv][0][p]),
                         (f"hi_{level_tag(lv)}", bounds[lv][1][p]))}

