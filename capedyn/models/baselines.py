"""Reference methods for the held-out family benchmark.

* :class:`LinearODE` — the paper's linear ODE ``dy/dx = C·y + c`` in raw percent scores,
  fit by least squares on finite differences of the training families' trajectories and
  integrated in closed form from the held-out family's initial model.
* :class:`PolynomialBaseline` — per benchmark, a polynomial in x = log10 N pooled over
  the training families, as fitted or shifted to pass through the initial model.

Both follow the estimator convention of the package (scikit-learn's: explicit keyword
arguments in the constructor stored as given, so ``sklearn.base.clone`` and
``get_params``/``set_params`` work; fitted state in trailing-underscore attributes),
``fit(train_df)`` learns from a base-model table, ``predict(initial_row, params_b)``
returns a DataFrame with ``params_b`` (billions), the five scores (percent) and an
``out_of_range`` flag. Predictions are never clipped: a baseline that leaves [0, 100]
does so visibly in that flag.

The helpers :func:`family_trajectories`, :func:`midpoint_differences`,
:func:`initial_condition` and :func:`prediction_frame` are shared with the SINDy and
coupling-ODE adapters so every method reads the same data the same way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .._errors import InputError, NotFittedError
from ._intervals import interval_predict
from ..dynamics.trajectory import Trajectory, trajectories
from ..data.tables import BENCHMARKS, log10_params


# ---------------------------------------------------------------------------------------
# shared data plumbing

def family_trajectories(df: pd.DataFrame, min_points: int = 2) -> list[Trajectory]:
    """Per family, the complete rows (all five scores) sorted by size, as the one
    :class:`capedyn.dynamics.trajectory.Trajectory` type every method shares; families with fewer
    than ``min_points`` complete models are omitted (a single point carries no slope)."""
    return trajectories(df, min_models=min_points)


def midpoint_differences(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Secant slopes between consecutive sizes, located at the interval midpoints.

    Returns ``(x_mid, y_mid, dy_dx)`` with ``y_mid`` the average of the two end states.
    The secant is a second-order estimate of the derivative at the midpoint on any
    (uneven) grid and needs only two points, which suits families of 2–8 models.
    """
    dx = np.diff(x)
    return (x[1:] + x[:-1]) / 2, (y[1:] + y[:-1]) / 2, np.diff(y, axis=0) / dx[:, None]


def initial_condition(initial_row) -> tuple[float, np.ndarray]:
    """``(params_b, scores)`` of the held-out family's smallest model; all five scores required."""
    row = pd.Series(initial_row) if isinstance(initial_row, dict) else initial_row
    missing = [b for b in ("params_b", *BENCHMARKS) if b not in row.index or pd.isna(row[b])]
    if missing:
        name = row.get("model", "the initial row")
        raise InputError(f"initial condition {name!r} lacks {missing}; the held-out family's "
                         "smallest model needs params_b and all five scores")
    return float(row["params_b"]), row[list(BENCHMARKS)].to_numpy(dtype=float)


def prediction_frame(params_b: Sequence[float], scores: np.ndarray) -> pd.DataFrame:
    """DataFrame ``params_b`` + five score columns (percent) + ``out_of_range`` flag."""
    scores = np.asarray(scores, dtype=float).reshape(len(params_b), len(BENCHMARKS))
    out = pd.DataFrame(scores, columns=list(BENCHMARKS))
    out.insert(0, "params_b", np.asarray(params_b, dtype=float))
    out["out_of_range"] = ((scores < 0.0) | (scores > 100.0)).any(axis=1)
    return out


def _targets(params_b) -> np.ndarray:
    p = np.atleast_1d(np.asarray(params_b, dtype=float))
    if p.size == 0 or not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise InputError(f"params_b must be positive finite sizes in billions, got {list(p)}")
    return p


class _NotFitted(BaseEstimator):
    """scikit-learn estimator base (``get_params``/``set_params``/``sklearn.base.clone``)
    plus a not-fitted check."""

    def _check_fitted(self, attr: str) -> None:
        if not hasattr(self, attr):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(train_df) first")


# ---------------------------------------------------------------------------------------
# the paper's linear ODE

