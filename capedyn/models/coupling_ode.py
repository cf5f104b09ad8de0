"""Fitting the coupling ODE end to end: the :class:`CouplingODE` estimator and the transfer
rule for unseen families. The objective lives in :mod:`capedyn.dynamics.objective`, the optimisers in
:mod:`capedyn.dynamics.optimise`, saved fits in :mod:`capedyn.models.persistence`, the per-phase analysis and
the tuning scores in :mod:`capedyn.models.per_phase`, the fit timing in :mod:`capedyn.evaluation.bench`.

What is fitted
    One universal :class:`~capedyn.dynamics.field.CouplingField` shared by every training family, one
    :class:`~capedyn.dynamics.field.FamilyParams` (log10 Nc_f and the source h_f) per family, and the
    population mean of log10 Nc. Every family with at least two complete models (all five
    scores) is integrated from its own smallest complete model; families with missing scores
    (Gemma-3, Gemma-4 and Qwen3 have only HellaSwag and TruthfulQA) cannot be integrated in the
    five-dimensional state and are left out of the fit.

Loss
    Mean squared error in score space (percent points) over every later model and benchmark,
    plus penalties (the MAP reading of Gaussian priors)::

        l2·‖linear coef‖² + l2_quad·‖quadratic coef‖² + l2_const·‖constant‖² + l2_gamma·gamma0²
        + l2_h·Σ_f ‖h_f‖² + l2_nc·Σ_f (log10 Nc_f − μ)² + 1e-3·((μ − nc_prior_mean)/nc_prior_sd)²

    Score space rather than latent space because the held-out metric is in points and
    because the logit stretches near-floor noise (MMLU at 25 ± 1 is several latent units).

Optimisation
    Default (``optimizer="lm"``): Levenberg–Marquardt
    (:mod:`capedyn.dynamics.levenberg_marquardt`: optimistix's algorithm, normal equations
    solved by Cholesky, on the Jacobian matrix) on the residual vector of
    :func:`residual_vector`, whose squared norm is the objective above (the data residuals
    are the weighted errors in points, each penalty a sqrt-weighted extra residual), so the
    objective is unchanged. The Jacobian is exact: automatic differentiation through the
    Diffrax Tsit5 solve, family by family (a family's rows depend on the field and its
    own parameters only), in forward mode (``jacobian="auto"``: in reverse mode where a
    family has well under one residual row per parameter), computed once per trial point. The
    step is ``eqx.filter_jit``-compiled once per (field configuration, padded batch shape)
    and reused for every iteration and every fit of that shape — repeated fits, the folds
    of a held-out sweep — because which parameters are free is a dynamic 0/1 mask and the
    penalties are dynamic leaves. It stops at the Cauchy test with ``rtol = atol = tol``
    (typically 15-45 steps).

    Inside the fit each family is solved by Tsit5 on ``lm_solve_steps`` equal steps (4)
    rather than adaptively: the trajectories are smooth over ≤ 3 decades, so the fixed grid
    is within ~1e-5 points of the adaptive solve at the fitted parameters, and a fit costs
    about 60 % as much. At the end the fit estimates the grid's error on every fitted point
    against a grid 4× finer (:func:`~capedyn.dynamics.objective.fixed_step_gap`); beyond
    1e-3 points it continues on the adaptive solve. Every prediction uses the adaptive
    solve; ``mse_`` is the data MSE on the finer grid;
    ``loss_`` and ``history_`` are the objective the optimiser minimised.

    Where the time goes (every shipped family: 203 parameters, 843 residuals, one BLAS
    thread, 2 cores): compiling the step ≈ 5-20 s (once per shape); one step ≈ 8 ms, of
    which the Jacobian (~112 forward tangents per family through its solve) ≈ 6 ms and
    JᵀJ with its Cholesky solve ≈ 1.5 ms; the fit itself ≈ 0.3-0.5 s. The step holds one
    solve: the residuals are the Jacobian solve's own primal. With the compilation cache on
    (:mod:`capedyn._cache`: the CLI, the examples, the tests, or
    ``cd.enable_compilation_cache()``) a later process reads the compiled step from disk
    instead of compiling it.

    ``optimizer="adam"``: Optax Adam (``optax.inject_hyperparams(optax.adam)`` inside
    ``optax.apply_if_finite``, so a step whose solve fails is skipped) with the learning
    rate of ``optax.warmup_cosine_decay_schedule``, gradients by reverse mode through
    ``diffrax.diffeqsolve``; the best iterate is kept, one compiled gradient and update.
    float64 throughout.

Defaults (chosen by leave-one-family-out, never with Llama-2)
    Picked on a grid with :func:`capedyn.models.per_phase.tuning_scores`, on the table *without* Llama-2: the mean
    relative MAE % (100·Σ|err| / Σ actual) of leave-one-family-out over the 9 families with ≥ 3 complete
    models ("LOFO"), and of Pythia-only fits predicting those 8 other families. Selected
    grid points (LOFO / Pythia→others / Pythia in-sample %)::

        l2 = 0.03 (first guess)           11.8 / 12.8 / 1.65
        l2 = 1                             11.5 / 11.7 / 1.74
        l2 = 10                             9.9 / 10.6 / 2.01
        l2 = 100                            9.0 / 10.2 / 2.31
        l2 = 300, l2_h = 1, l2_nc = 3       8.7 / 10.1 / 2.59   <- default
        l2 = 1000, l2_h = 1, l2_nc = 3      8.7 / 10.2 / 2.87
        degree = 1, l2 = 10                 9.0 / 10.1 / 2.36
        l2 = 100, coupling = "none"         8.9 / 10.1 / 2.30
        (references: pooled latent drift 9.9 / 9.8; shifted pooled polynomials in log N,
        degree 1-3: LOFO 12.5-14.9, Pythia→others 10.4-13.0)

    Held-out error fell as the penalty on the state-dependent part of the field grew: the
    data (≤ 8 models a family) support little more than a latent drift plus family sources,
    and the running-coupling term did not measurably improve held-out prediction. With these
    penalties the fitted gamma0 is small and the family Nc stay close to the population mean.

A family the fit has never seen
    Its Nc and h come from the *transfer rule*: a ridge regression, across the training
    families, of the fitted (log10 Nc_f, h_f) on the family's start — its initial latent
    state z0_f and log10 N0_f — with standardised features and penalty ``transfer_alpha``
    (in units of training families). With a single training family the rule returns that
    family's values. Nothing about the new family other than its one initial model is used.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path
from typing import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float
from sklearn.base import BaseEstimator

from .._errors import CapedynError, InputError
from ._intervals import interval_predict
from ._extrapolation import training_range
from ._fitfile import (
    FIT_FORMAT, FIT_FORMAT_VERSION, _file_sha256, _rows_sha256, _versions, check_fit_destination,
)
from .._json import to_jsonable
from .._io import atomic_write, atomic_write_json
from .._jax import scoped_x64
from ..dynamics.state import N_STATE, to_state
from ..data.tables import BENCHMARKS, log10_params
from ..dynamics.field import CouplingField, FamilyParams, predict_scores
from ..dynamics.objective import Penalties, Population, trainable_mask
from ..dynamics.optimise import optimise, optimise_lm
from ..dynamics.trajectory import Trajectory, stack_trajectories, trajectories

PAPER_REFERENCE = {
    "in_sample_pythia_rel_error_pct": {"truthfulqa": 1.2, "hellaswag": 2.2, "arc": 4.0,
                                       "winogrande": 3.8, "mmlu": 7.0, "mean": 3.6},
    "heldout_llama2_rel_mae_pct": 5.6,
    "heldout_llama2_poly2_rel_mae_pct": 10.2,
    "hs_to_tqa_coefficient": {"tax": 0.12, "bonus": 0.75, "ratio": 6.3},
}
"""The papers' own figures, for side-by-side display only (never used in a computation)."""


