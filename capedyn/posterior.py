"""Posteriors over the critical scale Nc and the family source terms h with NumPyro.

Two hierarchical NumPyro models, each a plain function of data arrays; inference (NUTS,
several chains) is separate in :func:`sample_posterior`.

``coupling_model`` (fast, the default)
    Works on the running-coupling pairs (:func:`capedyn.running_coupling`,
    skipped pairs left out). For pair i of family f at x_i = log10 N (geometric-mean
    size, N in parameters)::

        γ12_i ~ Normal(γ0_f·(x_i − log10 Nc_f), s_i)
        s_i²  = σ_γ² + 2·σ_s²·(1 + γ̂_i²) / ΔHS_i²

    ``σ_s`` is the measurement noise of one benchmark score (points): ΔTQA and ΔHS are
    differences of two scores, and the delta method through the ratio ΔTQA/ΔHS gives the
    second term, so a pair with a small HellaSwag step (an ill-conditioned ratio) weighs
    little instead of dominating. ``σ_γ`` absorbs misfit of the straight line in log N.
    Hierarchy: log10 Nc_f ~ Normal(μ, τ); γ0_f = exp(ℓ_f), ℓ_f ~ Normal(m_γ, s_γ), so γ0 > 0
    (tax below Nc, bonus above). Both are non-centred. Priors: μ ~ Normal(9.5, 1)
    (the centre of the tested sizes, 70M-176B, ± one decade), τ ~ HalfNormal(1),
    m_γ ~ Normal(log 0.5, 1), s_γ ~ HalfNormal(1), σ_γ ~ HalfNormal(0.5),
    σ_s ~ HalfNormal(2) points. A family with one usable pair (or a flat one) is informed
    mostly by the population.

``ode_model``
    The observed scores (percent) of every complete model after a family's smallest one,
    given the coupling-ODE solution integrated from that smallest model with Diffrax
    (:mod:`capedyn.ode`)::

        scores_{f,j,b} ~ Normal(from_state(z_f(x_j))_b, σ_b)
        log10 Nc_f ~ Normal(μ, τ),   h_f,b ~ Normal(0, σ_h)

    The likelihood is on the observed scores, not on latent states: benchmark noise and
    misfit are in points, while the logit state stretches near-floor noise (an MMLU of
    25 ± 1 spans several latent units) and would let the least informative models dominate.
    The universal part of the field (``coef``, ``gamma0``) is held at its point fit
    (empirical Bayes) and sampling it is not offered: its 106 coefficients, on top of 78
    family parameters, face 215 scored (model, benchmark) values from 13 families of 2-8
    models, so the posterior would be a long ridge of coef/h/Nc trade-offs (which the fit
    resolves with its penalties) and NUTS would need far longer trajectories, while a
    single ODE-level run already takes minutes.
    The solve inside the model is :func:`capedyn.ode.solve_unchecked` — the same code path
    as the fit and predictions — with Tsit5 on a fixed grid of ``ode_steps`` equal steps
    per family (``solver="fixed"``, default; ``fixed_steps`` of the solve) or its adaptive
    PID controller (``solver="adaptive"``). The fixed grid keeps the log density smooth in
    the parameters (an adaptive controller's accept/reject decisions make it piecewise) and
    the cost per gradient constant. Measured against the adaptive solve on every family of
    both shipped fits at their fitted Nc and h: max 1.0e-4 points at 3 steps, 2e-5 at 4,
    1e-5 at 5 (the adaptive solve's own error level); the tests check 1e-3 points on every
    shipped family and ~0.02 points away from the fit, far below the fitted score noise
    (1.3-2.7 points). A solve that fails or goes non-finite contributes a finite
    penalty (and is counted in ``solve_failures``), never a NaN.

Results
    :class:`NcPosterior` holds the ArviZ ``InferenceData``, a tidy table (Nc posterior
    median and equal-tailed 68%/95% intervals in billions of parameters, R-hat and bulk ESS
    from ArviZ, per family and for the population), and the divergence count. The
    population Nc is reported two ways: ``population`` = 10^μ, the centre of the family
    distribution, and ``new family`` = the posterior predictive 10^(μ + τ·ε) of an unseen
    family's Nc. :func:`posterior_family` gives a family outside the fit its Nc (and h)
    with the population as prior. :func:`calibration_check` simulates families with known
    Nc from the coupling model and counts how often the 95% intervals cover the truth.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ._errors import CapedynError, FitFileError
from ._io import atomic_write
from ._jax import scoped_x64
from .data import BENCHMARKS, DataError

__all__ = [
    "POSTERIOR_PAPER_REFERENCE", "POSTERIOR_MODELS", "NcPosterior", "CouplingData",
    "TrajectoryData", "coupling_data", "trajectory_data", "coupling_model", "ode_model",
    "sample_posterior", "posterior_family", "SAMPLER_DEFAULTS", "solve_families", "load_posterior",
    "calibration_check",
]

POSTERIOR_PAPER_REFERENCE: dict[str, Any] = {
    "_note": "The CAPE paper's own Nc bootstrap (10^4 resamples of 14 web-trained models: "
             "Pythia, Llama-1, Llama-2), from its own data version. Shown beside capedyn's "
             "posteriors for comparison; never used in a computation.",
    "nc_median_b": 3.5, "nc_ci68_b": (3.2, 4.3), "nc_ci95_b": (2.9, 13.4),
    "family_nc_b": {"OPT": 0.12, "Pythia": 3.5, "Falcon": 7.0},
}

POSTERIOR_MODELS: tuple[str, ...] = ("coupling", "ode")
QUANTILES = (0.025, 0.16, 0.5, 0.84, 0.975)
CHAIN_METHODS = ("vectorized", "sequential", "parallel")
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {
    # Families whose γ12 never turns positive (Pythia, OPT, BLOOM) have log10 Nc posteriors
    # with long upper tails (small γ0, large Nc) that chains explore slowly: 4 x 5000 draws
    # at target 0.95 keep every R-hat <= 1.01 with no divergences (seeds 0-5 measured);
    # 4 x 2000 gave R-hat up to 1.03 on some seeds. A dense metric did not help (it cannot
    # follow the curved γ0-Nc ridge) and had a divergent seed.
    "coupling": {"chains": 4, "samples": 5000, "warmup": 1500, "target_accept": 0.95,
                 "dense_mass": False},
    # Each gradient integrates every family (fixed 3-step Tsit5, see the module docstring).
    # Measured on the shipped all_families fit, 4 vectorised chains, 2 shared cores: with
    # h non-centred everywhere warm-up crawled (deep trees); centred h, 4 x 500 (+500) at
    # 0.95: R-hat 1.010, 4 divergences; every divergence sat in tau's far tail (tau ~ 4)
    # under a HalfNormal(1) prior. With the ODE model's HalfNormal(0.5) tau prior and
    # sparse families' h non-centred: R-hat max 1.008, bulk ESS min 576 (families >= 604),
    # 0 divergences, 71 s of sampling (76 s wall for `capedyn posterior --model ode`).
    "ode": {"chains": 4, "samples": 500, "warmup": 500, "target_accept": 0.95,
            "dense_mass": False, "ode_steps": 3},
}
"""Default NUTS settings per model (see the benchmark in the report/docs)."""
_MU_PRIOR = (9.5, 1.0)          # log10 N: centre of the tested sizes, one decade sd
_TAU_PRIOR = 1.0                # decades
_TAU_PRIOR_ODE = 0.5            # decades (ODE-level model, see ode_model)
_MAX_CHAINS, _MAX_SAMPLES = 64, 1_000_000
_SOLVE_FAIL_PENALTY = -1.0e4    # finite: a failed solve is rejected, not a NaN gradient
_HYPER_COUPLING = ("mu", "tau", "log_gamma0_mu", "log_gamma0_sd", "sigma_gamma", "sigma_score")
_POSITIVE = {"tau", "log_gamma0_sd", "sigma_gamma", "sigma_score"}


class PosteriorError(CapedynError, ValueError):
    """Bad sampler settings or data that cannot inform a posterior."""


def _az():
    """ArviZ, imported on demand with its refactor FutureWarning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class CouplingData:
    """Usable running-coupling pairs, one row per pair.

    ``family_idx`` indexes ``families``; ``log10_n`` is log10 of the pair's geometric-mean
    size in parameters; ``delta_hs`` in HellaSwag points; ``gamma12`` in TQA points per HS
    point. ``n_models``/``smallest_b``/``largest_b`` describe each family (billions)."""

    families: tuple[str, ...]
    family_idx: np.ndarray
    log10_n: np.ndarray
    delta_hs: np.ndarray
    gamma12: np.ndarray
    n_models: tuple[int, ...]
    smallest_b: tuple[float, ...]
    largest_b: tuple[float, ...]

    @property
    def n_obs(self) -> tuple[int, ...]:
        return tuple(int(np.sum(self.family_idx == i)) for i in range(len(self.families)))


