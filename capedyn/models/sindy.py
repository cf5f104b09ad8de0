"""Sparse discovery of the coupling ODE with pysindy.

:class:`SparseCouplingODE` finds a sparse polynomial field dz/dx = Ξ·Θ(z) from the
training families' trajectories, where

* z = ``to_state(scores)`` is the same bounded latent state as the learned coupling ODE,
* x = log10 N (N in parameters),
* Θ(z) is the 21-term degree-2 library of :func:`capedyn.dynamics.state.polynomial_features`
  (pysindy's ``PolynomialLibrary(degree=2)`` order), so Ξ (``coef_``, shape (5, 21))
  compares term by term with the learned field's ``coef``.

Derivatives. Families have 2–8 models at uneven sizes. The default
``differentiation="midpoint"`` uses the secant between consecutive models, placed at the
midpoint of the interval in both x and z: a second-order estimate on any grid that needs
only two models and no one-sided end formulas. ``differentiation="finite_difference"``
uses pysindy's ``FiniteDifference(order=2)`` on each family's own uneven x grid (at the
models themselves; families with fewer than three models are then unusable).

Sparsity. The STLSQ threshold and ridge ``alpha`` are chosen by cross-validation inside
the training families only (a held-out family of the benchmark never enters): with two or
more training families, leave one training family out, fit on the rest, integrate the
candidate field from that family's smallest model with the package's Diffrax solve and
score its relative MAE (%) on the family's other models — the benchmark's own metric, one
level down (solves with :func:`capedyn.dynamics.field.solve_unchecked`, batched over candidates; a
failed solve is charged ``FAILED_FOLD_ERROR`` = 100 %). With a single training family (the paper's split, Pythia only),
leave-one-sample-out derivative error is used instead.

Prediction integrates ``to_field()`` (``CouplingField.from_polynomial(coef_)``) with
:func:`capedyn.dynamics.field.solve`, the solve used by the learned coupling ODE.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .._errors import InputError, NotFittedError
from .._fitmemo import FitMemo, array_digest
from ._intervals import interval_predict
from .._jax import scoped_x64
from ..dynamics.state import (
    SHORT, N_FEATURES, N_STATE, feature_names, from_state, polynomial_features, to_state,
)
from ..dynamics.trajectory import Trajectory
from .baselines import (
    family_trajectories, initial_condition, midpoint_differences, prediction_frame, _targets,
)
from ..data.tables import BENCHMARKS

__all__ = ["SparseCouplingODE", "PAPER_HS_EQUATION", "format_equation", "sparse_hs_equation"]

PAPER_HS_EQUATION = {"1": 1.23, "TQA": -0.72, "WG": -0.69}
"""The paper's sparse HS equation, dHS/dx = 1.23 − 0.72·TQA − 0.69·WG (Pythia; the paper's
own score normalisation, which is not our latent state — compare signs and sparsity)."""

STATES = ("latent", "fraction", "standardized")


def format_equation(target: str, coef: np.ndarray, names: Sequence[str], precision: int = 3) -> str:
    """'dHS/dx = 1.23 - 0.72·TQA' from one row of coefficients (zero terms omitted)."""
    terms = []
    for c, name in zip(coef, names):
        if c == 0.0:
            continue
        mag = f"{abs(c):.{precision}g}"
        body = mag if name == "1" else f"{mag}·{name}"
        terms.append(("- " if c < 0 else "+ ") + body)
    if not terms:
        return f"d{target}/dx = 0"
    text = " ".join(terms)
    text = text[2:] if text.startswith("+ ") else "-" + text[2:]
    return f"d{target}/dx = {text}"


class SparseCouplingODE(BaseEstimator):
    """SINDy (STLSQ, degree-2 polynomial library) on the latent trajectories of the
    training families; threshold and ridge alpha chosen by cross-validation inside them.

    Parameters
    ----------
    thresholds, alphas : candidate STLSQ thresholds (latent units per decade) and ridge
        strengths; the grid is their product. A single pair skips cross-validation.
    differentiation : ``"midpoint"`` (default) or ``"finite_difference"`` (see module doc).
    unbias : refit the kept terms without ridge (pysindy's ``unbias``). Off by default:
        a single short family gives fewer samples than library terms, and the ridge is what
        makes the fit well posed there.
    state : ``"latent"`` (default; the only state that can be integrated), or
        ``"fraction"`` (scores / 100) / ``"standardized"`` (z-score per benchmark over the
        training rows) to display equations in score terms beside the paper's.
    max_iter : STLSQ iterations.
    degree : library degree, 2 (default, the shared 21-term library) or 1 (constant and
        linear terms only, the paper's linear form; ``coef_`` keeps shape (5, 21) with the
        quadratic columns zero).
    selection : ``"min"`` (default) takes the grid point with the lowest cross-validated
        error; ``"1se"`` the one-standard-error rule: among the grid points whose error is
        within one standard error (over folds) of the minimum, the one whose full fit keeps
        the fewest terms (ties: lower error).

    Attributes
    ----------
    coef_ : (5, 21) coefficients Ξ over ``feature_names()``, per decade of N.
    threshold_, alpha_ : the selected pair. ``cv_results_`` : DataFrame of the grid search
    (``threshold, alpha, cv_error, cv_se, n_terms, n_failed, cv_kind``). ``threshold_min_``,
    ``alpha_min_`` : the minimum-error pair (equal to the selected one under ``"min"``). ``families_`` : training families used.
    ``n_samples_`` : derivative samples. ``n_terms_`` : nonzero coefficients.
    """

    def __init__(self, thresholds: Sequence[float] = (0.0, 0.03, 0.1, 0.3, 1.0),
                 alphas: Sequence[float] = (1e-2, 1e-1, 1.0, 10.0, 100.0),
                 differentiation: str = "midpoint", unbias: bool = False,
                 state: str = "latent", max_iter: int = 20, degree: int = 2,
                 selection: str = "min"):
        self.thresholds = thresholds
        self.alphas = alphas
        self.differentiation = differentiation
        self.unbias = unbias
        self.state = state
        self.max_iter = max_iter
        self.degree = degree
        self.selection = selection

    # -- data --------------------------------------------------------------------------
    def _transform(self, scores: np.ndarray) -> np.ndarray:
        if self.state == "latent":
            return to_state(scores)
        if self.state == "fraction":
            return scores / 100.0
        return (scores - self.center_) / self.scale_

    def _samples(self, traj: Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, z, dz/dx) derivative samples of one family (possibly empty)."""
        z = self._transform(traj.scores)
        if self.differentiation == "midpoint":
            return midpoint_differences(traj.x, z)
        if len(traj.x) < 3:
            return traj.x[:0], z[:0], z[:0]
        import pysindy as ps

        return traj.x, z, np.asarray(ps.FiniteDifference(order=2)._differentiate(z, traj.x))

    # -- fitting -----------------------------------------------------------------------
    def _stlsq(self, samples, threshold: float, alpha: float) -> np.ndarray:
        """:meth:`_stlsq_fresh`, memoised on the exact samples and settings (a pure function
        of them: the leave-one-family-out folds and the two selection rules repeat fits)."""
        key = array_digest(*(a for s in samples for a in s),
                           extra=("stlsq", float(threshold), float(alpha), self.degree,
                                  bool(self.unbias), int(self.max_iter)))
        coef, _ = _SINDY_FITS.get_or_fit(key, lambda: self._stlsq_fresh(samples, threshold, alpha))
        return coef.copy()

    def _stlsq_fresh(self, samples, threshold: float, alpha: float) -> np.ndarray:
        """pysindy STLSQ on the stacked library Θ(z) → (5, 21) coefficients.

        Θ is :func:`polynomial_features`, identical (order included) to pysindy's
        ``PolynomialLibrary(degree=2)`` — see :meth:`sindy_model`, which fits through the
        full ``ps.SINDy`` pipeline and gives the same coefficients. Building Θ ourselves
        avoids pysindy's per-call library overhead inside the cross-validation loops.
        """
        import pysindy as ps

        n_terms = 1 + N_STATE if self.degree == 1 else N_FEATURES
        theta = np.vstack([polynomial_features(s[1])[:, :n_terms] for s in samples])
        dz = np.vstack([s[2] for s in samples])
        opt = ps.STLSQ(threshold=threshold, alpha=alpha, unbias=self.unbias, max_iter=self.max_iter)
        with warnings.catch_warnings():
            # STLSQ warns when a threshold removes every term; an all-zero row is a valid answer
            warnings.simplefilter("ignore", UserWarning)
            opt.fit(theta, dz)
        coef = np.zeros((N_STATE, N_FEATURES))
        coef[:, :n_terms] = np.asarray(opt.coef_, dtype=float).reshape(N_STATE, n_terms)
        return coef

    def sindy_model(self):
        """The selected fit as a fitted ``pysindy.SINDy`` object (for pysindy's own tools)."""
        import pysindy as ps

        self._check_fitted()
        samples = list(self._samples_.values())
        model = ps.SINDy(
            optimizer=ps.STLSQ(threshold=self.threshold_, alpha=self.alpha_,
                               unbias=self.unbias, max_iter=self.max_iter),
            feature_library=ps.PolynomialLibrary(degree=self.degree))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model.fit([s[1] for s in samples], t=[s[0] for s in samples],
                      x_dot=[s[2] for s in samples],
                      feature_names=[SHORT[b] for b in BENCHMARKS])
        return model

    @scoped_x64
    def fit(self, train_df: pd.DataFrame) -> "SparseCouplingODE":
        """Discover the sparse field from every training family with ≥ 2 complete models
        (rows with a missing score are dropped; ≥ 3 with ``finite_difference``)."""
        if self.state not in STATES:
            raise InputError(f"state must be one of {STATES}, got {self.state!r}")
        if self.differentiation not in ("midpoint", "finite_difference"):
            raise InputError("differentiation must be 'midpoint' or 'finite_difference', "
                             f"got {self.differentiation!r}")
        if self.degree not in (1, 2):
            raise InputError(f"degree must be 1 or 2, got {self.degree!r}")
        if self.selection not in ("min", "1se"):
            raise InputError(f"selection must be 'min' or '1se', got {self.selection!r}")
        if not len(self.thresholds) or not len(self.alphas):
            raise InputError("thresholds and alphas need at least one value each")
        trajs = family_trajectories(train_df, min_points=2)
        if self.state == "standardized":
            allrows = np.vstack([t.scores for t in trajs]) if trajs else np.zeros((0, N_STATE))
            self.center_, self.scale_ = allrows.mean(axis=0), allrows.std(axis=0)
        samples = {t.family: self._samples(t) for t in trajs}
        samples = {f: s for f, s in samples.items() if len(s[0])}
        if not samples:
            raise InputError("SINDy needs at least one training family with "
                             f"{2 if self.differentiation == 'midpoint' else 3} complete models")
        self._samples_ = samples
        self.families_ = list(samples)
        self.n_samples_ = int(sum(len(s[0]) for s in samples.values()))
        trajs = [t for t in trajs if t.family in samples]
        cv = self._cross_validate(trajs, samples)
        cv["n_terms"] = [int(np.count_nonzero(self._stlsq(list(samples.values()), th, al)))
                         for th, al in zip(cv["threshold"], cv["alpha"])]
        self.cv_results_ = cv
        best = cv.sort_values(["cv_error", "threshold", "alpha"],
                              ascending=[True, False, False]).iloc[0]
        self.threshold_min_, self.alpha_min_ = float(best["threshold"]), float(best["alpha"])
        if self.selection == "1se" and np.isfinite(best["cv_se"]):
            within = cv[cv["cv_error"] <= best["cv_error"] + best["cv_se"]]
            best = within.sort_values(["n_terms", "cv_error", "threshold", "alpha"],
                                      ascending=[True, True, False, False]).iloc[0]
        self.threshold_, self.alpha_ = float(best["threshold"]), float(best["alpha"])
        self.coef_ = self._stlsq(list(samples.values()), self.threshold_, self.alpha_)
        self.n_terms_ = int(np.count_nonzero(self.coef_))
        return self

    def _grid(self) -> list[tuple[float, float]]:
        return [(float(t), float(a)) for t in self.thresholds for a in self.alphas]

    def _cross_validate(self, trajs: list[Trajectory], samples: dict) -> pd.DataFrame:
        """:meth:`_cross_validate_fresh`, memoised on the trajectories, samples and every
        setting it reads (``selection`` is applied afterwards: both rules share one CV)."""
        arrays = [a for t in trajs for a in (t.x, t.scores)]
        arrays += [a for s in samples.values() for a in s]
        key = array_digest(*arrays, extra=(
            "cv", [t.family for t in trajs], list(samples), self._grid(), self.state,
            self.degree, bool(self.unbias), int(self.max_iter), self.differentiation))
        cv, _ = _SINDY_FITS.get_or_fit(key, lambda: self._cross_validate_fresh(trajs, samples))
        return cv.copy()

    def _cross_validate_fresh(self, trajs: list[Trajectory], samples: dict) -> pd.DataFrame:
        grid = self._grid()
        if len(grid) == 1:
            return pd.DataFrame([{"threshold": grid[0][0], "alpha": grid[0][1],
                                  "cv_error": np.nan, "cv_se": np.nan, "n_failed": 0,
                                  "cv_kind": "none"}])
        if len(samples) >= 2 and self.state == "latent":
            errors = np.empty((len(grid), len(trajs)))
            for j, held in enumerate(trajs):
                rest = [s for f, s in samples.items() if f != held.family]
                coefs = np.stack([self._stlsq(rest, th, al) for th, al in grid])
                errors[:, j] = _trajectory_errors(coefs, held)
            failed = ~np.isfinite(errors)
            charged = np.where(failed, FAILED_FOLD_ERROR, errors)
            score = charged.mean(axis=1)
            se = charged.std(axis=1, ddof=1) / np.sqrt(charged.shape[1])
            kind = "leave-one-family-out rel MAE %"
            n_failed = failed.sum(axis=1)
        else:
            # one training family: leave one derivative sample out, squared error of dz/dx
            stacked = [np.concatenate([s[i] for s in samples.values()]) for i in range(3)]
            n = len(stacked[0])
            per = np.zeros((len(grid), n))
            for i in range(n):
                keep = np.arange(n) != i
                theta_i = polynomial_features(stacked[1][i])
                for g, (th, al) in enumerate(grid):
                    coef = self._stlsq([tuple(a[keep] for a in stacked)], th, al)
                    per[g, i] = np.mean((coef @ theta_i - stacked[2][i]) ** 2)
            score = per.mean(axis=1)
            se = per.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(grid), np.nan)
            kind, n_failed = "leave-one-sample-out derivative MSE", np.zeros(len(grid), int)
        return pd.DataFrame({"threshold": [g[0] for g in grid], "alpha": [g[1] for g in grid],
                             "cv_error": score, "cv_se": se, "n_failed": n_failed,
                             "cv_kind": kind})

    # -- results -----------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("SparseCouplingODE is not fitted; call fit(train_df) first")

    def equations(self, precision: int = 3) -> list[str]:
        """One readable equation per benchmark, e.g. ``dHS/dx = 0.41 - 0.2·TQA + ...``;
        symbols are the state named by ``state`` (latent z by default)."""
        self._check_fitted()
        names = feature_names()
        return [format_equation(_short(b), row, names, precision)
                for b, row in zip(BENCHMARKS, self.coef_)]

    def equation_terms(self, benchmark: str = "hellaswag") -> dict[str, float]:
        """Nonzero terms of one benchmark's equation: library name → coefficient."""
        self._check_fitted()
        row = self.coef_[list(BENCHMARKS).index(benchmark)]
        return {n: float(c) for n, c in zip(feature_names(), row) if c != 0.0}

    def to_field(self):
        """The discovered field as a :class:`capedyn.dynamics.field.CouplingField` (pure polynomial)."""
        self._check_fitted()
        if self.state != "latent":
            raise InputError(f"only a latent-state fit can be integrated; this one used state={self.state!r}")
        from ..dynamics.field import CouplingField

        return CouplingField.from_polynomial(self.coef_)

    @interval_predict
    @scoped_x64
    def predict(self, initial_row, params_b) -> pd.DataFrame:
        """Scores (percent) at ``params_b`` (billions), integrating from ``initial_row``'s
        five scores with the Diffrax solve of :mod:`capedyn.dynamics.field`."""
        from ..dynamics.field import FamilyParams, predict_scores

        field = self.to_field()
        p0, y0 = initial_condition(initial_row)
        p = _targets(params_b)
        name = str(initial_row.get("family", "held-out family")) if hasattr(initial_row, "get") else "held-out family"
        scores = predict_scores(field, FamilyParams.make(), y0, p0, p, name=name)
        return prediction_frame(p, scores)


