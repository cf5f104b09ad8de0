"""The field's peer methods for the held-out family benchmark, under the same protocol.

Every peer works in *floor-normalised logit* space: for benchmark k with chance rate c_k
(HellaSwag, ARC, MMLU 25; WinoGrande 50; TruthfulQA MC2 20) and a floor
f_k = c_k − ``floor_slack`` (percent),

    z_k = logit(u_k),   u_k = clip((s_k − f_k) / (100 − f_k), u_clip, 1 − u_clip).

Small models score a few points *below* chance, so the floor is a hyper-parameter
(``floor_slack``, points below chance) chosen, like every other one, inside the training
set (see :mod:`capedyn.evaluation.selection`). x = log10 N with N in parameters.

* :class:`LogitRateModel` — no learning beyond one slope per benchmark: z_k moves along
  the pooled within-family slope of z_k on x from the held-out family's initial model.
* :class:`PCACapabilityModel` — ObsScaling-style (Ruan et al. 2024): principal
  components of the standardised logit scores of the training models; each component
  moves along its pooled within-family slope in x; scores are read back from the
  components (the initial model's residual off the K-component plane is kept, so the
  prediction starts exactly at the initial model).
* :class:`LatentSkillModel` — Sloth-style (Maia Polo et al. 2024): K latent skills
  θ_f(x) = α_f + β·x per family (family intercepts α_f, shared slopes β), benchmark
  read-outs s_k = f_k + (100 − f_k)·sigmoid(λ_k·θ + c_k) shared by all families, fit by
  least squares in score points (scipy's trust-region ``least_squares``) over every
  training score present. A new family's α_F is fit to its smallest model only.

All three are scikit-learn style estimators (``sklearn.base.BaseEstimator``: explicit
keyword arguments stored as given, fitted state in trailing-underscore attributes set by
``fit(train_df)``) and ``predict(initial_row, params_b)`` returns the same frame as the
other benchmark methods (``params_b`` in billions, five scores in percent,
``out_of_range``).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .._errors import CapedynError, InputError
from .._workers import one_blas_thread
from ._intervals import interval_predict
from ..dynamics.state import CHANCE, CEILING
from .baselines import initial_condition, prediction_frame, _targets
from ..data.tables import BENCHMARKS, log10_params

__all__ = ["LogitRateModel", "PCACapabilityModel", "LatentSkillModel", "peer_floors",
           "floor_logit", "floor_logit_inverse", "pooled_within_slopes"]

_CHANCE = np.array([CHANCE[b] for b in BENCHMARKS])
N_BENCH = len(BENCHMARKS)


class PeerFitError(CapedynError, ValueError):
    """A peer method cannot be fitted on the given training table."""


def peer_floors(floor_slack: float) -> np.ndarray:
    """Floors (percent) ``chance − floor_slack`` in ``BENCHMARKS`` order."""
    slack = float(floor_slack)
    if not np.isfinite(slack) or slack < 0 or slack >= 20:
        raise InputError(f"floor_slack must be in [0, 20) points below chance, got {floor_slack!r}")
    return _CHANCE - slack


def floor_logit(scores, floors, u_clip: float = 0.005) -> np.ndarray:
    """Percent scores (..., 5) → z = logit of the above-floor fraction, clipped to
    [u_clip, 1 − u_clip] (a score at or below its floor maps to logit(u_clip))."""
    s = np.asarray(scores, dtype=float)
    u = np.clip((s - floors) / (CEILING - floors), u_clip, 1.0 - u_clip)
    return np.log(u) - np.log1p(-u)


def floor_logit_inverse(z, floors) -> np.ndarray:
    """z (..., 5) → percent scores, inside (floor, 100)."""
    return floors + (CEILING - floors) / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def pooled_within_slopes(x: np.ndarray, values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Pooled within-group least-squares slope of each column of ``values`` on ``x``.

    Each group (family) is centred on its own means, so a family's level never enters the
    slope: slope_k = Σ (x − x̄_g)(v_k − v̄_g,k) / Σ (x − x̄_g)². NaN entries are skipped
    per column; groups with fewer than two points in a column add nothing to it."""
    x = np.asarray(x, float)
    values = np.asarray(values, float).reshape(len(x), -1)
    groups = np.asarray(groups)
    out = np.full(values.shape[1], np.nan)
    for k in range(values.shape[1]):
        num = den = 0.0
        ok = np.isfinite(values[:, k])
        for g in dict.fromkeys(groups[ok]):
            m = ok & (groups == g)
            if m.sum() < 2:
                continue
            dx = x[m] - x[m].mean()
            num += float(dx @ (values[m, k] - values[m, k].mean()))
            den += float(dx @ dx)
        if den > 0:
            out[k] = num / den
    return out


