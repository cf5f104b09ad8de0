"""Nested hyper-parameter selection for the held-out family benchmark.

:class:`NestedSelection` wraps any benchmark method (an estimator with ``fit(train_df)`` and
``predict(initial_row, params_b)``) and a small grid of its hyper-parameters. Its ``fit``
sees the training table only, and selects inside it:

* **Leave one training family out** (``cv_kind = "lofo"``) when at least two training
  families have ``min_models`` (3) or more complete models: each such family G is held out
  of the training table exactly as the benchmark holds out a family (the method fits the
  other training families, starts from G's smallest complete model and predicts G's other
  complete models), and each grid point is scored by its mean relative MAE % over those
  inner folds — the benchmark's own metric one level down.
* **Forward validation** (``cv_kind = "forward"``) when fewer families qualify (the paper's
  split trains on Pythia alone): each training family with ≥ 4 complete models keeps its
  smaller ``forward_fraction`` of models (at least two) in training and predicts its larger
  ones from its smallest model.
* With neither possible the first grid point is used (``cv_kind = "none"``).

A failed fit or prediction is charged :data:`FAILED_FOLD_ERROR` (100 %). Ties go to the
earlier grid point, so grids list the simpler or default setting first. The selected
setting is then refit on the whole training table.

Because a held-out family is absent from the training table the wrapper receives, no row
of it beyond the initial model can reach any inner fit or score: the selection is nested.

Cost. An inner fit depends only on (method, hyper-parameters, inner training table), so
fitted inner models are memoised (least recently used, at most 2000; :mod:`capedyn._fitmemo`)
on a hash of exactly those: every column and every row of the table in the order the fit
receives it. In a full leave-one-family-out sweep the fold "train on all but {F, G},
score G" of outer split F and the fold "train on all but {G, F}, score F" of outer split G
are filtered from the same table in the same order, so they share one fit, which halves
the inner fits. The memo is keyed by content, so poisoned or edited data can never hit a
stale entry, and a hit returns the very estimator a fresh fit gave.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import ParameterGrid

from .._errors import CapedynError, InputError, NotFittedError
from .._fitmemo import FitMemo, clear_memos
from ..models._intervals import interval_predict
from .._json import to_jsonable
from ..data.tables import BENCHMARKS, complete_models
from .splits import Split, make_split, relative_mae_pct

__all__ = ["NestedSelection", "inner_splits", "with_params", "clear_cache", "FAILED_FOLD_ERROR"]

FAILED_FOLD_ERROR = 100.0
"""Relative MAE % charged to a grid point whose fit or prediction fails on an inner fold."""

_FAILURES = (CapedynError, ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError)
_CACHE = FitMemo(2_000, _FAILURES)
"""Fitted estimators (or the exception a fit raised) by (method, settings, training table)."""


def clear_cache() -> None:
    """Forget every memoised fit (inner fits here and the methods' own memos)."""
    clear_memos()


def with_params(estimator, params: Mapping[str, Any]):
    """A fresh unfitted copy of ``estimator`` with ``params`` replaced (``sklearn.base.clone``
    + ``set_params``; estimators without ``set_params`` are rebuilt from ``get_params``)."""
    if hasattr(estimator, "set_params"):
        return clone(estimator).set_params(**params)
    return type(estimator)(**{**estimator.get_params(deep=False), **params})


def _frame_hash(df: pd.DataFrame) -> str:
    """Digest of the training table exactly as a fit receives it: every column (names,
    dtypes, values) and the row order. No canonical sort: a fit may depend on row order
    (the order families are stacked in, the order sums run in), so only a table built the
    same way shares an entry. The two folds that train on all families but {F, G} are
    both filtered from the same table and so come out identical, row order included."""
    h = hashlib.sha256(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
    try:
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    except TypeError:  # a cell pandas cannot hash (a list, say): its text instead
        h.update(df.to_json(orient="split", index=False, double_precision=17).encode())
    return h.hexdigest()


def _params_key(estimator, params: Mapping[str, Any]) -> tuple:
    base = estimator.get_params(deep=False)
    merged = {**base, **params}
    return (type(estimator).__module__, type(estimator).__qualname__,
            tuple(sorted((k, repr(v)) for k, v in merged.items() if k != "progress")))


def inner_splits(train_df: pd.DataFrame, min_models: int = 3, forward_fraction: float = 0.5):
    """(kind, splits) for selection inside ``train_df`` (see the module docstring)."""
    counts = complete_models(train_df).groupby("family").size()
    eligible = [f for f in dict.fromkeys(train_df["family"]) if counts.get(f, 0) >= min_models]
    if len(eligible) >= 2:
        return "lofo", [make_split(train_df, f) for f in eligible]
    splits = []
    for fam in dict.fromkeys(train_df["family"]):
        own = complete_models(train_df[train_df["family"] == fam]).sort_values("params_b", kind="stable")
        if len(own) < 4:
            continue
        keep = max(2, int(np.ceil(forward_fraction * len(own))))
        cut = float(own["params_b"].iloc[keep - 1])
        drop = (train_df["family"] == fam) & (train_df["params_b"] > cut)
        splits.append(Split(family=fam, train=train_df[~drop].reset_index(drop=True).copy(),
                            initial=own.iloc[0].copy(),
                            targets=own.iloc[keep:].reset_index(drop=True).copy()))
    return ("forward", splits) if splits else ("none", [])


def _fit_key(estimator, params, train: pd.DataFrame) -> tuple:
    return _params_key(estimator, params), _frame_hash(train)


def _fitted(estimator, params, train: pd.DataFrame):
    """(fitted copy of ``estimator`` with ``params`` on ``train``, or the exception; fresh?)."""
    return _CACHE.get_or_fit(_fit_key(estimator, params, train),
                             lambda: with_params(estimator, params).fit(train))


def _prefit_batch(estimator, jobs) -> set:
    """Fit every (params, train) of ``jobs`` not memoised yet with one call of the
    estimator's ``fit_batch`` (one compiled, vectorised program for fits of one shape) and
    memoise the results; returns the keys fitted."""
    todo: dict[tuple, tuple] = {}
    for params, train in jobs:
        key = _fit_key(estimator, params, train)
        if key not in _CACHE and key not in todo:
            todo[key] = (params, train)
    if not todo:
        return set()
    fitted = estimator.fit_batch([t for _, t in todo.values()], [p for p, _ in todo.values()])
    for key, est in zip(todo, fitted):
        _CACHE.put(key, est)
    return set(todo)


def _use_batch(estimator, batch) -> bool:
    """Whether to fit the inner folds with ``estimator.fit_batch`` (``batch`` True and the
    estimator has it). Off by default: on two CPU cores the vmapped fit measured slower
    than one fit after another (every fit steps until the slowest stops and pays for the
    stiffest trial solve of the batch; the loop's fits of one shape share one compiled
    step already)."""
    return bool(batch) and hasattr(estimator, "fit_batch")


def _fold_score(estimator, params, split, batched=frozenset()) -> tuple[float, bool]:
    """(relative MAE %, fitted from scratch?) of one grid point on one inner split."""
    est, fresh = _fitted(estimator, params, split.train)
    if batched:
        fresh = _fit_key(estimator, params, split.train) in batched
    if isinstance(est, BaseException):
        return FAILED_FOLD_ERROR, fresh
    sizes = split.targets["params_b"].to_numpy(dtype=float)
    actual = split.targets[list(BENCHMARKS)].to_numpy(dtype=float)
    try:
        pred = est.predict(split.initial, sizes)[list(BENCHMARKS)].to_numpy(dtype=float)
    except _FAILURES:
        return FAILED_FOLD_ERROR, fresh
    if not np.all(np.isfinite(pred)):
        return FAILED_FOLD_ERROR, fresh
    return relative_mae_pct(pred, actual), fresh


class NestedSelection(BaseEstimator):
    """Select ``estimator``'s hyper-parameters from ``param_grid`` inside the training table.

    Parameters
    ----------
    estimator : an unfitted benchmark method (its own values are the base configuration).
    param_grid : dict name → list of values, or a list of such dicts
        (``sklearn.model_selection.ParameterGrid``). Put the default/simplest value first.
    min_models : complete models an inner family needs to be held out.
    forward_fraction : share of a family kept in training by forward validation.
    inner_params : settings applied to the inner (selection) fits only, e.g.
        ``{"steps": 500}`` for a cheaper optimiser budget while selecting; the final refit
        uses the estimator's own settings.

    Attributes
    ----------
    best_params_, best_estimator_ (refit on the whole training table), cv_kind_,
    inner_families_, cv_results_ (one row per grid point: the parameters, ``cv_error``
    mean relative MAE %, ``cv_se`` its standard error over folds, ``n_failed``, then one
    column per inner family), n_inner_fits_ (fits actually run; memoised folds excluded),
    seconds_.
    batch : fit every (grid point, inner fold) at once with the estimator's ``fit_batch``
        (one compiled, vectorised program; the fits equal the loop's up to floating-point
        rounding, which can move the step where a fit stops). Default False: on CPU the
        batch measured slower than the loop. A vmapped loop steps every problem until the
        slowest stops, and the inner fits' lengths are uneven: coupling_ode's 30 inner fits
        on the shipped table without BLOOM took 22 to 473 LM steps (median 31), so the
        batch did 8 times the loop's work (32 slots x 473 steps against 1864), and
        on two CPU cores a batched step costs about what the fits' single steps cost.
    """

    def __init__(self, estimator=None, param_grid=None, min_models: int = 3,
                 forward_fraction: float = 0.5, inner_params=None, batch=False):
        self.estimator = estimator
        self.param_grid = param_grid
        self.min_models = min_models
        self.forward_fraction = forward_fraction
        self.inner_params = inner_params
        self.batch = batch

    def fit(self, train_df: pd.DataFrame) -> "NestedSelection":
        if self.estimator is None:
            raise InputError("NestedSelection needs an estimator")
        t0 = time.perf_counter()
        grid = list(ParameterGrid(self.param_grid or {}))
        kind, splits = inner_splits(train_df, int(self.min_models), float(self.forward_fraction))
        rows, n_fits = [], 0
        inner = [{**params, **(self.inner_params or {})} for params in grid]
        batched = (_prefit_batch(self.estimator, [(p, sp.train) for p in inner for sp in splits])
                   if splits and _use_batch(self.estimator, self.batch) else frozenset())
        for params, fit_params in zip(grid, inner):
            errs = []
            for sp in splits:
                e, fresh = _fold_score(self.estimator, fit_params, sp, batched)
                errs.append(e)
                n_fits += fresh
            errs = np.asarray(errs, float)
            rows.append({**params,
                         "cv_error": float(errs.mean()) if errs.size else np.nan,
                         "cv_se": float(errs.std(ddof=1) / np.sqrt(errs.size)) if errs.size > 1 else np.nan,
                         "n_failed": int(np.sum(errs >= FAILED_FOLD_ERROR)),
                         **{f"err_{sp.family}": e for sp, e in zip(splits, errs)}})
        cv = pd.DataFrame(rows)
        best = int(np.nanargmin(cv["cv_error"].to_numpy())) if splits and len(cv) else 0
        self.best_index_ = best
        self.best_params_ = dict(grid[best]) if grid else {}
        best_est, _ = _fitted(self.estimator, self.best_params_, train_df)
        if isinstance(best_est, BaseException):
            raise best_est
        self.best_estimator_ = best_est
        self.cv_kind_, self.inner_families_ = kind, [sp.family for sp in splits]
        self.cv_results_, self.n_inner_fits_ = cv, n_fits
        self.seconds_ = time.perf_counter() - t0
        return self

    @interval_predict
    def predict(self, initial_row, params_b) -> pd.DataFrame:
        if not hasattr(self, "best_estimator_"):
            raise NotFittedError("NestedSelection is not fitted; call fit(train_df) first")
        return self.best_estimator_.predict(initial_row, params_b)

    def selection_record(self) -> dict:
        """JSON-ready summary: kind, inner families, chosen parameters, its CV error, fits run."""
        cv_error = self.cv_results_["cv_error"].iloc[self.best_index_] if len(self.cv_results_) else None
        return to_jsonable({"cv_kind": self.cv_kind_, "inner_families": list(self.inner_families_),
                            "best_params": self.best_params_, "cv_error": cv_error,
                            "n_inner_fits": int(self.n_inner_fits_), "seconds": float(self.seconds_)})
