"""The coupling-ODE fit written out again in NumPy and SciPy, term by term, as the reference
:mod:`capedyn.evaluation.bench` times capedyn's JAX fit against: the vector field in numpy
(:func:`field_numpy`), ``scipy.integrate.solve_ivp`` (RK45 at the tolerances of the Diffrax
solve) and ``scipy.optimize.least_squares`` (trust-region reflective, forward-difference
Jacobian) on the residual vector whose sum of squares is capedyn's objective
(:class:`ScipyCouplingFit`). Scores in percent, x = log10 N."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..data.tables import BENCHMARKS, log10_params

__all__ = ["field_numpy", "ScipyCouplingFit"]

_HS, _TQA = BENCHMARKS.index("hellaswag"), BENCHMARKS.index("truthfulqa")
_PAIRS = tuple(itertools.combinations_with_replacement(range(len(BENCHMARKS)), 2))

def _library(z: np.ndarray) -> np.ndarray:
    """[1, z_0..z_4, z_i·z_j (i ≤ j)]: the degree-2 polynomial library, 21 terms."""
    return np.concatenate([[1.0], z, [z[i] * z[j] for i, j in _PAIRS]])


def _degree_mask(degree: int) -> np.ndarray:
    order = np.array([0] + [1] * len(BENCHMARKS) + [2] * len(_PAIRS))
    return (order <= degree).astype(float)


def field_numpy(x: float, z: np.ndarray, coef: np.ndarray, gamma0: float, log10_nc: float,
                h: np.ndarray, *, degree: int = 2, coupling: str = "score",
                kappa_max: float = 4.0) -> np.ndarray:
    """dz/dx of :class:`capedyn.dynamics.field.CouplingField` written in numpy (latent units per decade).

    rate = (coef ⊙ mask) @ Θ(z) + h; with the coupling on, TQA's rate gains
    γ12(x)·κ(z)·rate_HS, γ12 = gamma0·(x − log10 Nc) and κ = min(s'_HS / s'_TQA, kappa_max)
    where s'_k = (100 − floor_k)·u(1 − u), u = sigmoid(z_k) ("score") or κ = 1 ("latent").
    """
    from scipy.special import expit

    from ..dynamics.state import CEILING, FLOORS

    z = np.asarray(z, dtype=float)
    rate = (np.asarray(coef) * _degree_mask(degree)) @ _library(z) + np.asarray(h)
    if coupling == "none":
        return rate
    if coupling == "score":
        u = expit(z)
        slope = (CEILING - FLOORS) * u * (1.0 - u)
        kappa = min(slope[_HS] / slope[_TQA], kappa_max)
    else:
        kappa = 1.0
    out = rate.copy()
    out[_TQA] += gamma0 * (x - log10_nc) * kappa * rate[_HS]
    return out


# --------------------------------------------------------------------------- SciPy fit

@dataclass
class ScipyCouplingFit:
    """The objective of :mod:`capedyn.models.coupling_ode` as a least-squares residual vector, in numpy/SciPy.

    Parameters are packed as [coef (5×21), gamma0, log10_nc (F), h (F×5), mu_nc] — the
    trainable leaves of the JAX ``Population``. ``residuals(θ)·residuals(θ)`` equals the
    JAX objective: √(w_f / Σ w n)·(pred − actual) for every later model and benchmark, then
    √λ times each penalised quantity.
    """

    trajs: Sequence[Any]          # capedyn.models.coupling_ode.Trajectory (x, scores) per family
    penalties: dict[str, Any]     # l2, l2_const, l2_gamma, l2_h, l2_nc, nc_prior_*, h_center
    degree: int = 2
    coupling: str = "score"
    kappa_max: float = 4.0
    family_weight: str = "models"
    rtol: float = 1e-7
    atol: float = 1e-9
    log: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self):
        self.n_fam = len(self.trajs)
        n_obs = [len(t.params_b) - 1 for t in self.trajs]
        w = np.ones(self.n_fam) if self.family_weight == "models" else 1.0 / np.array(n_obs)
        total = float(np.sum(w * np.array(n_obs) * len(BENCHMARKS)))
        self._data_scale = np.sqrt(w / total)
        self._t_start = time.perf_counter()
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    # -- packing
    def pack(self, coef, gamma0, log10_nc, h, mu_nc) -> np.ndarray:
        return np.concatenate([np.ravel(coef), [float(gamma0)], np.ravel(log10_nc),
                               np.ravel(h), [float(mu_nc)]])

    def unpack(self, theta: np.ndarray):
        f, k = self.n_fam, len(BENCHMARKS)
        n_coef = k * len(_degree_mask(2))
        coef = theta[:n_coef].reshape(k, -1)
        gamma0 = theta[n_coef]
        log10_nc = theta[n_coef + 1:n_coef + 1 + f]
        h = theta[n_coef + 1 + f:n_coef + 1 + f + f * k].reshape(f, k)
        return coef, gamma0, log10_nc, h, theta[-1]

    # -- model
    def trajectory(self, theta: np.ndarray, i: int) -> np.ndarray | None:
        """Scores (percent) of family ``i`` at its sizes from its first model; None if the solve fails."""
        from scipy.integrate import solve_ivp

        from ..dynamics.state import from_state, to_state

        coef, gamma0, log10_nc, h, _ = self.unpack(theta)
        t = self.trajs[i]
        xs = log10_params(t.params_b)
        fun = lambda x, z: field_numpy(x, z, coef, gamma0, log10_nc[i], h[i], degree=self.degree,
                                       coupling=self.coupling, kappa_max=self.kappa_max)
        with np.errstate(over="ignore", invalid="ignore"):
            sol = solve_ivp(fun, (xs[0], xs[-1]), to_state(t.scores[0]), method="RK45",
                            t_eval=xs, rtol=self.rtol, atol=self.atol)
        if sol.status != 0 or not np.all(np.isfinite(sol.y)) or sol.y.shape[1] != len(xs):
            return None
        return from_state(sol.y.T)

    def _raw_residuals(self, theta: np.ndarray) -> np.ndarray:
        p = self.penalties
        coef, gamma0, log10_nc, h, mu = self.unpack(theta)
        data = []
        for i, t in enumerate(self.trajs):
            pred = self.trajectory(theta, i)
            err = np.full((len(t.params_b) - 1, len(BENCHMARKS)), 1e3) if pred is None \
                else pred[1:] - t.scores[1:]
            data.append(self._data_scale[i] * err.ravel())
        mc = coef * _degree_mask(self.degree)
        pen = [np.sqrt(p["l2"]) * mc[:, 1:].ravel(), np.sqrt(p["l2_const"]) * mc[:, 0],
               [np.sqrt(p["l2_gamma"]) * gamma0],
               np.sqrt(p["l2_h"]) * (h - p["h_center"]).ravel(),
               np.sqrt(p["l2_nc"]) * (log10_nc - mu),
               [np.sqrt(1e-3) * (mu - p["nc_prior_mean"]) / p["nc_prior_sd"]]]
        return np.concatenate(data + [np.asarray(v, float).ravel() for v in pen])

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        """Residual vector; every call is logged as (seconds since start, objective)."""
        r = self._raw_residuals(theta)
        self.log.append((time.perf_counter() - self._t_start, float(r @ r)))
        self._last = (theta.copy(), r)
        return r

    def objective(self, theta: np.ndarray) -> float:
        r = self._raw_residuals(np.asarray(theta, float))
        return float(r @ r)

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """Forward differences (SciPy's '2-point' step rule), not logged as iterates."""
        if self._last is not None and np.array_equal(self._last[0], theta):
            r0 = self._last[1]
        else:
            r0 = self._raw_residuals(theta)
        step = np.sqrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(theta))
        jac = np.empty((r0.size, theta.size))
        for j in range(theta.size):
            t = theta.copy()
            t[j] += step[j]
            jac[:, j] = (self._raw_residuals(t) - r0) / step[j]
        return jac

    def fit(self, theta0: np.ndarray, max_nfev: int = 200, time_limit: float = 600.0) -> dict:
        """``least_squares`` (TRF) from ``theta0``; stops at convergence, ``max_nfev``
        iterate evaluations or ``time_limit`` seconds (the best logged point is kept)."""
        from scipy.optimize import least_squares

        self.log.clear()
        self._t_start = time.perf_counter()
        best = {"theta": np.asarray(theta0, float), "cost": self.objective(theta0)}

        def fun(theta):
            if time.perf_counter() - self._t_start > time_limit:
                raise _TimeUp
            r = self.residuals(theta)
            if r @ r < best["cost"]:
                best.update(theta=theta.copy(), cost=float(r @ r))
            return r

        status = "converged"
        try:
            res = least_squares(fun, np.asarray(theta0, float), jac=lambda th: self.jacobian(th),
                                method="trf", max_nfev=max_nfev)
            status = res.message
            nfev, njev = res.nfev, res.njev
        except _TimeUp:
            status, nfev, njev = f"stopped at the {time_limit:g} s limit", len(self.log), None
        seconds = time.perf_counter() - self._t_start
        return {"theta": best["theta"], "objective": best["cost"], "seconds": seconds,
                "status": str(status), "nfev": nfev, "njev": njev,
                "n_params": int(np.size(theta0))}


class _TimeUp(Exception):
    pass