def _rows(train_df: pd.DataFrame):
    """(x, scores with NaN, family labels) of every training row with a size."""
    df = train_df[np.isfinite(pd.to_numeric(train_df["params_b"], errors="coerce"))]
    x = log10_params(df["params_b"].to_numpy(dtype=float))
    return x, df[list(BENCHMARKS)].to_numpy(dtype=float), df["family"].astype(str).to_numpy()


class _Peer(BaseEstimator):
    def _check_fitted(self) -> None:
        if not hasattr(self, "floors_"):
            raise CapedynError(f"{type(self).__name__} is not fitted; call fit(train_df) first")

    def _start(self, initial_row):
        p0, y0 = initial_condition(initial_row)
        return p0, y0, float(log10_params(p0))

    def _start_logit(self, initial_row, params_b):
        """(target sizes in billions, their log10 N minus the start's, z0 of the start)."""
        self._check_fitted()
        _, y0, x0 = self._start(initial_row)
        p = _targets(params_b)
        return p, log10_params(p) - x0, floor_logit(y0, self.floors_, self.u_clip)


# ---------------------------------------------------------------------------------------

class LogitRateModel(_Peer):
    """No-learning peer: each benchmark's floor-normalised logit moves at one pooled rate.

    Parameters
    ----------
    floor_slack : points below chance of every floor (percent).
    u_clip : clip of the above-floor fraction before the logit.

    Attributes
    ----------
    floors_ : (5,) floors in percent. slopes_ : (5,) pooled within-family slopes of z on
    x = log10 N (logit units per decade). n_families_ : families contributing a slope.
    """

    def __init__(self, floor_slack: float = 10.0, u_clip: float = 0.005):
        self.floor_slack = floor_slack
        self.u_clip = u_clip

    def fit(self, train_df: pd.DataFrame) -> "LogitRateModel":
        floors = peer_floors(self.floor_slack)
        x, s, fam = _rows(train_df)
        z = floor_logit(s, floors, self.u_clip)
        z[~np.isfinite(s)] = np.nan
        slopes = pooled_within_slopes(x, z, fam)
        if not np.all(np.isfinite(slopes)):
            missing = [b for b, v in zip(BENCHMARKS, slopes) if not np.isfinite(v)]
            raise PeerFitError(f"logit_rate needs a training family with two sizes for {missing}")
        self.floors_, self.slopes_ = floors, slopes
        self.n_families_ = int(sum(1 for g in dict.fromkeys(fam) if (fam == g).sum() >= 2))
        return self

    @interval_predict
    def predict(self, initial_row, params_b) -> pd.DataFrame:
        p, dx, z0 = self._start_logit(initial_row, params_b)
        z = z0 + np.outer(dx, self.slopes_)
        return prediction_frame(p, floor_logit_inverse(z, self.floors_))


# ---------------------------------------------------------------------------------------

class PCACapabilityModel(_Peer):
    """ObsScaling-style principal-capability model (see the module docstring).

    Parameters
    ----------
    n_components : number of principal capabilities K (1–5).
    floor_slack, u_clip : the floor-normalised logit (see the module docstring).

    Attributes
    ----------
    floors_ ; mean_, scale_ : (5,) centring and scaling of z over the complete training
    models ; components_ : (K, 5) principal directions (rows, unit norm) ;
    explained_variance_ratio_ : (K,) ; slopes_ : (K,) pooled within-family slopes of the
    component scores per decade ; rate_ : (5,) the implied logit rate per benchmark.
    """

    def __init__(self, n_components: int = 2, floor_slack: float = 10.0, u_clip: float = 0.005):
        self.n_components = n_components
        self.floor_slack = floor_slack
        self.u_clip = u_clip

    def fit(self, train_df: pd.DataFrame) -> "PCACapabilityModel":
        k = int(self.n_components)
        if not 1 <= k <= N_BENCH:
            raise InputError(f"n_components must be in 1..{N_BENCH}, got {self.n_components!r}")
        floors = peer_floors(self.floor_slack)
        x, s, fam = _rows(train_df)
        full = np.all(np.isfinite(s), axis=1)
        if full.sum() < 2:
            raise PeerFitError("pca_capability needs at least two complete training models")
        x, s, fam = x[full], s[full], fam[full]
        z = floor_logit(s, floors, self.u_clip)
        mean = z.mean(axis=0)
        scale = z.std(axis=0)
        scale = np.where(scale > 1e-9, scale, 1.0)
        zs = (z - mean) / scale
        _, sv, vt = np.linalg.svd(zs, full_matrices=False)
        comps = vt[:k]
        scores = zs @ comps.T
        slopes = pooled_within_slopes(x, scores, fam)
        if not np.all(np.isfinite(slopes)):
            raise PeerFitError("pca_capability needs a training family with two complete models")
        self.floors_, self.mean_, self.scale_ = floors, mean, scale
        self.components_ = comps
        self.explained_variance_ratio_ = (sv ** 2 / np.sum(sv ** 2))[:k]
        self.slopes_ = slopes
        self.rate_ = scale * (slopes @ comps)
        return self

    @interval_predict
    def predict(self, initial_row, params_b) -> pd.DataFrame:
        p, dx, z0 = self._start_logit(initial_row, params_b)
        pc0 = ((z0 - self.mean_) / self.scale_) @ self.components_.T
        resid = z0 - (self.mean_ + self.scale_ * (pc0 @ self.components_))
        pcs = pc0 + np.outer(dx, self.slopes_)
        z = self.mean_ + self.scale_ * (pcs @ self.components_) + resid
        return prediction_frame(p, floor_logit_inverse(z, self.floors_))