def coupling_data(df: pd.DataFrame, families: Sequence[str] | None = None) -> CouplingData:
    """Usable pairs of ``df`` (a base-model table) for the families that have at least one.

    ``families`` restricts to those names (unknown names raise :class:`DataError`)."""
    from .coupling import running_coupling, usable_pairs
    from .data import select_families

    df = select_families(df, list(families) if families else None)
    pairs = usable_pairs(running_coupling(df))
    names = tuple(dict.fromkeys(pairs["family"]))
    if not names:
        raise PosteriorError("no usable running-coupling pair: every family needs two models "
                             "with HellaSwag and TruthfulQA whose HellaSwag differs by at "
                             "least 0.5 points")
    scored = df.dropna(subset=["hellaswag", "truthfulqa"])
    sizes = [scored.loc[scored["family"] == f, "params_b"].to_numpy(float) for f in names]
    return CouplingData(
        families=names,
        family_idx=np.array([names.index(f) for f in pairs["family"]], dtype=np.int32),
        log10_n=pairs["log10_n_mid"].to_numpy(float),
        delta_hs=pairs["delta_hs"].to_numpy(float),
        gamma12=pairs["gamma12"].to_numpy(float),
        n_models=tuple(len(s) for s in sizes),
        smallest_b=tuple(float(s.min()) for s in sizes),
        largest_b=tuple(float(s.max()) for s in sizes))


@dataclass(frozen=True)
class TrajectoryData:
    """Families with ≥ 2 complete models, padded to a common number of models ``M``.

    ``x0`` (F,) log10 N of each family's smallest model, ``z0`` (F, 5) its latent state,
    ``xs`` (F, M) log10 N of every model (index 0 = the smallest; padding repeats the
    last), ``scores`` (F, M, 5) percent, ``mask`` (F, M) True where a score is observed
    *and* predicted (not the initial model, not padding)."""

    families: tuple[str, ...]
    x0: np.ndarray
    z0: np.ndarray
    xs: np.ndarray
    scores: np.ndarray
    mask: np.ndarray
    n_models: tuple[int, ...]
    smallest_b: tuple[float, ...]
    largest_b: tuple[float, ...]

    @property
    def n_obs(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.mask.sum(axis=1))


def trajectory_data(df: pd.DataFrame, families: Sequence[str] | None = None) -> TrajectoryData:
    """Trajectories of ``df`` for the ODE-level model (families with ≥ 2 complete models)."""
    from ._state import to_state
    from .data import select_families
    from .fit import trajectories

    trajs = trajectories(select_families(df, list(families) if families else None))
    if not trajs:
        raise PosteriorError("no family has two or more complete models (all five scores); "
                             "the ODE-level posterior needs at least one")
    n_f, m = len(trajs), max(len(t.models) for t in trajs)
    xs, ys, mask = np.zeros((n_f, m)), np.zeros((n_f, m, len(BENCHMARKS))), np.zeros((n_f, m), bool)
    for i, t in enumerate(trajs):
        n = len(t.models)
        xs[i, :n], xs[i, n:] = t.x, t.x[-1]
        ys[i, :n], ys[i, n:] = t.scores, t.scores[-1]
        mask[i, 1:n] = True
    return TrajectoryData(
        families=tuple(t.family for t in trajs), x0=xs[:, 0].copy(),
        z0=np.asarray(to_state(ys[:, 0])), xs=xs, scores=ys, mask=mask,
        n_models=tuple(len(t.models) for t in trajs),
        smallest_b=tuple(float(t.params_b[0]) for t in trajs),
        largest_b=tuple(float(t.params_b[-1]) for t in trajs))


# --------------------------------------------------------------------------- models