# --------------------------------------------------------------------------- transfer rule

class TransferRule(eqx.Module):
    """Ridge regression of (log10 Nc_f, h_f) on the standardised start (z0_f, x0_f).

    ``predict(z0, x0)`` returns the FamilyParams an unseen family gets from its one initial
    model. With a single training family ``weights`` is zero and the rule returns that
    family's values."""

    feat_mean: Float[Array, "6"]
    feat_scale: Float[Array, "6"]
    target_mean: Float[Array, "6"]
    weights: Float[Array, "6 6"]

    @classmethod
    @scoped_x64
    def fit(cls, z0: np.ndarray, x0: np.ndarray, fams: FamilyParams, alpha: float) -> "TransferRule":
        feats = np.column_stack([np.asarray(z0), np.asarray(x0)])
        targets = np.column_stack([np.asarray(fams.log10_nc), np.asarray(fams.h)])
        mean, tmean = feats.mean(axis=0), targets.mean(axis=0)
        scale = feats.std(axis=0)
        scale = np.where(scale > 1e-9, scale, 1.0)
        phi = (feats - mean) / scale
        if len(feats) < 2:
            w = np.zeros((feats.shape[1], targets.shape[1]))
        else:
            a = phi.T @ phi + alpha * len(feats) * np.eye(phi.shape[1])
            w = np.linalg.solve(a, phi.T @ (targets - tmean))
        return cls(jnp.asarray(mean), jnp.asarray(scale), jnp.asarray(tmean), jnp.asarray(w))

    def predict(self, z0, x0) -> FamilyParams:
        phi = (jnp.concatenate([jnp.asarray(z0, float), jnp.atleast_1d(jnp.asarray(x0, float))])
               - self.feat_mean) / self.feat_scale
        t = self.target_mean + phi @ self.weights
        return FamilyParams(log10_nc=t[0], h=t[1:])