# ---------------------------------------------------------------------------------------

X_REF = 9.0
"""Skills are written in x − 9 (log10 N relative to 1B parameters) so intercepts are O(1)."""


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


class LatentSkillModel(_Peer):
    """Sloth-style latent-skill model (see the module docstring).

    Parameters
    ----------
    n_skills : number of latent skills K (1–5).
    floor_slack, u_clip : floors of the sigmoid read-outs and the logit used to initialise.
    l2 : ridge on the read-out loadings, skill slopes and family intercepts (squared score
        points per squared parameter); it fixes the scale freedom between loadings and
        skills (a balanced solution) and pulls a new family's α toward the training mean.
    max_nfev : budget of the least-squares solver.

    Attributes
    ----------
    floors_ ; loadings_ : (5, K) λ ; offsets_ : (5,) c ; slopes_ : (K,) β per decade ;
    intercepts_ : family → (K,) α_f ; alpha_mean_ : (K,) mean intercept (the prior of a new
    family's α) ; rmse_ : training RMSE in score points ; n_scores_ : scores fitted.
    """

    def __init__(self, n_skills: int = 2, floor_slack: float = 10.0, u_clip: float = 0.005,
                 l2: float = 0.01, max_nfev: int = 200):
        self.n_skills = n_skills
        self.floor_slack = floor_slack
        self.u_clip = u_clip
        self.l2 = l2
        self.max_nfev = max_nfev

    def _unpack(self, theta, n_fam, k):
        i = 0
        lam = theta[i:i + N_BENCH * k].reshape(N_BENCH, k); i += N_BENCH * k
        off = theta[i:i + N_BENCH]; i += N_BENCH
        beta = theta[i:i + k]; i += k
        alpha = theta[i:i + n_fam * k].reshape(n_fam, k)
        return lam, off, beta, alpha

    def fit(self, train_df: pd.DataFrame) -> "LatentSkillModel":
        from scipy.optimize import least_squares

        k = int(self.n_skills)
        if not 1 <= k <= N_BENCH:
            raise InputError(f"n_skills must be in 1..{N_BENCH}, got {self.n_skills!r}")
        floors = peer_floors(self.floor_slack)
        x, s, fam = _rows(train_df)
        x = x - X_REF
        names = list(dict.fromkeys(fam))
        idx = np.array([names.index(f) for f in fam])
        obs = np.isfinite(s)
        if obs.sum() == 0:
            raise PeerFitError("latent_skill got no training scores")
        # initialise from the logit-space principal components of the complete models
        z = floor_logit(np.where(obs, s, floors + 1.0), floors, self.u_clip)
        full = obs.all(axis=1)
        if full.sum() < 2:
            raise PeerFitError("latent_skill needs at least two complete training models")
        zc = z[full]
        mean = zc.mean(axis=0)
        _, sv, vt = np.linalg.svd(zc - mean, full_matrices=False)
        lam0 = vt[:k].T * (sv[:k] / np.sqrt(full.sum()))          # (5, K)
        pcs = (z - mean) @ vt[:k].T / (sv[:k] / np.sqrt(full.sum()))  # skill coordinates
        beta0 = np.nan_to_num(pooled_within_slopes(x[full], pcs[full], fam[full]))
        alpha0 = np.zeros((len(names), k))
        for j, f in enumerate(names):
            m = idx == j
            alpha0[j] = (pcs[m] - np.outer(x[m], beta0)).mean(axis=0)
        theta0 = np.concatenate([lam0.ravel(), mean, beta0, alpha0.ravel()])
        span = CEILING - floors
        sq_l2 = np.sqrt(float(self.l2))
        target = np.where(obs, s, 0.0)

        def resid(theta):
            lam, off, beta, alpha = self._unpack(theta, len(names), k)
            skills = alpha[idx] + np.outer(x, beta)            # (n, K)
            pred = floors + span * _sigmoid(skills @ lam.T + off)
            r = np.where(obs, pred - target, 0.0)[obs]
            return np.concatenate([r, sq_l2 * lam.ravel(), sq_l2 * beta, sq_l2 * alpha.ravel()])

        n_obs, n_par = int(obs.sum()), len(theta0)
        rows_i, cols_j = np.nonzero(obs)
        fam_of = idx[rows_i]

        def jac(theta):
            lam, off, beta, alpha = self._unpack(theta, len(names), k)
            skills = alpha[idx] + np.outer(x, beta)
            sig = _sigmoid(skills @ lam.T + off)
            g = (span * sig * (1.0 - sig))[rows_i, cols_j]        # d score / d logit
            J = np.zeros((n_obs + n_par - N_BENCH, n_par))
            r = np.arange(n_obs)
            o_lam, o_off, o_beta, o_alpha = 0, N_BENCH * k, N_BENCH * k + N_BENCH, N_BENCH * k + N_BENCH + k
            for q in range(k):
                J[r, o_lam + cols_j * k + q] = g * skills[rows_i, q]
                J[r, o_beta + q] = g * lam[cols_j, q] * x[rows_i]
                J[r, o_alpha + fam_of * k + q] = g * lam[cols_j, q]
            J[r, o_off + cols_j] = g
            reg = np.arange(n_par - N_BENCH)
            J[n_obs + reg, np.concatenate([o_lam + np.arange(N_BENCH * k),
                                           o_beta + np.arange(k + len(names) * k)])] = sq_l2
            return J

        with one_blas_thread():  # small dense solves: far faster on one BLAS thread
            sol = least_squares(resid, theta0, jac=jac, method="trf",
                                max_nfev=int(self.max_nfev), x_scale="jac")
        lam, off, beta, alpha = self._unpack(sol.x, len(names), k)
        r = resid(sol.x)[:obs.sum()]
        self.floors_, self.loadings_, self.offsets_, self.slopes_ = floors, lam, off, beta
        self.intercepts_ = {f: alpha[j] for j, f in enumerate(names)}
        self.alpha_mean_ = alpha.mean(axis=0)
        self.rmse_ = float(np.sqrt(np.mean(r ** 2)))
        self.n_scores_ = int(obs.sum())
        self.success_ = bool(sol.success)
        return self

    def family_intercept(self, initial_row) -> np.ndarray:
        """α_F fit to one model's five scores (least squares in points, with the fit's
        ridge pulling α_F toward the training families' mean intercept)."""
        from scipy.optimize import least_squares

        self._check_fitted()
        _, y0, x0 = self._start(initial_row)
        x0 = x0 - X_REF
        span = CEILING - self.floors_
        sq_l2 = np.sqrt(float(self.l2))

        lam, mean = self.loadings_, self.alpha_mean_

        def resid(d):   # d = α_F − mean α (starting at exactly zero gives a unit trust region)
            pred = self.floors_ + span * _sigmoid(lam @ (mean + d + self.slopes_ * x0) + self.offsets_)
            return np.concatenate([pred - y0, sq_l2 * d])

        def jac(d):
            sig = _sigmoid(lam @ (mean + d + self.slopes_ * x0) + self.offsets_)
            return np.vstack([(span * sig * (1.0 - sig))[:, None] * lam, sq_l2 * np.eye(len(d))])

        with one_blas_thread():  # small dense solves: far faster on one BLAS thread
            d = least_squares(resid, np.zeros_like(mean), jac=jac, method="trf", max_nfev=200).x
        return mean + d

    @interval_predict
    def predict(self, initial_row, params_b) -> pd.DataFrame:
        self._check_fitted()
        p = _targets(params_b)
        a = self.family_intercept(initial_row)
        skills = a + np.outer(log10_params(p) - X_REF, self.slopes_)
        pred = self.floors_ + (CEILING - self.floors_) * _sigmoid(skills @ self.loadings_.T + self.offsets_)
        return prediction_frame(p, pred)