def _hyper_from_prior(hyper_prior):
    """Hyper-parameters drawn from a multivariate normal over their unconstrained values
    (a moment-matched population posterior), returned under the usual site names."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    mean, scale_tril = hyper_prior
    u = numpyro.sample("hyper_unconstrained",
                       dist.MultivariateNormal(jnp.asarray(mean), scale_tril=jnp.asarray(scale_tril)))
    return {name: numpyro.deterministic(name, jnp.exp(u[i]) if name in _POSITIVE else u[i])
            for i, name in enumerate(_HYPER_COUPLING)}


def coupling_model(family_idx, log10_n, delta_hs, n_families: int, gamma12=None,
                   hyper_prior=None):
    """Hierarchical running-coupling model (see the module docstring).

    ``family_idx`` (P,) int, ``log10_n`` (P,) log10 N in parameters, ``delta_hs`` (P,)
    HellaSwag points, ``gamma12`` (P,) TQA points per HS point (None: prior predictive).
    ``hyper_prior``: optional (mean (6,), scale_tril (6, 6)) of the unconstrained
    hyper-parameters (μ, log τ, m_γ, log s_γ, log σ_γ, log σ_s), replacing the default
    hyper-priors; :func:`posterior_family` passes a fitted population's.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    if hyper_prior is None:
        hp = {
            "mu": numpyro.sample("mu", dist.Normal(*_MU_PRIOR)),
            "tau": numpyro.sample("tau", dist.HalfNormal(_TAU_PRIOR)),
            "log_gamma0_mu": numpyro.sample("log_gamma0_mu", dist.Normal(math.log(0.5), 1.0)),
            "log_gamma0_sd": numpyro.sample("log_gamma0_sd", dist.HalfNormal(1.0)),
            "sigma_gamma": numpyro.sample("sigma_gamma", dist.HalfNormal(0.5)),
            "sigma_score": numpyro.sample("sigma_score", dist.HalfNormal(2.0)),
        }
    else:
        hp = _hyper_from_prior(hyper_prior)
    with numpyro.plate("family", n_families):
        z_nc = numpyro.sample("log10_nc_z", dist.Normal(0.0, 1.0))
        z_g = numpyro.sample("gamma0_z", dist.Normal(0.0, 1.0))
    log10_nc = numpyro.deterministic("log10_nc", hp["mu"] + hp["tau"] * z_nc)
    gamma0 = numpyro.deterministic("gamma0", jnp.exp(hp["log_gamma0_mu"] + hp["log_gamma0_sd"] * z_g))
    idx = jnp.asarray(family_idx)
    if idx.shape[0] == 0:  # a family without usable pairs: population predictive only
        return
    pred = gamma0[idx] * (jnp.asarray(log10_n) - log10_nc[idx])
    dhs = jnp.asarray(delta_hs)
    scale = jnp.sqrt(hp["sigma_gamma"] ** 2 + 2.0 * hp["sigma_score"] ** 2 * (1.0 + pred ** 2) / dhs ** 2)
    with numpyro.plate("pair", idx.shape[0]):
        numpyro.sample("gamma12", dist.Normal(pred, scale), obs=gamma12)


def solve_families(fld, z0, x0, xs, log10_nc, h, *, solver: str = "fixed", steps: int = 5):
    """Latent states (F, M, 5) at ``xs`` for every family and a (F,) success flag, through
    :func:`capedyn.ode.solve_unchecked` (the one solve path of capedyn).

    ``solver="fixed"``: Tsit5 with ``steps`` equal steps per family (``fixed_steps``);
    ``"adaptive"``: its PID controller (rtol 1e-6, atol 1e-8, ≤ 1024 steps)."""
    import equinox as eqx

    from .ode import FamilyParams, solve_unchecked

    fams = FamilyParams(log10_nc=log10_nc, h=h)
    if solver == "fixed":
        kw = dict(fixed_steps=int(steps))
    elif solver == "adaptive":
        kw = dict(rtol=1e-6, atol=1e-8, max_steps=1024)
    else:
        raise PosteriorError(f"solver must be 'fixed' or 'adaptive', got {solver!r}")
    one = lambda f, a, b, c, d: solve_unchecked(f, a, b, c, d, **kw)  # noqa: E731
    return eqx.filter_vmap(one, in_axes=(None, 0, 0, 0, 0))(fld, z0, x0, xs, fams)


CENTRED_H_MIN_OBS = 3
"""Families with at least this many scored models (after the initial one) get a centred
source h in the ODE-level model; sparser families a non-centred one."""