def sparse_hs_equation(train_df: pd.DataFrame, states: Sequence[str] = STATES, **config) -> dict:
    """The discovered HellaSwag equation beside the paper's, for each state normalisation.

    ``states``: any of ``"latent"`` (our bounded logit state; the one the ODE integrates),
    ``"standardized"`` (z-score per benchmark over the training rows) and ``"fraction"``
    (score / 100). Thresholds and alpha are chosen by the same cross-validation as
    :meth:`SparseCouplingODE.fit` unless given in ``config``. The paper's coefficients
    belong to its own normalisation, so only signs and sparsity pattern compare.
    """
    paper = format_equation("HS", np.array([PAPER_HS_EQUATION.get(n, 0.0) for n in feature_names()]),
                            feature_names())
    out = {"paper": paper, "paper_note": "Pythia, the paper's own score normalisation",
           "training_families": sorted(set(train_df["family"])), "fits": []}
    for state in states:
        est = SparseCouplingODE(state=state, **config).fit(train_df)
        out["fits"].append({"state": state, "equation": est.equations()[0],
                            "terms": est.equation_terms("hellaswag"),
                            "threshold": est.threshold_, "alpha": est.alpha_,
                            "n_terms_hs": len(est.equation_terms("hellaswag")),
                            "cv_kind": str(est.cv_results_["cv_kind"].iloc[0])})
    return out