class LinearODE(_NotFitted):
    """The paper's linear ODE ``dy/dx = C·y + c`` in raw percent, x = log10 N.

    Fit: every training family with at least two complete models contributes its secant
    slopes at interval midpoints (:func:`midpoint_differences`); ``[C | c]`` is the
    least-squares solution of ``dy/dx ≈ C·y_mid + c`` over all of them (``numpy.linalg.lstsq``,
    minimum-norm when the system is under-determined, as for a single short family).

    Predict: the affine system is solved exactly with the matrix exponential of the
    augmented generator, ``[y(x); 1] = expm(A·(x − x0)) [y0; 1]`` with
    ``A = [[C, c], [0, 0]]`` (``scipy.linalg.expm``); no step-size error.

    Attributes: ``C_`` (5, 5) per unit log10 N, ``c_`` (5,) percent per unit log10 N,
    ``n_samples_`` (number of secant samples), ``families_``.
    """

    def fit(self, train_df: pd.DataFrame) -> "LinearODE":
        trajs = family_trajectories(train_df, min_points=2)
        if not trajs:
            raise InputError("LinearODE needs at least one training family with two complete models")
        mids, slopes = [], []
        for t in trajs:
            _, y_mid, dy = midpoint_differences(t.x, t.scores)
            mids.append(y_mid)
            slopes.append(dy)
        Y, dY = np.vstack(mids), np.vstack(slopes)
        design = np.hstack([Y, np.ones((len(Y), 1))])
        coef, *_ = np.linalg.lstsq(design, dY, rcond=None)
        self.C_, self.c_ = coef[:-1].T, coef[-1]
        self.n_samples_ = len(Y)
        self.families_ = [t.family for t in trajs]
        return self

    def generator(self) -> np.ndarray:
        """Augmented 6×6 generator ``[[C, c], [0, 0]]`` of the affine flow."""
        self._check_fitted("C_")
        A = np.zeros((len(BENCHMARKS) + 1,) * 2)
        A[:-1, :-1], A[:-1, -1] = self.C_, self.c_
        return A

    @interval_predict
    def predict(self, initial_row, params_b) -> pd.DataFrame:
        from scipy.linalg import expm

        A = self.generator()
        p0, y0 = initial_condition(initial_row)
        p = _targets(params_b)
        x0, xs = log10_params(p0), log10_params(p)
        state0 = np.append(y0, 1.0)
        ys = np.array([(expm(A * (x - x0)) @ state0)[:-1] for x in xs])
        return prediction_frame(p, ys)


# ---------------------------------------------------------------------------------------
# polynomials in log10 N

class PolynomialBaseline(_NotFitted):
    """Per benchmark, a degree-``degree`` polynomial in x = log10 N pooled over families.

    Fit: for each benchmark, least squares over every training row where that score is
    present (``numpy.polynomial.Polynomial.fit``, which rescales x internally for
    conditioning). Rows with some other score missing still count for the scores they have.

    ``anchored=True`` adds a constant per benchmark so the curve passes exactly through the
    held-out family's initial model; ``anchored=False`` ignores the initial scores (it uses
    nothing of the held-out family but the sizes to predict at).

    Attributes: ``polynomials_`` (benchmark → ``numpy.polynomial.Polynomial``),
    ``n_points_`` (benchmark → number of points used).
    """

    def __init__(self, degree: int = 2, anchored: bool = False):
        self.degree = degree
        self.anchored = anchored

    def fit(self, train_df: pd.DataFrame) -> "PolynomialBaseline":
        from numpy.polynomial import Polynomial

        if not isinstance(self.degree, (int, np.integer)) or self.degree < 0:
            raise InputError(f"degree must be a non-negative integer, got {self.degree!r}")
        self.polynomials_, self.n_points_ = {}, {}
        for b in BENCHMARKS:
            rows = train_df.dropna(subset=[b])
            x = log10_params(rows["params_b"].to_numpy())
            if len(np.unique(x)) < self.degree + 1:
                raise InputError(f"a degree-{self.degree} polynomial for {b} needs at least "
                                 f"{self.degree + 1} distinct sizes in training; got {len(np.unique(x))}")
            self.polynomials_[b] = Polynomial.fit(x, rows[b].to_numpy(dtype=float), self.degree)
            self.n_points_[b] = len(rows)
        return self

    def coefficients(self) -> dict[str, np.ndarray]:
        """Benchmark → coefficients in increasing powers of x = log10 N (unscaled domain)."""
        self._check_fitted("polynomials_")
        return {b: p.convert().coef for b, p in self.polynomials_.items()}

    @interval_predict
    def predict(self, initial_row, params_b) -> pd.DataFrame:
        self._check_fitted("polynomials_")
        p = _targets(params_b)
        xs = log10_params(p)
        cols = []
        if self.anchored:
            p0, y0 = initial_condition(initial_row)
            x0 = log10_params(p0)
        for k, b in enumerate(BENCHMARKS):
            poly = self.polynomials_[b]
            shift = (y0[k] - poly(x0)) if self.anchored else 0.0
            cols.append(poly(xs) + shift)
        return prediction_frame(p, np.column_stack(cols))