class _Saved(eqx.Module):
    """What ``model.eqx`` holds."""

    population: Population
    transfer: TransferRule


# --------------------------------------------------------------------------- estimator

OPTIMIZERS = ("lm", "adam")
DEFAULT_STEPS = {"lm": 200, "adam": 1500}
"""Iteration cap per optimiser when ``steps=None``: LM stops much earlier at its tolerance
(≈ 15-40 steps on the shipped data); Adam runs every step."""


class ConfigError(CapedynError, ValueError):
    """An estimator setting is invalid; the message names the argument."""


def _check_number(name: str, value, *, integer: bool = False, lo: float | None = None,
                  lo_open: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"CouplingODE({name}=...) must be a number, got {value!r}")
    if integer and not float(value).is_integer():
        raise ConfigError(f"CouplingODE({name}=...) must be a whole number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ConfigError(f"CouplingODE({name}=...) must be finite, got {value!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        bound = f"> {lo:g}" if lo_open else f">= {lo:g}"
        raise ConfigError(f"CouplingODE({name}=...) must be {bound}, got {value!r}")
    return int(v) if integer else v


class CouplingODE(BaseEstimator):
    """Scikit-learn style estimator for the coupling ODE (see the module docstring).

    Settings (stored as given; ``get_params``/``set_params``/``sklearn.base.clone`` work and
    are validated when ``fit`` runs, raising :class:`ConfigError` naming the argument):

    ``optimizer`` "lm" (default: Levenberg–Marquardt on the residual vector, exact
    Jacobians through the Diffrax solve) or "adam" (Optax Adam with a
    warm-up + cosine schedule); ``steps`` iteration cap (None: 200 for "lm", 1500 for
    "adam"); ``tol`` LM's relative/absolute tolerance on parameters and objective;
    ``lm_solve_steps`` how LM solves each family while fitting: Tsit5 on that many equal
    steps (default 4), or the adaptive solve when None (see "Optimisation" above);
    ``jacobian`` how LM differentiates each family: "forward" (default) or "auto" (reverse
    mode for a family with under 2/3 as many residual rows as parameters, on the fixed
    grid: the same Jacobian, ~25 % faster steps on the shipped table, ~3 s more to compile,
    so it pays from a few hundred steps of one shape on, as in held-out sweeps);
    ``learning_rate`` peak Adam rate and ``warmup`` Adam warm-up iterations (Adam only);
    ``l2`` on non-constant field coefficients (``l2_quad`` on the quadratic ones, None: same
    as ``l2``); ``l2_const`` on the constant column; ``l2_gamma`` on gamma0; ``l2_h`` on
    family sources; ``l2_nc`` shrinkage of log10 Nc_f to the population mean, which has a
    weak prior N(``nc_prior_mean``, ``nc_prior_sd``) (log10 N); ``degree`` of the polynomial
    library (1 or 2); ``coupling`` ("score", "latent" or "none", see :mod:`capedyn.dynamics.field`);
    ``kappa_max`` cap of the score-unit conversion; ``transfer_alpha`` ridge penalty of the
    transfer rule; ``family_weight`` "models" or "equal"; ``seed`` for the initial
    coefficient jitter; ``progress`` shows a progress line on stderr.

    Fitted attributes (set by ``fit``): ``field_`` (CouplingField), ``families_`` (name →
    FamilyParams), ``starts_`` (name → initial model, size, scores), ``transfer_``
    (TransferRule), ``mu_nc_``, ``loss_`` (final objective), ``mse_`` (final data MSE,
    points²), ``history_`` (objective per iteration), ``n_iter_``, ``optimizer_`` (what ran).
    """

    def __init__(self, *, optimizer: str = "lm", steps: int | None = None, tol: float = 1e-6,
                 lm_solve_steps: int | None = 4, jacobian: str = "forward",
                 learning_rate: float = 0.02, warmup: int = 100, l2: float = 300.0,
                 l2_quad: float | None = None, l2_const: float = 1e-3, l2_gamma: float = 1e-2,
                 l2_h: float = 1.0, l2_nc: float = 3.0, nc_prior_mean: float = 9.5,
                 nc_prior_sd: float = 1.0, degree: int = 2, coupling: str = "score",
                 kappa_max: float = 4.0, transfer_alpha: float = 1.0,
                 family_weight: str = "models", seed: int = 0, progress: bool | None = True):
        self.optimizer = optimizer
        self.steps = steps
        self.tol = tol
        self.lm_solve_steps = lm_solve_steps
        self.jacobian = jacobian
        self.learning_rate = learning_rate
        self.warmup = warmup
        self.l2 = l2
        self.l2_quad = l2_quad
        self.l2_const = l2_const
        self.l2_gamma = l2_gamma
        self.l2_h = l2_h
        self.l2_nc = l2_nc
        self.nc_prior_mean = nc_prior_mean
        self.nc_prior_sd = nc_prior_sd
        self.degree = degree
        self.coupling = coupling
        self.kappa_max = kappa_max
        self.transfer_alpha = transfer_alpha
        self.family_weight = family_weight
        self.seed = seed
        self.progress = progress

    @property
    def config(self) -> dict:
        """The settings as a dict (same as ``get_params()``); what ``save`` records."""
        return self.get_params()

    def _validated(self) -> dict:
        """Checked, typed settings (raises :class:`ConfigError` naming the argument)."""
        c = self.get_params()
        if c["optimizer"] not in OPTIMIZERS:
            raise ConfigError(f"CouplingODE(optimizer=...) must be one of {OPTIMIZERS}, "
                              f"got {c['optimizer']!r}")
        out = dict(c)
        out["steps"] = _check_number("steps", c["steps"], integer=True, lo=1, allow_none=True)
        if out["steps"] is None:
            out["steps"] = DEFAULT_STEPS[c["optimizer"]]
        out["tol"] = _check_number("tol", c["tol"], lo=0, lo_open=True)
        out["lm_solve_steps"] = _check_number("lm_solve_steps", c["lm_solve_steps"],
                                              integer=True, lo=1, allow_none=True)
        out["learning_rate"] = _check_number("learning_rate", c["learning_rate"], lo=0, lo_open=True)
        out["warmup"] = _check_number("warmup", c["warmup"], integer=True, lo=0)
        for k in ("l2", "l2_const", "l2_gamma", "l2_h", "l2_nc", "transfer_alpha"):
            out[k] = _check_number(k, c[k], lo=0)
        out["l2_quad"] = _check_number("l2_quad", c["l2_quad"], lo=0, allow_none=True)
        out["nc_prior_mean"] = _check_number("nc_prior_mean", c["nc_prior_mean"])
        out["nc_prior_sd"] = _check_number("nc_prior_sd", c["nc_prior_sd"], lo=0, lo_open=True)
        out["kappa_max"] = _check_number("kappa_max", c["kappa_max"], lo=0, lo_open=True)
        out["seed"] = _check_number("seed", c["seed"], integer=True, lo=0)
        if isinstance(c["degree"], bool) or c["degree"] not in (0, 1, 2):
            raise ConfigError(f"CouplingODE(degree=...) must be 0, 1 or 2, got {c['degree']!r}")
        out["degree"] = int(c["degree"])
        if c["coupling"] not in ("score", "latent", "none"):
            raise ConfigError("CouplingODE(coupling=...) must be 'score', 'latent' or 'none', "
                              f"got {c['coupling']!r}")
        if c["jacobian"] not in ("forward", "auto"):
            raise ConfigError("CouplingODE(jacobian=...) must be 'forward' or 'auto', "
                              f"got {c['jacobian']!r}")
        if c["family_weight"] not in ("models", "equal"):
            raise ConfigError("CouplingODE(family_weight=...) must be 'models' or 'equal', "
                              f"got {c['family_weight']!r}")
        return out

    # ---- fitting
    def _penalties(self, h_center=None, cfg: dict | None = None) -> Penalties:
        c = self._validated() if cfg is None else cfg
        quad = c["l2"] if c["l2_quad"] is None else c["l2_quad"]
        scalars = (jnp.asarray(float(c[k] if k != "l2_quad" else quad)) for k in (
            "l2", "l2_quad", "l2_const", "l2_gamma", "l2_h", "l2_nc", "nc_prior_mean",
            "nc_prior_sd"))
        center = jnp.zeros(N_STATE) if h_center is None else jnp.asarray(h_center, float)
        return Penalties(*scalars, h_center=center)

    def _initial_population(self, trajs: Sequence[Trajectory], n_rows: int) -> Population:
        c = self._validated()
        field = CouplingField.zeros(degree=c["degree"], coupling=c["coupling"],
                                    kappa_max=c["kappa_max"])
        # Start from the mean latent drift per decade (first → last model of each family),
        # plus a small deterministic jitter so no coefficient starts exactly symmetric.
        drift = np.mean([(to_state(t.scores[-1]) - to_state(t.scores[0])) / (t.x[-1] - t.x[0])
                         for t in trajs], axis=0)
        rng = np.random.default_rng(c["seed"])
        coef = np.zeros(np.shape(field.coef))
        coef[:, 0] = drift
        coef[:, 1:] = 1e-3 * rng.standard_normal((coef.shape[0], coef.shape[1] - 1))
        field = eqx.tree_at(lambda f: f.coef, field, jnp.asarray(coef))
        fams = FamilyParams(log10_nc=jnp.full(n_rows, c["nc_prior_mean"]),
                            h=jnp.zeros((n_rows, N_STATE)))
        return Population(field, fams, jnp.asarray(c["nc_prior_mean"]))

    def _run_optimiser(self, cfg: dict, pop, trainable, batch, pen, *, steps: int, label: str,
                       warmup: int | None = None):
        if cfg["optimizer"] == "lm":
            return optimise_lm(pop, trainable, batch, pen, steps=steps, tol=cfg["tol"],
                               progress=cfg["progress"], label=label)
        return optimise(pop, trainable, batch, pen, steps=steps,
                        learning_rate=cfg["learning_rate"],
                        warmup=cfg["warmup"] if warmup is None else warmup,
                        progress=cfg["progress"], label=label)

    @scoped_x64
    def fit(self, df: pd.DataFrame, y=None) -> "CouplingODE":
        """Fit on every family of ``df`` with ≥ 2 complete models (base-model table format:
        ``model``, ``family``, ``params_b`` in billions, five scores in percent). The table
        is validated first (a bad size or score raises :class:`~capedyn.DataError` naming
        the row and column). ``y`` is ignored (scikit-learn signature)."""
        cfg = self._validated()
        df = _validated_table(df)
        trajs = trajectories(df)
        if not trajs:
            raise CapedynError("no family has two or more complete models (all five scores); "
                               "the coupling ODE needs at least one such family")
        batch = stack_trajectories(trajs, cfg["family_weight"],
                                   lm_solve_steps=cfg["lm_solve_steps"], jacobian=cfg["jacobian"])
        pop = self._initial_population(trajs, batch.x0.shape[0])
        coupled = cfg["coupling"] != "none"  # without the coupling term gamma0 and Nc do nothing
        trainable = trainable_mask(pop, gamma0=coupled, log10_nc=coupled, mu_nc=coupled)
        pop, history, mse = self._run_optimiser(
            cfg, pop, trainable, batch, self._penalties(cfg=cfg), steps=cfg["steps"],
            label=f"fit ({len(trajs)} families, {cfg['optimizer']})")
        return self._finish_fit(cfg, trajs, np.asarray(batch.z0)[:len(trajs)],
                                np.asarray(batch.x0)[:len(trajs)], pop, history, mse)

    def _finish_fit(self, cfg: dict, trajs: Sequence[Trajectory], z0: np.ndarray,
                    x0: np.ndarray, pop: Population, history: list[float],
                    mse: float) -> "CouplingODE":
        """Set the fitted attributes from an optimiser's result (``pop``'s family rows in
        ``trajs`` order; ``z0``/``x0`` the families' starts)."""
        if not np.isfinite(mse):
            raise CapedynError("every step of the fit had a failing ODE solve; increase the "
                               "regularisation (l2) or lower the learning rate")
        self.history_, self.mse_ = history, mse
        self._set_population(pop, trajs)
        self.loss_ = float(min(h for h in self.history_ if np.isfinite(h)))
        self.n_iter_ = len(self.history_) - 1
        self.optimizer_ = cfg["optimizer"]
        self.transfer_ = TransferRule.fit(z0, x0, self.population().families,
                                          cfg["transfer_alpha"])
        self.training_rows_sha256_ = _rows_sha256(trajs)
        self.training_range_ = training_range(trajs)  # what predictions are checked against
        return self

    def fit_batch(self, tables: Sequence[pd.DataFrame], params: Sequence[dict] | None = None,
                  *, progress: bool = False) -> list:
        """Fit many copies at once: element i is ``with_params(self, params[i])`` fitted on
        ``tables[i]``, and the LM fits of one field configuration run as one compiled,
        vectorised program (:mod:`capedyn.models.coupling_ode_batch`). Returns, per
        element, the fitted estimator, or the exception its own ``fit`` would have raised
        (a :class:`~capedyn.CapedynError` or ValueError). Each result equals the element's
        own ``fit`` up to floating-point rounding, which can move the step where
        a fit meets its stopping test (on the shipped data's nested folds: predictions
        within 1e-5 points, parameters within 1e-5)."""
        from .coupling_ode_batch import fit_many

        return fit_many(self, tables, params, progress=progress)

    def _set_population(self, pop: Population, trajs: Sequence[Trajectory]) -> None:
        self.field_ = pop.field
        self.mu_nc_ = float(pop.mu_nc)
        self.families_ = {t.family: FamilyParams(pop.families.log10_nc[i], pop.families.h[i])
                          for i, t in enumerate(trajs)}
        self.starts_ = {t.family: _start_record(t) for t in trajs}

    def _check_fitted(self) -> None:
        if not hasattr(self, "field_"):
            raise CapedynError("this CouplingODE is not fitted yet; call fit(df) or load_fit(path)")

    def population(self) -> Population:
        """The fitted universal field with the fitted families stacked in ``families_`` order
        (for posteriors and diagnostics)."""
        self._check_fitted()
        names = list(self.families_)
        fams = FamilyParams(jnp.stack([self.families_[n].log10_nc for n in names]),
                            jnp.stack([self.families_[n].h for n in names]))
        return Population(self.field_, fams, jnp.asarray(self.mu_nc_))

    @scoped_x64
    def fit_family(self, df_new: pd.DataFrame, name: str | None = None, *,
                   steps: int | None = None) -> FamilyParams:
        """Fit one new family's log10 Nc and h with the population (field, μ) frozen.

        ``df_new`` holds the family's models (≥ 2 complete). Both parameters are shrunk, with
        the main fit's ``l2_nc`` and ``l2_h``, toward the transfer rule's prediction from the
        family's smallest model. ``steps``: iteration cap of the estimator's optimiser (None:
        its default; Adam 300). The result is stored in ``families_`` and returned."""
        self._check_fitted()
        cfg = self._validated()
        steps = _check_number("steps", steps, integer=True, lo=1, allow_none=True)
        if steps is None:
            steps = 300 if cfg["optimizer"] == "adam" else DEFAULT_STEPS["lm"]
        trajs = trajectories(_validated_table(df_new))
        if name is not None:
            trajs = [t for t in trajs if t.family == name]
        if len(trajs) != 1:
            found = [t.family for t in trajs]
            raise CapedynError("fit_family needs exactly one family with ≥ 2 complete models; "
                               f"found {found or 'none'}" + ("" if name is None else f" named '{name}'"))
        traj = trajs[0]
        batch = stack_trajectories(trajs, lm_solve_steps=cfg["lm_solve_steps"])
        prior = self.transfer_.predict(batch.z0[0], batch.x0[0])
        n_rows = batch.x0.shape[0]
        fams = FamilyParams(jnp.full(n_rows, prior.log10_nc), jnp.tile(prior.h, (n_rows, 1)))
        pop = Population(self.field_, fams, prior.log10_nc)  # μ := rule's Nc, frozen
        coupled = cfg["coupling"] != "none"
        trainable = trainable_mask(pop, field=False, gamma0=False, mu_nc=False, log10_nc=coupled)
        pop, _, mse = self._run_optimiser(
            cfg, pop, trainable, batch, self._penalties(h_center=prior.h, cfg=cfg), steps=steps,
            warmup=min(50, steps // 4), label=f"fit_family {traj.family}")
        if not np.isfinite(mse):
            raise CapedynError(f"fit_family {traj.family}: every ODE solve failed")
        result = FamilyParams(pop.families.log10_nc[0], pop.families.h[0])
        self.families_[traj.family] = result
        self.starts_[traj.family] = _start_record(traj)
        return result

    # ---- prediction
    def family_params(self, initial_scores, initial_params_b, family: str | None = None) -> FamilyParams:
        """A fitted family's parameters (``family`` given) or the transfer rule's for an unseen one."""
        self._check_fitted()
        if family is not None:
            if family not in self.families_:
                raise CapedynError(f"family '{family}' is not part of this fit; known: "
                                   f"{', '.join(self.families_)}")
            return self.families_[family]
        z0 = to_state(np.asarray(initial_scores, float))
        return self.transfer_.predict(z0, log10_params(float(initial_params_b)))

    @interval_predict
    @scoped_x64
    def predict(self, initial, params_b, *, family: str | None = None) -> pd.DataFrame:
        """Scores at ``params_b`` (billions; scalar or list) from one initial model.

        ``initial``: mapping/Series with ``params_b`` and the five score columns (percent).
        ``family``: use that training family's fitted Nc and h; by default (an unseen family)
        they come from the transfer rule applied to ``initial``. Returns one row per requested
        size: ``params_b`` and the five score columns."""
        self._check_fitted()
        scores, p0 = _initial_from(initial)
        sizes = np.atleast_1d(np.asarray(params_b, dtype=float))
        fam = self.family_params(scores, p0, family)
        label = family or str(_get(initial, "family", None) or _get(initial, "model", None) or "initial")
        pred = predict_scores(self.field_, fam, scores, p0, sizes, name=label)
        out = pd.DataFrame(pred, columns=list(BENCHMARKS))
        out.insert(0, "params_b", sizes)
        return out

    @scoped_x64
    def error_table(self, df: pd.DataFrame, *, use_fitted_families: bool = True) -> pd.DataFrame:
        """One row per (family, later model, benchmark): ``pred`` and ``actual`` (percent)
        and ``abs_err`` (points), every family of ``df`` with ≥ 2 complete models
        integrated from its smallest complete model. A family present in the fit uses its
        fitted parameters (unless ``use_fitted_families=False``); any other gets the
        transfer rule."""
        self._check_fitted()
        rows = []
        for t in trajectories(_validated_table(df)):
            fam_name = t.family if (use_fitted_families and t.family in self.families_) else None
            init = {"params_b": t.params_b[0], **dict(zip(BENCHMARKS, t.scores[0])), "family": t.family}
            pred = self.predict(init, t.params_b[1:], family=fam_name)
            for j, model in enumerate(t.models[1:]):
                for k, b in enumerate(BENCHMARKS):
                    rows.append({"family": t.family, "model": model, "benchmark": b,
                                 "pred": float(pred[b].iloc[j]), "actual": float(t.scores[j + 1, k])})
        if not rows:
            raise CapedynError("nothing to score: no family with ≥ 2 complete models")
        out = pd.DataFrame(rows)
        return out.assign(abs_err=(out["pred"] - out["actual"]).abs())

    def error_summary(self, df: pd.DataFrame, *, use_fitted_families: bool = True) -> dict:
        """The errors of :meth:`error_table` summarised (JSON-ready). Per benchmark: relative
        error % = 100·mean|pred − actual| / mean(actual) and MAE (points). Overall:
        ``mean_rel_error_pct`` = mean of the five per-benchmark values (the paper's "mean
        error"), ``rel_mae_pct`` = 100·Σ|err| / Σ actual over all pairs, ``mae`` (points)."""
        return summarise_errors(self.error_table(df, use_fitted_families=use_fitted_families))

    def score(self, df: pd.DataFrame, y=None) -> float:
        """Negative mean relative error in percent (greater is better, scikit-learn's
        convention): ``-error_summary(df)["mean_rel_error_pct"]``, so ``-2.6`` means the
        trajectories integrated from each family's smallest model are off by 2.6% of the
        measured scores on average over the five benchmarks. ``y`` is ignored."""
        return -float(self.error_summary(df)["mean_rel_error_pct"])

    # ---- persistence
    @scoped_x64  # population() builds float64 leaves, as load_fit expects them
    def save(self, path: str | Path, *, data_path: str | Path | None = None,
             force: bool = True) -> Path:
        """Write the folder ``path`` holding ``model.eqx`` and ``meta.json``, as a whole:
        both files are written into a temporary sibling folder that is then renamed onto
        ``path`` (:mod:`capedyn._publish`), so ``path`` holds either the previous fit or
        the complete new one, never a mix. A folder holding anything but a fit is refused;
        so is a previous fit when ``force`` is False. ``data_path``: the CSV the training
        table came from (None: the shipped table). ``meta.json`` records the settings as
        they are now (``get_params()``)."""
        self._check_fitted()
        from .._publish import staged_folder

        given, path = path, Path(path).expanduser()
        with staged_folder(path, given,
                           recheck=lambda: check_fit_destination(path, given, force)) as stage:
            self._write_fit_files(stage, data_path)
        return path

    def _write_fit_files(self, path: Path, data_path: str | Path | None) -> Path:
        saved = _Saved(self.population(), self.transfer_)
        model_file = atomic_write(path / "model.eqx", lambda p: eqx.tree_serialise_leaves(p, saved))
        meta = {
            "format": FIT_FORMAT, "format_version": FIT_FORMAT_VERSION,
            "config": to_jsonable(self.get_params()), "field_config": self.field_.config,
            "optimizer_run": getattr(self, "optimizer_", None),
            "n_iter": getattr(self, "n_iter_", None),
            "n_families": len(self.families_), "families": [
                {"name": n, **self.starts_[n], "log10_nc": float(f.log10_nc),
                 "nc_b": f.critical_scale_b, "h": [float(v) for v in np.asarray(f.h)]}
                for n, f in self.families_.items()],
            "population": {"mu_nc": self.mu_nc_, "nc_b": 10 ** (self.mu_nc_ - 9),
                           "gamma0": float(self.field_.gamma0)},
            "loss": self.loss_, "mse_points2": self.mse_,
            "metrics": getattr(self, "metrics_", None),
            "data": {"source": str(data_path) if data_path else "<capedyn>/benchmarks_data/base_models.csv",
                     "csv_sha256": _file_sha256(data_path),
                     "training_rows_sha256": getattr(self, "training_rows_sha256_", None)},
            "training_range": getattr(self, "training_range_", None),
            "model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
            "versions": _versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_json(path / "meta.json", meta)
        self.meta_ = meta
        return path


def _validated_table(df) -> pd.DataFrame:
    """The table checked by :func:`capedyn.data.tables.validate_base_models` (a non-positive or
    non-finite size, a score outside 0-100, ... raise a DataError naming row and column)."""
    from ..data.tables import validate_base_models

    return validate_base_models(df)


def _start_record(t: Trajectory) -> dict:
    return {"model": t.models[0], "params_b": float(t.params_b[0]),
            "scores": [float(s) for s in t.scores[0]], "models": list(t.models)}


def _get(obj, key, default=None):
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError):
        return default


def _initial_from(initial) -> tuple[np.ndarray, float]:
    if isinstance(initial, pd.DataFrame):
        if len(initial) != 1:
            raise InputError(f"initial must be one model (one row); got {len(initial)} rows")
        initial = initial.iloc[0]
    missing = [k for k in ("params_b", *BENCHMARKS) if _get(initial, k) is None]
    if missing:
        raise InputError(f"initial model lacks {missing}; give params_b (billions) and the five "
                         f"scores {list(BENCHMARKS)} in percent")
    try:
        scores = np.array([float(initial[b]) for b in BENCHMARKS])
        p0 = float(initial["params_b"])
    except (TypeError, ValueError) as exc:
        raise InputError(f"initial model values must be numbers ({exc})") from None
    bad = [b for b, s in zip(BENCHMARKS, scores) if not (np.isfinite(s) and 0 <= s <= 100)]
    if bad:
        raise InputError(f"initial scores {bad} must be finite percentages in [0, 100] "
                         "(all five are needed to integrate the ODE)")
    if not (np.isfinite(p0) and p0 > 0):
        raise InputError(f"initial params_b must be a positive size in billions, got {p0}")
    return scores, p0


def summarise_errors(err: pd.DataFrame) -> dict:
    """Metrics from a long table with columns benchmark, pred, actual (and family, model)."""
    err = err.assign(abs_err=(err["pred"] - err["actual"]).abs())
    per = {}
    for b in BENCHMARKS:
        sub = err[err["benchmark"] == b]
        per[b] = {"rel_error_pct": float(100 * sub["abs_err"].mean() / sub["actual"].mean()),
                  "mae": float(sub["abs_err"].mean()), "n": int(len(sub))}
    return {
        "per_benchmark": per,
        "mean_rel_error_pct": float(np.mean([per[b]["rel_error_pct"] for b in BENCHMARKS])),
        "rel_mae_pct": float(100 * err["abs_err"].sum() / err["actual"].sum()),
        "mae": float(err["abs_err"].mean()),
        "n_pairs": int(len(err)),
        "families": sorted(set(err["family"])) if "family" in err else [],
    }


