"""An ensemble of the benchmark's methods, weighted inside the training set.

No single method predicts every unseen family best, so the ensemble combines them. Its
weights are chosen by leave-one-family-out inside the training table it is given, exactly
as nested selection chooses a hyper-parameter: each member is fitted without an inner
family G and predicts G from G's smallest model (with a single eligible training family,
as in P1, the inner splits are nested selection's forward ones: the family's larger half
predicted from its smaller half); the weights (non-negative, summing to one)
minimise the benchmark's own error over those inner predictions, the mean over inner
families of the relative MAE (a linear programme, solved by SciPy's HiGHS). The outer
held-out family never reaches a weight. ``combine="median"`` instead takes the median of
the ``top_k`` members with the lowest inner error.

For its conformal intervals (:mod:`capedyn.evaluation.intervals`) the ensemble supplies
its own inner folds: for each inner family G the weights are chosen again without G's
points, so G's residual is an honest out-of-fold error of the whole ensemble.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import linprog
from sklearn.base import BaseEstimator

from .._errors import InputError, NotFittedError, SolveError
from ..models._intervals import interval_predict
from ..data.tables import BENCHMARKS
from .residuals import FoldModel, _points, _scores, relative_residuals
from .selection import _fitted, inner_splits

__all__ = ["EnsembleMethod"]

COMBINES = ("stack", "median")


class EnsembleMethod(BaseEstimator):
    """Weighted combination of benchmark methods (module docstring).

    Parameters
    ----------
    members : mapping name → factory of a fresh, unfitted member (the registry's
        ``ensemble`` passes every other method at its fixed settings).
    combine : ``"stack"`` (linear-programme weights) or ``"median"`` (median of the
        ``top_k`` members with the lowest inner error).
    top_k : members kept by ``combine="median"``.
    min_models : complete models an inner family needs to be held out.

    Attributes
    ----------
    weights_ : member → weight (zero weights omitted); members_ : member → fitted
    estimator; inner_error_ : member → its mean inner relative MAE %; inner_families_.
    """

    def __init__(self, members: dict | None = None, combine: str = "stack",
                 top_k: int = 3, min_models: int = 3):
        self.members = members
        self.combine = combine
        self.top_k = top_k
        self.min_models = min_models

    # ------------------------------------------------------------------ fitting
    def fit(self, train_df: pd.DataFrame) -> "EnsembleMethod":
        if self.combine not in COMBINES:
            raise InputError(f"combine must be one of {COMBINES}, got {self.combine!r}")
        names = _names(self.members)
        inner = _inner_predictions(names, train_df, int(self.min_models), self.members)
        self.inner_families_ = inner["families"]
        self.inner_error_ = dict(zip(inner["names"], _member_errors(inner)))
        self.weights_ = self._weights(inner, np.ones(len(inner["y"]), bool))
        self.members_ = {}
        for name in self.weights_:
            est, _ = _fitted(self.members[name](), {}, train_df)
            if isinstance(est, BaseException):
                raise est
            self.members_[name] = est
        return self

    def _weights(self, inner: dict, keep: np.ndarray) -> dict[str, float]:
        """Member weights from the inner points ``keep`` (all members equal when there are
        no inner folds to learn from)."""
        names, P = inner["names"], inner["P"]
        if not names:
            raise InputError("no ensemble member could be fitted and scored inside the "
                             "training set")
        if not keep.any():
            return {n: 1.0 / len(names) for n in names}
        sub = {**inner, "P": P[:, keep], "y": inner["y"][keep], "fam": inner["fam"][keep]}
        if self.combine == "median":
            order = np.argsort(_member_errors(sub), kind="stable")[: int(self.top_k)]
            return {names[i]: 1.0 / len(order) for i in order}
        w = _stack_weights(sub["P"], sub["y"], sub["fam"])
        return {n: float(v) for n, v in zip(names, w) if v > 1e-9}

    # ------------------------------------------------------------------ predicting
    @interval_predict
    def predict(self, initial_row, params_b) -> pd.DataFrame:
        if not hasattr(self, "weights_"):
            raise NotFittedError("EnsembleMethod is not fitted; call fit(train_df) first")
        sizes = np.atleast_1d(np.asarray(params_b, float))
        preds = {n: _scores(est, initial_row, sizes).reshape(len(sizes), -1)
                 for n, est in self.members_.items()}
        out = _combine(preds, self.weights_, self.combine)
        return pd.DataFrame({"params_b": sizes, **{b: out[:, k] for k, b in enumerate(BENCHMARKS)}})

    # ------------------------------------------------------------------ conformal folds
    def fold_models(self, train_df: pd.DataFrame, min_models: int = 3) -> list:
        """Inner folds for CV+: for each inner family G, members fitted without G and
        weights chosen without G's points; G's residuals from that combination."""

        names = _names(self.members)
        inner = _inner_predictions(names, train_df, int(min_models), self.members,
                                   kinds=("lofo",))
        folds = []
        for g, sp in enumerate(inner["splits"]):
            w = self._weights(inner, inner["fam"] != g)
            ests = {n: inner["fits"][n][g] for n in w}
            mine = inner["fam"] == g
            pred = _combine({n: inner["P"][inner["names"].index(n), mine][None, :] for n in w},
                            w, self.combine).reshape(-1)
            _, actual, bench, decades = _points(sp)

            def predict(init, sizes, ests=ests, w=w):
                s = np.atleast_1d(np.asarray(sizes, float))
                return _combine({n: _scores(e, init, s)[None, :] for n, e in ests.items()},
                                w, self.combine).reshape(-1)

            folds.append(FoldModel(sp.family, predict, relative_residuals(pred, actual),
                                   bench, decades))
        return folds


def _names(members) -> list[str]:
    if not isinstance(members, dict) or not members:
        raise InputError("EnsembleMethod needs members: a mapping name → factory of an "
                         "unfitted estimator")
    return list(members)


def _combine(preds: dict[str, np.ndarray], weights: dict[str, float], combine: str) -> np.ndarray:
    stack = np.stack([preds[n] for n in weights])
    if combine == "median":
        return np.median(stack, axis=0)
    w = np.array([weights[n] for n in weights])
    return np.tensordot(w / w.sum(), stack, axes=1)


def _inner_predictions(names: Sequence[str], train_df: pd.DataFrame, min_models: int,
                       members=None, kinds: Sequence[str] = ("lofo", "forward")) -> dict:
    """Every member's predictions of every inner split's points (members that fail on
    any inner fold are dropped): ``P`` (M, N), ``y`` (N), ``fam`` (N) inner-split index,
    ``fits`` member → list of fold estimators, ``splits``, ``names``, ``families``.
    The splits are nested selection's (:func:`capedyn.evaluation.selection.inner_splits`),
    used when their kind is in ``kinds`` (CV+ folds need families held out: ``("lofo",)``)."""
    kind, splits = inner_splits(train_df, min_models)
    splits = splits if kind in kinds else []
    ys = [sp.targets[list(BENCHMARKS)].to_numpy(float).reshape(-1) for sp in splits]
    kept, rows, fits = [], [], {}
    for name in names:
        preds, ests = [], []
        for sp in splits:
            est, _ = _fitted(members[name](), {}, sp.train)
            try:
                if isinstance(est, BaseException):
                    raise est
                preds.append(_scores(est, sp.initial, sp.targets["params_b"].to_numpy(float)))
            except (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError):
                break
            ests.append(est)
        else:
            kept.append(name)
            rows.append(np.concatenate(preds) if preds else np.zeros(0))
            fits[name] = ests
    fam = np.concatenate([np.full(y.size, g) for g, y in enumerate(ys)]) if ys else np.zeros(0, int)
    return {"names": kept, "P": np.array(rows).reshape(len(kept), -1),
            "y": np.concatenate(ys) if ys else np.zeros(0), "fam": fam, "fits": fits,
            "splits": splits, "families": [sp.family for sp in splits]}


def _point_weights(y: np.ndarray, fam: np.ndarray) -> np.ndarray:
    """Weights that make Σ weight·|error| the mean over families of the relative MAE %."""
    c = np.zeros_like(y)
    groups = np.unique(fam)
    for g in groups:
        m = fam == g
        c[m] = 100.0 / (m.sum() * y[m].mean() * len(groups))
    return c


def _member_errors(inner: dict) -> np.ndarray:
    c = _point_weights(inner["y"], inner["fam"])
    return np.abs(inner["P"] - inner["y"][None, :]) @ c


def _stack_weights(P: np.ndarray, y: np.ndarray, fam: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one that minimise the family-averaged relative MAE
    of ``w @ P`` against ``y``: min c·t subject to −t ≤ Pᵀw − y ≤ t (a linear programme)."""
    m, n = P.shape
    c = np.concatenate([np.zeros(m), _point_weights(y, fam)])
    a_ub = np.block([[P.T, -np.eye(n)], [-P.T, -np.eye(n)]])
    b_ub = np.concatenate([y, -y])
    a_eq = np.concatenate([np.ones(m), np.zeros(n)])[None, :]
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0], bounds=(0, None),
                  method="highs")
    if not res.success:
        raise SolveError(f"ensemble weights: the linear programme failed ({res.message})")
    w = np.clip(res.x[:m], 0.0, None)
    return w / w.sum()


def ensemble_record(est: Any) -> dict:
    """JSON-ready weights and inner errors of a fitted ensemble."""
    return {"weights": dict(est.weights_), "inner_error": dict(est.inner_error_),
            "inner_families": list(est.inner_families_)}