def _short(benchmark: str) -> str:
    return SHORT[benchmark]


FAILED_FOLD_ERROR = 100.0
"""CV error (%) charged to a candidate whose solve fails on a fold: the relative MAE of
predicting 0 for every score. A null field (all terms thresholded away) never fails, so
without a finite charge cross-validation would prefer it over any field that integrates
on most folds; with it, a failure costs as much as the worst sensible prediction."""

_SINDY_FITS = FitMemo(20_000)
"""STLSQ coefficients and cross-validation tables by the exact bytes of their inputs."""

CV_MAX_STEPS = 256
"""Step budget of the cross-validation solves (a family spans at most ~3 decades; a
candidate needing more steps is blowing up)."""

_PAD = 8
_batched_solve_fn = None


def _batched_solve():
    """jit(vmap) of :func:`capedyn.dynamics.field.solve_unchecked` over candidate coefficient arrays."""
    global _batched_solve_fn
    if _batched_solve_fn is None:
        import equinox as eqx
        import jax

        from ..dynamics.field import CouplingField, FamilyParams, solve_unchecked

        def one(coef, z0, x0, xs):
            return solve_unchecked(CouplingField.from_polynomial(coef), z0, x0, xs,
                                   FamilyParams.make(), max_steps=CV_MAX_STEPS)

        _batched_solve_fn = eqx.filter_jit(jax.vmap(one, in_axes=(0, None, None, None)))
    return _batched_solve_fn


@scoped_x64
def _trajectory_errors(coefs: np.ndarray, held: Trajectory) -> np.ndarray:
    """Relative MAE (%) of each candidate field (k, 5, 21) integrated from ``held``'s first
    model over its other models; inf where the solve fails. Sizes are padded to a multiple
    of 8 (repeating the last) so every family shares one compiled solve."""
    import jax.numpy as jnp

    xs = held.x[1:]
    n = len(xs)
    padded = np.concatenate([xs, np.repeat(xs[-1], -n % _PAD)])
    zs, ok = _batched_solve()(jnp.asarray(coefs), jnp.asarray(to_state(held.scores[0])),
                              jnp.asarray(held.x[0]), jnp.asarray(padded))
    zs, ok = np.asarray(zs)[:, :n], np.asarray(ok)
    with np.errstate(over="ignore"):  # a diverged candidate's z; masked out below
        pred = from_state(np.nan_to_num(zs))
    actual = held.scores[1:]
    err = 100.0 * np.abs(pred - actual).mean(axis=(1, 2)) / actual.mean()
    return np.where(ok & np.isfinite(zs).all(axis=(1, 2)), err, np.inf)