def ode_model(x0, z0, xs, mask, fld, scores=None, hyper=None, solver: str = "fixed",
              steps: int = 3, centred_h=None):
    """Hierarchical ODE-level model (see the module docstring).

    ``x0`` (F,) log10 N of each family's smallest model, ``z0`` (F, 5) its latent state,
    ``xs`` (F, M) log10 N of the family's models, ``mask`` (F, M) which scores count,
    ``fld`` the fitted :class:`capedyn.ode.CouplingField` (held fixed), ``scores``
    (F, M, 5) percent (None: prior predictive). ``hyper``: optional dict of fixed
    population values ``mu``, ``tau``, ``sigma_h`` (latent units per decade) and
    ``sigma_score`` (5,) points — the frozen population of :func:`posterior_family`.

    Parametrisation: log10 Nc_f is non-centred (``log10_nc_z``; the data say little about
    it, so the prior dominates). h_f is sampled as ``h_raw``: centred (h = h_raw ~
    Normal(0, σ_h)) for a family with ≥ ``CENTRED_H_MIN_OBS`` scored models, whose
    trajectory pins its source down (non-centring it would tie σ_h to every z and make a
    funnel), and non-centred (h = σ_h·h_raw, h_raw ~ Normal(0, 1)) for sparser families,
    which the prior dominates. ``centred_h``: a (F,) bool array overriding that choice.

    Priors: μ ~ Normal(9.5, 1), τ ~ HalfNormal(0.5) decades (tighter than the coupling
    model's HalfNormal(1): the scores barely constrain Nc through the ODE, so τ's posterior
    follows its prior, and under HalfNormal(1) its tail (τ ≈ 4, family Nc spread over ±8
    decades) drove the running coupling to extreme values where every divergence of the
    sampler occurred), σ_h ~ HalfNormal(0.5) latent units per decade, σ_b ~ HalfNormal(3)
    points.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from ._state import from_state

    n_f, n_b = xs.shape[0], len(BENCHMARKS)
    if hyper is None:
        mu = numpyro.sample("mu", dist.Normal(*_MU_PRIOR))
        tau = numpyro.sample("tau", dist.HalfNormal(_TAU_PRIOR_ODE))
        sigma_h = numpyro.sample("sigma_h", dist.HalfNormal(0.5))
        with numpyro.plate("benchmark", n_b):
            sigma_score = numpyro.sample("sigma_score", dist.HalfNormal(3.0))
    else:
        mu, tau, sigma_h = (jnp.asarray(hyper[k]) for k in ("mu", "tau", "sigma_h"))
        sigma_score = jnp.asarray(hyper["sigma_score"])
    if centred_h is None:
        centred_h = np.asarray(mask).sum(axis=1) >= CENTRED_H_MIN_OBS
    centred = jnp.asarray(np.asarray(centred_h, bool))[:, None]
    with numpyro.plate("family", n_f):
        z_nc = numpyro.sample("log10_nc_z", dist.Normal(0.0, 1.0))
        scale = jnp.broadcast_to(jnp.where(centred, sigma_h, 1.0), (n_f, n_b))
        h_raw = numpyro.sample("h_raw", dist.Normal(0.0, scale).to_event(1))
    log10_nc = numpyro.deterministic("log10_nc", mu + tau * z_nc)
    h = numpyro.deterministic("h", jnp.where(centred, h_raw, sigma_h * h_raw))
    zs, ok = solve_families(fld, jnp.asarray(z0), jnp.asarray(x0), jnp.asarray(xs),
                            log10_nc, h, solver=solver, steps=steps)
    # A failed solve must not leak NaN into the gradient: predict from a finite stand-in
    # and reject the point through a large finite penalty instead.
    zs = jnp.where(ok[:, None, None], jnp.clip(zs, -40.0, 40.0), jnp.asarray(z0)[:, None, :])
    numpyro.deterministic("solve_failures", jnp.sum(~ok))
    numpyro.factor("solve_guard", jnp.where(jnp.all(ok), 0.0, _SOLVE_FAIL_PENALTY))
    pred = from_state(zs)
    with numpyro.handlers.mask(mask=jnp.asarray(mask)[..., None]):
        numpyro.sample("scores", dist.Normal(pred, sigma_score), obs=scores)


# --------------------------------------------------------------------------- inference

def _check_counts(chains, samples, warmup, seed, chain_method,
                  default_warmup: int | None = None) -> tuple[int, int, int, int]:
    def as_int(name, v, lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise PosteriorError(f"{name} must be a whole number, got {v!r}")
        if not lo <= int(v) <= hi:
            raise PosteriorError(f"{name} must be between {lo} and {hi}, got {v}")
        return int(v)

    chains = as_int("chains", chains, 1, _MAX_CHAINS)
    samples = as_int("samples", samples, 4, _MAX_SAMPLES)
    if warmup is None:
        warmup = samples if default_warmup is None else default_warmup
    warmup = as_int("warmup", warmup, 0, _MAX_SAMPLES)
    seed = as_int("seed", seed, 0, 2**31 - 1)
    if chain_method not in CHAIN_METHODS:
        raise PosteriorError(f"chain_method must be one of {CHAIN_METHODS}, got {chain_method!r}")
    return chains, samples, warmup, seed


def _run_nuts(model, kwargs: dict, *, chains, samples, warmup, seed, target_accept,
              chain_method, progress, init_values=None, dense_mass=False):
    import jax
    from numpyro.infer import MCMC, NUTS, init_to_median, init_to_value

    init = init_to_value(values=init_values) if init_values else init_to_median()
    kernel = NUTS(model, target_accept_prob=target_accept, init_strategy=init,
                  dense_mass=dense_mass)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=chains,
                chain_method=chain_method, progress_bar=bool(progress))
    mcmc.run(jax.random.PRNGKey(seed), extra_fields=("diverging", "num_steps"), **kwargs)
    jax.block_until_ready(mcmc.get_samples())  # JAX dispatches asynchronously: time it all
    return mcmc


def _chain_note(chains: int, chain_method: str) -> list[str]:
    """Say so when 'parallel' cannot run in parallel (NumPyro then runs chains in turn)."""
    import jax

    n_dev = jax.local_device_count()
    if chain_method == "parallel" and n_dev < chains:
        return [f"chain_method='parallel' ran the {chains} chains sequentially: JAX sees "
                f"{n_dev} device(s); call numpyro.set_host_device_count({chains}) before JAX "
                "starts (the CLI does this for --chain-method parallel)"]
    return []


def _to_idata(mcmc, families, model: str):
    az = _az()
    fam_dims = ["log10_nc", "log10_nc_z", "gamma0", "gamma0_z"]
    dims = {k: ["family"] for k in fam_dims}
    coords = {"family": list(families)}
    if model == "ode":
        dims.update({"h": ["family", "benchmark"], "h_raw": ["family", "benchmark"],
                     "sigma_score": ["benchmark"]})
        coords["benchmark"] = list(BENCHMARKS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.from_numpyro(mcmc, coords=coords, dims=dims, log_likelihood=False)


def _add_new_family(idata, seed: int) -> None:
    """Posterior predictive log10 Nc of an unseen family, μ + τ·ε, as a posterior variable."""
    post = idata.posterior
    if "mu" not in post or "tau" not in post:
        return
    rng = np.random.default_rng(seed + 7919)
    eps = rng.standard_normal(post["mu"].shape)
    post["log10_nc_new"] = post["mu"] + post["tau"] * eps


def _quantiles_b(log10_draws: np.ndarray) -> dict[str, Any]:
    """Median and equal-tailed 68%/95% intervals of Nc in billions from log10 N draws."""
    q = np.quantile(np.asarray(log10_draws, float).reshape(-1), QUANTILES)
    b = 10.0 ** (q - 9.0)
    return {"nc_median_b": float(b[2]), "nc_ci68_b": [float(b[1]), float(b[3])],
            "nc_ci95_b": [float(b[0]), float(b[4])], "log10_nc_median": float(q[2])}


def _diag(rhat, ess, var: str, family: str | None = None) -> tuple[float, float]:
    r, e = rhat[var], ess[var]
    if family is not None:
        r, e = r.sel(family=family), e.sel(family=family)
    return float(np.max(r.values)), float(np.min(e.values))


def _build_table(idata, model: str, data) -> pd.DataFrame:
    """Tidy per-family + population table from the posterior."""
    az = _az()
    post = idata.posterior
    per_family = ["log10_nc"] + (["gamma0"] if model == "coupling" else ["h"])
    pop_vars = [v for v in ("mu", "tau") if v in post]
    var_names = per_family + pop_vars + (["log10_nc_new"] if "log10_nc_new" in post else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = az.rhat(idata, var_names=var_names)
        ess = az.ess(idata, var_names=var_names, method="bulk")
    rows = []
    for i, fam in enumerate(data.families):
        q = _quantiles_b(post["log10_nc"].sel(family=fam).values)
        diag = [_diag(rhat, ess, v, fam) for v in per_family]
        row = {"family": fam, "kind": "family", "n_models": data.n_models[i],
               "n_obs": data.n_obs[i], **_flat(q),
               "rhat_max": max(d[0] for d in diag), "ess_bulk_min": min(d[1] for d in diag),
               "smallest_b": data.smallest_b[i], "largest_b": data.largest_b[i]}
        if model == "coupling":
            row["gamma0_median"] = float(np.median(post["gamma0"].sel(family=fam).values))
        else:
            hmed = np.median(post["h"].sel(family=fam).values.reshape(-1, len(BENCHMARKS)), axis=0)
            row.update({f"h_{b}": float(v) for b, v in zip(BENCHMARKS, hmed)})
        rows.append(row)
    if pop_vars:
        diag = [_diag(rhat, ess, v) for v in pop_vars]
        rows.append({"family": "population (10^mu)", "kind": "population",
                     "n_models": int(sum(data.n_models)), "n_obs": int(sum(data.n_obs)),
                     **_flat(_quantiles_b(post["mu"].values)),
                     "rhat_max": max(d[0] for d in diag), "ess_bulk_min": min(d[1] for d in diag)})
    if "log10_nc_new" in post:
        r, e = _diag(rhat, ess, "log10_nc_new")
        rows.append({"family": "new family (predictive)", "kind": "new_family",
                     "n_models": 0, "n_obs": 0, **_flat(_quantiles_b(post["log10_nc_new"].values)),
                     "rhat_max": r, "ess_bulk_min": e})
    return pd.DataFrame(rows)


def _flat(q: dict) -> dict:
    return {"nc_median_b": q["nc_median_b"], "nc_ci68_lo_b": q["nc_ci68_b"][0],
            "nc_ci68_hi_b": q["nc_ci68_b"][1], "nc_ci95_lo_b": q["nc_ci95_b"][0],
            "nc_ci95_hi_b": q["nc_ci95_b"][1], "log10_nc_median": q["log10_nc_median"]}


@dataclass
class NcPosterior:
    """Posterior over Nc (and h) from :func:`sample_posterior` or :func:`posterior_family`.

    ``idata`` ArviZ InferenceData (posterior, sample_stats with ``diverging``);
    ``table`` tidy DataFrame (Nc in billions, see :func:`sample_posterior`);
    ``divergences`` total over chains; ``runtime_s`` wall time of sampling."""

    model: str
    idata: Any
    families: tuple[str, ...]
    table: pd.DataFrame
    divergences: int
    divergences_per_chain: list[int]
    runtime_s: float
    config: dict
    data: Any = None
    field_: Any = None
    notes: list[str] = field(default_factory=list)

    # ---- summaries
    def family_rows(self) -> pd.DataFrame:
        return self.table[self.table["kind"] == "family"].reset_index(drop=True)

    def row(self, name: str) -> dict:
        """The table row of a family, ``"population"`` or ``"new_family"`` as a dict."""
        t = self.table
        hit = t[(t["family"] == name) | (t["kind"] == name)]
        if hit.empty:
            raise PosteriorError(f"'{name}' is not in this posterior; families: "
                                 f"{', '.join(self.families)}")
        return hit.iloc[0].to_dict()

    def to_dict(self, families: Sequence[str] | None = None) -> dict:
        """JSON-ready result: ``families`` (list of objects), ``population``,
        ``new_family``, ``divergences`` and run settings."""
        fam_rows = self.family_rows()
        if families:
            fam_rows = fam_rows[fam_rows["family"].isin(list(families))]
        out_f = [_row_json(r) for r in fam_rows.to_dict("records")]
        pop = self.table[self.table["kind"] == "population"]
        new = self.table[self.table["kind"] == "new_family"]
        return {
            "model": self.model,
            "families": out_f,
            "population": _row_json(pop.iloc[0].to_dict(), "10^mu: centre of the family "
                                    "distribution of Nc") if len(pop) else None,
            "new_family": _row_json(new.iloc[0].to_dict(), "posterior predictive Nc of an "
                                    "unseen family, 10^(mu + tau*eps)") if len(new) else None,
            "divergences": int(self.divergences),
            "divergences_per_chain": [int(v) for v in self.divergences_per_chain],
            "rhat_max": float(self.table["rhat_max"].max()),
            "ess_bulk_min": float(self.table["ess_bulk_min"].min()),
            "runtime_s": round(float(self.runtime_s), 2),
            "config": self.config,
            "prior_only": bool(self.config.get("prior_only", False)),
            "notes": list(self.notes),
            "paper_reference": {k: (list(v) if isinstance(v, tuple) else v)
                                for k, v in POSTERIOR_PAPER_REFERENCE.items()},
        }

    # ---- output files
    def to_netcdf(self, path: str | Path) -> Path:
        """Write the InferenceData (plus this run's settings) to netCDF, atomically."""
        idata = self.idata
        idata.posterior.attrs["capedyn"] = json.dumps(
            {"model": self.model, "families": list(self.families), "config": self.config,
             "data": _data_json(self.data), "runtime_s": self.runtime_s, "notes": self.notes})
        return atomic_write(path, lambda p: idata.to_netcdf(str(p)))

    def plot_forest(self, ax=None, families: Sequence[str] | None = None):
        """:func:`capedyn.plotting.plot_nc_forest` of this posterior; returns the Axes."""
        from .plotting import plot_nc_forest

        return plot_nc_forest(self, ax=ax, families=families)


def _row_json(r: dict, definition: str | None = None) -> dict:
    out = {"family": r["family"], "nc_median_b": r["nc_median_b"],
           "nc_ci68_b": [r["nc_ci68_lo_b"], r["nc_ci68_hi_b"]],
           "nc_ci95_b": [r["nc_ci95_lo_b"], r["nc_ci95_hi_b"]],
           "log10_nc_median": r["log10_nc_median"],
           "rhat_max": r["rhat_max"], "ess_bulk_min": r["ess_bulk_min"],
           "n_models": int(r["n_models"]), "n_obs": int(r["n_obs"])}
    for k in ("smallest_b", "largest_b", "gamma0_median", *(f"h_{b}" for b in BENCHMARKS)):
        if k in r and r[k] is not None and not (isinstance(r[k], float) and math.isnan(r[k])):
            out[k] = r[k]
    if definition:
        out["definition"] = definition
    return out


def _data_json(data) -> dict | None:
    if data is None:
        return None
    out = {}
    for k, v in vars(data).items():
        out[k] = v.tolist() if isinstance(v, np.ndarray) else list(v) if isinstance(v, tuple) else v
    out["_type"] = type(data).__name__
    return out


def _data_from_json(d: dict | None):
    if not d:
        return None
    kind = d.pop("_type", None)
    cls = {"CouplingData": CouplingData, "TrajectoryData": TrajectoryData}.get(kind)
    if cls is None:
        return None
    kw = {k: (tuple(v) if k in ("families", "n_models", "smallest_b", "largest_b") else np.asarray(v))
          for k, v in d.items()}
    return cls(**kw)


def _resolve_fit(fit):
    """(field, {family: FamilyParams}, population log10 Nc) from ``fit``: a fitted
    :class:`capedyn.CouplingODE`, a bare :class:`capedyn.ode.CouplingField`, a saved fit
    folder or a shipped fit name; None takes the shipped ``all_families`` fit."""
    from .fit import CouplingODE, load_fit, shipped_fits
    from .ode import CouplingField

    if fit is None:
        if "all_families" not in shipped_fits():
            raise PosteriorError("the ODE-level posterior needs a fitted coupling ODE and no "
                                 "shipped 'all_families' fit was found; pass fit=... (a "
                                 "CouplingODE fitted with capedyn.CouplingODE().fit(df) or a "
                                 "saved fit folder, --fit DIR on the command line)")
        fit = "all_families"
    if isinstance(fit, CouplingField):
        return fit, {}, _MU_PRIOR[0]
    if not isinstance(fit, CouplingODE):
        fit = load_fit(fit)
    if not hasattr(fit, "field_"):
        raise PosteriorError("the CouplingODE passed as fit is not fitted; call .fit(df) first")
    return fit.field_, dict(fit.families_), float(fit.mu_nc_)


@scoped_x64
def sample_posterior(df=None, *, model: str | None = None,
                     chains: int | None = None, samples: int | None = None,
                     warmup: int | None = None, seed: int = 0,
                     families: Sequence[str] | None = None, fit=None,
                     target_accept: float | None = None, dense_mass: bool | None = None,
                     chain_method: str = "vectorized", progress: bool = True,
                     solver: str = "fixed", ode_steps: int | None = None) -> NcPosterior:
    """NUTS posterior over Nc for every family of ``df``.

    ``df``: a base-model table (default: the shipped one), or prepared data — a
    :class:`CouplingData` (coupling model) or :class:`TrajectoryData` (ODE model), e.g.
    simulated. ``model``: ``"coupling"`` (default; running-coupling pairs, under a
    minute) or ``"ode"`` (observed scores given the coupling-ODE solution; minutes).
    ``chains`` NUTS chains run with ``chain_method`` (``"vectorized"``: one compiled
    program for all chains); ``samples`` kept draws per chain after ``warmup`` adaptation
    draws; None takes the model's :data:`SAMPLER_DEFAULTS`, as do ``target_accept``,
    ``dense_mass`` and ``ode_steps`` (fixed Tsit5 steps per family, ``solver="fixed"``).
    ``seed`` for the PRNG. ``families`` restricts the fit to those families. ``fit`` (ODE
    model): a fitted :class:`capedyn.CouplingODE` (its field is held fixed, its family
    values start the chains), a :class:`capedyn.ode.CouplingField`, a saved fit folder or a
    shipped fit name; default the shipped ``all_families`` fit.

    Returns an :class:`NcPosterior`; its ``table`` has, per family and for the population,
    the Nc posterior median and equal-tailed 68%/95% intervals in billions of parameters,
    the largest R-hat and smallest bulk ESS over the reported quantities (log10 Nc and γ0,
    or log10 Nc and h), and ``divergences`` counts divergent transitions after warm-up.
    """
    from .data import load_base_models

    if model is None:
        model = "ode" if isinstance(df, TrajectoryData) else "coupling"
    if model not in POSTERIOR_MODELS:
        raise PosteriorError(f"model must be one of {POSTERIOR_MODELS}, got {model!r}")
    dflt = SAMPLER_DEFAULTS[model]
    chains = dflt["chains"] if chains is None else chains
    samples = dflt["samples"] if samples is None else samples
    chains, samples, warmup, seed = _check_counts(chains, samples, warmup, seed, chain_method,
                                                  dflt["warmup"])
    ta = float(dflt["target_accept"] if target_accept is None else target_accept)
    if not 0.5 <= ta < 1.0:
        raise PosteriorError(f"target_accept must be in [0.5, 1), got {ta}")
    dense = bool(dflt["dense_mass"] if dense_mass is None else dense_mass)
    steps = int(SAMPLER_DEFAULTS["ode"]["ode_steps"] if ode_steps is None else ode_steps)
    if not 2 <= steps <= 200:
        raise PosteriorError(f"ode_steps must be between 2 and 200, got {steps}")
    if solver not in ("fixed", "adaptive"):
        raise PosteriorError(f"solver must be 'fixed' or 'adaptive', got {solver!r}")
    wanted = CouplingData if model == "coupling" else TrajectoryData
    if isinstance(df, (CouplingData, TrajectoryData)):
        if not isinstance(df, wanted):
            raise PosteriorError(f"model '{model}' needs {wanted.__name__}, got {type(df).__name__}")
        data = df
    else:
        df = load_base_models() if df is None else df
        data = coupling_data(df, families) if model == "coupling" else None
    notes: list[str] = []
    fld = None
    if model == "ode":
        fld, fitted, mu0 = _resolve_fit(fit)
        data = data or trajectory_data(df, families)
        if float(fld.gamma0) <= 0:
            notes.append(f"the fitted field has gamma0 = {float(fld.gamma0):.3g} <= 0: in the "
                         "ODE, gamma12 falls through zero at Nc (bonus below, tax above), the "
                         "reverse of the tax->bonus reading of the running coupling")
    notes += _chain_note(chains, chain_method)
    t0 = time.perf_counter()
    if model == "coupling":
        kwargs = dict(family_idx=data.family_idx, log10_n=data.log10_n, delta_hs=data.delta_hs,
                      n_families=len(data.families), gamma12=data.gamma12)
        mcmc = _run_nuts(coupling_model, kwargs, chains=chains, samples=samples, warmup=warmup,
                         seed=seed, target_accept=ta, chain_method=chain_method,
                         progress=progress, dense_mass=dense)
    else:
        kwargs = dict(x0=data.x0, z0=data.z0, xs=data.xs, mask=data.mask, fld=fld,
                      scores=data.scores, solver=solver, steps=steps)
        mcmc = _run_nuts(ode_model, kwargs, chains=chains, samples=samples, warmup=warmup,
                         seed=seed, target_accept=ta, chain_method=chain_method,
                         progress=progress, init_values=_ode_init(fitted, mu0, data),
                         dense_mass=dense)
    runtime = time.perf_counter() - t0
    return _result(mcmc, model, data, runtime, seed, notes, fld, config=dict(
        chains=chains, samples=samples, warmup=warmup, seed=seed, target_accept=ta,
        chain_method=chain_method, dense_mass=dense, solver=solver if model == "ode" else None,
        ode_steps=steps if model == "ode" else None))


def _ode_init(fitted: dict, mu0: float, data: TrajectoryData) -> dict:
    """Start every chain at the point fit (sampler coordinates; families the fit does
    not know at its population mean, h = 0), hyper-parameters at moderate values: the fit
    is the MAP of a closely related penalised objective."""
    import jax.numpy as jnp

    lnc = np.array([float(fitted[f].log10_nc) if f in fitted else mu0 for f in data.families])
    h = np.array([np.asarray(fitted[f].h) if f in fitted else np.zeros(len(BENCHMARKS))
                  for f in data.families])
    mu = float(np.clip(np.mean(lnc), 7.0, 12.0))
    tau = float(max(np.std(lnc), 0.2))
    sigma_h = float(max(np.std(h), 0.05))
    centred = np.asarray(data.mask).sum(axis=1) >= CENTRED_H_MIN_OBS
    return {"mu": jnp.asarray(mu), "tau": jnp.asarray(tau), "sigma_h": jnp.asarray(sigma_h),
            "sigma_score": jnp.full(len(BENCHMARKS), 2.0),
            "log10_nc_z": jnp.asarray(np.clip((lnc - mu) / tau, -3, 3)),
            "h_raw": jnp.asarray(np.where(centred[:, None], np.clip(h, -3 * sigma_h, 3 * sigma_h),
                                          np.clip(h / sigma_h, -3, 3)))}


def _result(mcmc, model, data, runtime, seed, notes, fld, config) -> NcPosterior:
    idata = _to_idata(mcmc, data.families, model)
    _add_new_family(idata, seed)
    div = idata.sample_stats["diverging"].values
    per_chain = [int(v) for v in div.sum(axis=1)]
    if "solve_failures" in idata.posterior:
        nfail = int(idata.posterior["solve_failures"].values.sum())
        if nfail:
            notes.append(f"{nfail} failed ODE solves among the kept draws")
    table = _build_table(idata, model, data)
    return NcPosterior(model=model, idata=idata, families=tuple(data.families), table=table,
                       divergences=int(sum(per_chain)), divergences_per_chain=per_chain,
                       runtime_s=float(runtime), config=config, data=data, field_=fld,
                       notes=notes)


# --------------------------------------------------------------------------- new family

def _coupling_hyper_prior(post: NcPosterior):
    """Moment-matched multivariate normal of the unconstrained population hyper-parameters."""
    p = post.idata.posterior
    cols = []
    for name in _HYPER_COUPLING:
        v = np.asarray(p[name].values, float).reshape(-1)
        cols.append(np.log(np.maximum(v, 1e-12)) if name in _POSITIVE else v)
    u = np.column_stack(cols)
    cov = np.cov(u, rowvar=False) + 1e-9 * np.eye(u.shape[1])
    return u.mean(axis=0), np.linalg.cholesky(cov)


@scoped_x64
def posterior_family(fit: NcPosterior, df_new: pd.DataFrame, family: str | None = None, *,
                     chains: int = 4, samples: int | None = None, warmup: int | None = None,
                     seed: int = 0, progress: bool = False,
                     chain_method: str = "vectorized",
                     allow_prior: bool = False) -> NcPosterior:
    """Nc (and h, ODE model) of a family that is not part of ``fit``, with the population
    as prior.

    A family whose models give no usable running-coupling pair (e.g. a single model) has
    no data to update the prior with: that raises :class:`PosteriorError` unless
    ``allow_prior=True``, in which case the result is the population's *prior prediction*
    for an unseen family and says so (``config["prior_only"]`` is True, a note, and
    ``to_dict()["prior_only"]``).

    ``df_new`` holds the new family's models (base-model table format; ``family`` picks
    one family when it holds several). Coupling model: the fitted population's
    hyper-posterior, moment-matched by a multivariate normal over the unconstrained
    hyper-parameters, is the prior, and only the new family's pairs are the data (a family
    without a usable pair gets the population predictive). ODE model: the population (μ, τ,
    σ_h, σ_b at their posterior medians; the universal field at its point fit) is frozen
    and only the family's log10 Nc and h are sampled.
    """
    if not isinstance(fit, NcPosterior):
        raise PosteriorError("fit must be an NcPosterior from sample_posterior or load_posterior")
    names = list(dict.fromkeys(df_new["family"]))
    if family is not None:
        if family not in names:
            raise DataError(f"unknown family ['{family}']", file="<table>", column="family",
                            hint=f"Known families: {', '.join(names)}")
        df_new = df_new[df_new["family"] == family]
    elif len(names) != 1:
        raise PosteriorError(f"df_new holds {len(names)} families ({', '.join(names)}); "
                             "pass family=... to pick one")
    name = family or names[0]
    if name in fit.families:
        raise PosteriorError(f"family '{name}' is already part of this posterior; use its row "
                             "of fit.table, or refit without it")
    dflt = SAMPLER_DEFAULTS[fit.model]
    samples = dflt["samples"] if samples is None else samples
    chains, samples, warmup, seed = _check_counts(chains, samples, warmup, seed, chain_method,
                                                  dflt["warmup"])
    t0 = time.perf_counter()
    notes = ["population frozen/used as prior from a posterior over "
             f"{len(fit.families)} families"]
    if fit.model == "coupling":
        data = _new_family_pairs(df_new, name)
        kwargs = dict(family_idx=data.family_idx, log10_n=data.log10_n, delta_hs=data.delta_hs,
                      n_families=1, gamma12=data.gamma12 if len(data.gamma12) else None,
                      hyper_prior=_coupling_hyper_prior(fit))
        if not len(data.gamma12):
            if not allow_prior:
                raise PosteriorError(
                    f"family '{name}' has no usable running-coupling pair (it needs two models "
                    "with HellaSwag and TruthfulQA whose HellaSwag differs by ≥ 0.5 points), so "
                    "there is no data to update the population prior with; pass "
                    "allow_prior=True to get the population's prior prediction for it instead")
            notes.append(f"PRIOR PREDICTION: family '{name}' has no usable pair, so this is the "
                         "population's prior prediction for an unseen family, not a posterior "
                         "informed by the family's own data")
        mcmc = _run_nuts(coupling_model, kwargs, chains=chains, samples=samples, warmup=warmup,
                         seed=seed, target_accept=float(fit.config.get("target_accept", 0.9)),
                         chain_method=chain_method, progress=progress)
        fld = None
    else:
        if fit.field_ is None:
            raise PosteriorError("this ODE-level posterior has no field attached (loaded from "
                                 "netCDF); rerun sample_posterior(model='ode') first")
        data = trajectory_data(df_new, [name])
        p = fit.idata.posterior
        hyper = {"mu": float(np.median(p["mu"].values)), "tau": float(np.median(p["tau"].values)),
                 "sigma_h": float(np.median(p["sigma_h"].values)),
                 "sigma_score": np.median(p["sigma_score"].values.reshape(-1, len(BENCHMARKS)), axis=0)}
        fld = fit.field_
        kwargs = dict(x0=data.x0, z0=data.z0, xs=data.xs, mask=data.mask, fld=fld,
                      scores=data.scores, hyper=hyper, solver=fit.config.get("solver") or "fixed",
                      steps=int(fit.config.get("ode_steps") or dflt["ode_steps"]))
        mcmc = _run_nuts(ode_model, kwargs, chains=chains, samples=samples, warmup=warmup,
                         seed=seed, target_accept=float(fit.config.get("target_accept", 0.8)),
                         chain_method=chain_method, progress=progress)
    runtime = time.perf_counter() - t0
    prior_only = fit.model == "coupling" and not len(data.gamma12)
    out = _result(mcmc, fit.model, data, runtime, seed, notes, fld, config=dict(
        chains=chains, samples=samples, warmup=warmup, seed=seed, new_family=name,
        chain_method=chain_method, target_accept=fit.config.get("target_accept"),
        prior_only=prior_only))
    return out


def _new_family_pairs(df_new: pd.DataFrame, name: str) -> CouplingData:
    from .coupling import running_coupling, usable_pairs

    pairs = usable_pairs(running_coupling(df_new))
    scored = df_new.dropna(subset=["hellaswag", "truthfulqa"])
    sizes = scored["params_b"].to_numpy(float)
    if sizes.size == 0:
        raise PosteriorError(f"family '{name}' has no model with both HellaSwag and TruthfulQA")
    return CouplingData(
        families=(name,), family_idx=np.zeros(len(pairs), np.int32),
        log10_n=pairs["log10_n_mid"].to_numpy(float), delta_hs=pairs["delta_hs"].to_numpy(float),
        gamma12=pairs["gamma12"].to_numpy(float), n_models=(int(sizes.size),),
        smallest_b=(float(sizes.min()),), largest_b=(float(sizes.max()),))


# --------------------------------------------------------------------------- files

def load_posterior(path: str | Path) -> NcPosterior:
    """Read a posterior written by :meth:`NcPosterior.to_netcdf` (the ODE field is not
    stored: :func:`posterior_family` then needs a fresh ODE-level run)."""
    az = _az()
    p = Path(path)
    if not p.is_file():
        raise FitFileError(f"no posterior file at '{p}'; write one with "
                           "`capedyn posterior --out FILE.nc`")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = az.from_netcdf(str(p))
        meta = json.loads(idata.posterior.attrs["capedyn"])
    except Exception as exc:  # any decode failure: the file is not a capedyn posterior
        raise FitFileError(f"{p}: not a readable capedyn posterior ({type(exc).__name__}: "
                           f"{exc}); rewrite it with `capedyn posterior --out`") from None
    data = _data_from_json(meta.get("data"))
    if data is None:
        raise FitFileError(f"{p}: the posterior lacks its data description; rewrite it")
    div = idata.sample_stats["diverging"].values
    per_chain = [int(v) for v in div.sum(axis=1)]
    return NcPosterior(model=meta["model"], idata=idata, families=tuple(meta["families"]),
                       table=_build_table(idata, meta["model"], data),
                       divergences=int(sum(per_chain)), divergences_per_chain=per_chain,
                       runtime_s=float(meta.get("runtime_s", float("nan"))),
                       config=meta.get("config", {}), data=data, notes=meta.get("notes", []))


# --------------------------------------------------------------------------- calibration

CALIBRATION_TRUTH = {"mu": 9.5, "tau": 0.6, "log_gamma0_mu": math.log(0.4),
                     "log_gamma0_sd": 0.8, "sigma_gamma": 0.15, "sigma_score": 1.0}
"""Population used to simulate calibration data (inside the prior's typical range, close
to the shipped data's posterior)."""


def simulate_coupling_data(n_families: int, seed: int, truth: dict | None = None,
                           design: CouplingData | None = None) -> tuple[CouplingData, np.ndarray]:
    """Families simulated from :func:`coupling_model` with known log10 Nc.

    Each simulated family takes the pair design (sizes and HellaSwag steps) of a family of
    ``design`` (default: the shipped table's), drawn at random, so the simulation has the
    real data's spacing and conditioning. Returns (data, true log10 Nc per family)."""
    from .data import load_base_models

    truth = {**CALIBRATION_TRUTH, **(truth or {})}
    design = design or coupling_data(load_base_models())
    rng = np.random.default_rng(seed)
    idx, xs, dhs, gs, lncs, n_models, lo, hi = [], [], [], [], [], [], [], []
    for f in range(n_families):
        src = int(rng.integers(len(design.families)))
        sel = design.family_idx == src
        x, dh = design.log10_n[sel], design.delta_hs[sel]
        lnc = truth["mu"] + truth["tau"] * rng.standard_normal()
        g0 = math.exp(truth["log_gamma0_mu"] + truth["log_gamma0_sd"] * rng.standard_normal())
        pred = g0 * (x - lnc)
        scale = np.sqrt(truth["sigma_gamma"] ** 2
                        + 2 * truth["sigma_score"] ** 2 * (1 + pred ** 2) / dh ** 2)
        gs.append(pred + scale * rng.standard_normal(len(x)))
        idx.append(np.full(len(x), f, np.int32))
        xs.append(x)
        dhs.append(dh)
        lncs.append(lnc)
        n_models.append(design.n_models[src])
        lo.append(design.smallest_b[src])
        hi.append(design.largest_b[src])
    data = CouplingData(families=tuple(f"sim-{i:02d}" for i in range(n_families)),
                        family_idx=np.concatenate(idx), log10_n=np.concatenate(xs),
                        delta_hs=np.concatenate(dhs), gamma12=np.concatenate(gs),
                        n_models=tuple(n_models), smallest_b=tuple(lo), largest_b=tuple(hi))
    return data, np.array(lncs)


@scoped_x64
def calibration_check(n_families: int = 20, seed: int = 0, *, n_datasets: int = 1,
                      chains: int | None = None, samples: int | None = None,
                      warmup: int | None = None, progress: bool = False) -> dict:
    """Coverage of the coupling model's Nc intervals on simulated families with known Nc.

    ``n_datasets`` independent datasets of ``n_families`` families each are simulated
    (:func:`simulate_coupling_data`, seeds ``seed``, ``seed+1``, ...) and fitted with the
    hierarchical model (sampler settings default to :data:`SAMPLER_DEFAULTS`). Returns the
    fraction of families whose true Nc lies inside the 95% (and 68%) equal-tailed
    interval, the per-family table (log10 N), divergences and the largest R-hat."""
    from .data import load_base_models

    if not (isinstance(n_families, (int, np.integer)) and n_families >= 2):
        raise PosteriorError(f"n_families must be a whole number >= 2, got {n_families!r}")
    dflt = SAMPLER_DEFAULTS["coupling"]
    chains = dflt["chains"] if chains is None else chains
    samples = dflt["samples"] if samples is None else samples
    chains, samples, warmup, seed = _check_counts(chains, samples, warmup, seed, "vectorized",
                                                  dflt["warmup"])
    design = coupling_data(load_base_models())
    rows, divergences, rhat_max = [], 0, 0.0
    t0 = time.perf_counter()
    for d in range(int(n_datasets)):
        data, truth = simulate_coupling_data(int(n_families), seed + d, design=design)
        post = sample_posterior(data, chains=chains, samples=samples, warmup=warmup,
                                seed=seed + d, progress=progress)
        divergences += post.divergences
        fam = post.family_rows()
        rhat_max = max(rhat_max, float(fam["rhat_max"].max()))
        q = np.quantile(post.idata.posterior["log10_nc"].values.reshape(-1, len(data.families)),
                        QUANTILES, axis=0)
        for i, name in enumerate(data.families):
            rows.append({"dataset": d, "family": name, "true_log10_nc": float(truth[i]),
                         "lo95": float(q[0, i]), "lo68": float(q[1, i]), "median": float(q[2, i]),
                         "hi68": float(q[3, i]), "hi95": float(q[4, i]),
                         "n_pairs": int(np.sum(data.family_idx == i)),
                         "covered95": bool(q[0, i] <= truth[i] <= q[4, i]),
                         "covered68": bool(q[1, i] <= truth[i] <= q[3, i])})
    table = pd.DataFrame(rows)
    return {"n_families": int(n_families), "n_datasets": int(n_datasets), "seed": seed,
            "coverage95": float(table["covered95"].mean()),
            "coverage68": float(table["covered68"].mean()),
            "n_covered95": int(table["covered95"].sum()), "n_total": int(len(table)),
            "divergences": divergences, "rhat_max": rhat_max,
            "runtime_s": round(time.perf_counter() - t0, 2),
            "truth": dict(CALIBRATION_TRUTH), "chains": chains, "samples": samples,
            "warmup": warmup, "table": table}
