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
    (:mod:`capedyn.dynamics.field`)::

        scores_{f,j,b} ~ Normal(from_state(z_f(x_j))_b, σ_b)
        log10 Nc_f ~ Normal(μ, τ),   h_f,b ~ Normal(0, σ_h)
        z_f(x_0) = to_state(s0_f),  s0_f = observed_{f,0} + σ_b·ε_f,  ε_f ~ Normal(0, 1)

    The smallest model, where a family's trajectory starts, is a measurement like the
    others: its true scores s0_f are sampled (a flat prior conditioned on the observation,
    ``noisy_start=True``, the default). Starting from the observed scores as if exact made
    the implied-Nc intervals too narrow in simulation. ``family_gamma=True`` adds a
    coupling strength γ0_f per family (off by default; see :func:`ode_model`).

    The likelihood is on the observed scores, not on latent states: benchmark noise and
    misfit are in points, while the logit state stretches near-floor noise (an MMLU of
    25 ± 1 spans several latent units) and would let the least informative models dominate.
    The universal part of the field (``coef``, ``gamma0``) is held at its point fit
    (empirical Bayes) and sampling it is not offered: its 106 coefficients, on top of 78
    family parameters, face 215 scored (model, benchmark) values from 13 families of 2-8
    models, so the posterior would be a long ridge of coef/h/Nc trade-offs (which the fit
    resolves with its penalties) and NUTS would need far longer trajectories, while a
    single ODE-level run already takes minutes.
    The solve inside the model is :func:`capedyn.dynamics.field.solve_unchecked` — the same code path
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
    with the population as prior. :func:`capedyn.inference.coupling_calibration.calibration_check` simulates families with known
    Nc from the coupling model and counts how often the 95% intervals cover the truth.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._jax import scoped_x64
from ..data.tables import BENCHMARKS, DataError
from .models import (
    CENTRED_H_MIN_OBS, _HYPER_COUPLING, _MU_PRIOR, _POSITIVE, CouplingData, PosteriorError, TrajectoryData, centred_sources, coupling_data, coupling_model, ode_model, pad_pairs, pair_bucket, pair_mask, solve_families, trajectory_data,
)
from .result import POSTERIOR_PAPER_REFERENCE, NcPosterior, _az, _build_table, load_posterior

__all__ = [
    "POSTERIOR_PAPER_REFERENCE", "POSTERIOR_MODELS", "NcPosterior", "CouplingData",
    "TrajectoryData", "coupling_data", "trajectory_data", "coupling_model", "ode_model",
    "sample_posterior", "posterior_family", "SAMPLER_DEFAULTS", "solve_families", "load_posterior",
]

POSTERIOR_MODELS: tuple[str, ...] = ("coupling", "ode")
CHAIN_METHODS = ("vectorized", "sequential", "parallel")
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {
    # Families whose γ12 never turns positive (Pythia, OPT, BLOOM) have log10 Nc posteriors
    # with long upper tails (small γ0, large Nc) that chains explore slowly: 4 x 5000 draws
    # at target 0.95 keep every R-hat <= 1.01 with no divergences (seeds 0-5 measured);
    # 4 x 2000 gave R-hat up to 1.03 on some seeds. A dense metric did not help (it cannot
    # follow the curved γ0-Nc ridge) and had a divergent seed. Nor did sampling each
    # family's γ12 at the mean log10 N of its pairs in place of log10 Nc (the prior carried
    # over with its Jacobian; same posterior): 2 x 1000 draws took 69 leapfrog steps per
    # draw against 354 but had 55 divergent transitions against 0; applied to the one- and
    # two-pair families only, 84 steps and 68 divergences; to the others only, 301 and 7.
    "coupling": {"chains": 4, "samples": 5000, "warmup": 1500, "target_accept": 0.95,
                 "dense_mass": False},
    # Each gradient integrates every family (fixed 3-step Tsit5, see the module docstring).
    # Measured on the shipped all_families fit, 4 vectorised chains, 2 shared cores: with
    # h non-centred everywhere warm-up crawled (deep trees); centred h, 4 x 500 (+500) at
    # 0.95: R-hat 1.010, 4 divergences; every divergence sat in tau's far tail (tau ~ 4)
    # under a HalfNormal(1) prior. With the ODE model's HalfNormal(0.5) tau prior and
    # sparse families' h non-centred: R-hat max 1.008, bulk ESS min 576 (families >= 604),
    # 0 divergences, 71 s of sampling (76 s wall for `capedyn posterior --model ode`).
    # The noisy start (65 more parameters): R-hat max 1.011, bulk ESS min 565, 0
    # divergences, 84 s of sampling (58 s with the start exact, same machine and day).
    # A dense metric, same fit and seed, back to back: 248 leapfrog steps per draw against
    # 81, 2 divergences, 441 s of sampling against 112 s.
    "ode": {"chains": 4, "samples": 500, "warmup": 500, "target_accept": 0.95,
            "dense_mass": False, "ode_steps": 3},
}
"""Default NUTS settings per model (see the benchmark in the report/docs)."""
_MAX_CHAINS, _MAX_SAMPLES = 64, 1_000_000


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
              chain_method, progress, init_values=None, dense_mass=False, static=None):
    """NUTS on ``model``: vectorised chains through the one compiled program per model
    shape of :mod:`capedyn.inference.compiled_nuts` (``kwargs`` the data, traced;
    ``static`` the model's compile-time settings); 'sequential'/'parallel' chains through
    ``numpyro.infer.MCMC`` with the data closed over. Returns a
    :class:`~capedyn.inference.compiled_nuts.NutsDraws`."""
    import jax
    from numpyro.infer import MCMC, NUTS, init_to_median, init_to_value

    from .compiled_nuts import NutsDraws, run_nuts

    static = dict(static or {})
    if chain_method == "vectorized":
        from .._progress import Progress

        # on several devices the coupling-level sampler is one program compiled once for
        # all of them; the ODE-level one, whose solve shard_map cannot take, one per device
        one_program = model is coupling_model

        with Progress(1, f"NUTS {chains} chains x {warmup}+{samples} draws",
                      enabled=progress) as bar:
            out = run_nuts(model, kwargs, static=static, chains=chains, samples=samples,
                           warmup=warmup, seed=seed, target_accept=target_accept,
                           dense_mass=dense_mass, init_values=init_values,
                           one_program=one_program)
            bar.update(1)
        return out
    init = init_to_value(values=init_values) if init_values else init_to_median()
    kernel = NUTS(model, target_accept_prob=target_accept, init_strategy=init,
                  dense_mass=dense_mass)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=chains,
                chain_method=chain_method, progress_bar=bool(progress))
    mcmc.run(jax.random.PRNGKey(seed), extra_fields=("diverging", "num_steps"),
             **kwargs, **static)
    jax.block_until_ready(mcmc.get_samples())  # JAX dispatches asynchronously: time it all
    return NutsDraws(
        samples={k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()},
        extra={k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()})


def _chain_note(chains: int, chain_method: str) -> list[str]:
    """Say so when 'parallel' cannot run in parallel (NumPyro then runs chains in turn)."""
    import jax

    if chains == 1:
        return ["one chain: R-hat is undefined (it compares chains), so convergence is not "
                "checked; run two or more chains for that"]
    n_dev = jax.local_device_count()
    if chain_method == "parallel" and n_dev < chains:
        return [f"chain_method='parallel' ran the {chains} chains sequentially: JAX sees "
                f"{n_dev} device(s); call numpyro.set_host_device_count({chains}) before JAX "
                "starts (the CLI does this for --chain-method parallel)"]
    return []


def _to_idata(draws, families, model: str):
    """ArviZ InferenceData of a run (``draws`` a :class:`NutsDraws`): the posterior with
    family/benchmark coordinates and sample_stats named as ``az.from_numpyro`` names them
    (``diverging``, ``n_steps``, ``tree_depth``)."""
    az = _az()
    fam_dims = ["log10_nc", "log10_nc_z", "gamma0", "gamma0_z"]
    dims = {k: ["family"] for k in fam_dims}
    coords = {"family": list(families)}
    if model == "ode":
        dims.update({k: ["family", "benchmark"] for k in ("h", "h_raw", "start_z", "start_scores")})
        dims["sigma_score"] = ["benchmark"]
        coords["benchmark"] = list(BENCHMARKS)
    stats = {"diverging": draws.extra["diverging"], "n_steps": draws.extra["num_steps"],
             "tree_depth": np.log2(draws.extra["num_steps"]).astype(int) + 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.from_dict(posterior=dict(draws.samples), sample_stats=stats, coords=coords,
                            dims={k: v for k, v in dims.items() if k in draws.samples})


def _add_new_family(idata, seed: int) -> None:
    """Posterior predictive log10 Nc of an unseen family, μ + τ·ε, as a posterior variable."""
    post = idata.posterior
    if "mu" not in post or "tau" not in post:
        return
    rng = np.random.default_rng(seed + 7919)
    eps = rng.standard_normal(post["mu"].shape)
    post["log10_nc_new"] = post["mu"] + post["tau"] * eps


def _resolve_fit(fit):
    """(field, {family: FamilyParams}, population log10 Nc) from ``fit``: a fitted
    :class:`capedyn.CouplingODE`, a bare :class:`capedyn.dynamics.field.CouplingField`, a saved fit
    folder or a shipped fit name; None takes the shipped ``all_families`` fit."""
    from ..models.coupling_ode import CouplingODE
    from ..models.persistence import load_fit, shipped_fits
    from ..dynamics.field import CouplingField

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
                     solver: str = "fixed", ode_steps: int | None = None,
                     family_gamma: bool = False, noisy_start: bool = True) -> NcPosterior:
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
    values start the chains), a :class:`capedyn.dynamics.field.CouplingField`, a saved fit folder or a
    shipped fit name; default the shipped ``all_families`` fit. ``family_gamma`` and
    ``noisy_start`` (ODE model): each family's own coupling strength γ0_f (default off),
    and the smallest model's scores observed with noise (default on); see :func:`ode_model`.

    Returns an :class:`NcPosterior`; its ``table`` has, per family and for the population,
    the Nc posterior median and equal-tailed 68%/95% intervals in billions of parameters,
    the largest R-hat and smallest bulk ESS over the reported quantities (log10 Nc and γ0,
    or log10 Nc and h), and ``divergences`` counts divergent transitions after warm-up.
    """
    from ..data.tables import load_base_models

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
                      gamma12=data.gamma12, pair_mask=pair_mask(data))
        mcmc = _run_nuts(coupling_model, kwargs, chains=chains, samples=samples, warmup=warmup,
                         seed=seed, target_accept=ta, chain_method=chain_method,
                         progress=progress, dense_mass=dense,
                         static=dict(n_families=len(data.families)))
    else:
        kwargs = dict(x0=data.x0, z0=data.z0, xs=data.xs, mask=data.mask, fld=fld,
                      scores=data.scores, centred_h=centred_sources(data.mask))
        init = _ode_init(fitted, mu0, data, float(fld.gamma0), bool(family_gamma),
                         bool(noisy_start))
        mcmc = _run_nuts(ode_model, kwargs, chains=chains, samples=samples, warmup=warmup,
                         seed=seed, target_accept=ta, chain_method=chain_method,
                         progress=progress, init_values=init, dense_mass=dense,
                         static=dict(solver=solver, steps=steps, family_gamma=bool(family_gamma),
                                     noisy_start=bool(noisy_start)))
    runtime = time.perf_counter() - t0
    return _result(mcmc, model, data, runtime, seed, notes, fld, config=dict(
        chains=chains, samples=samples, warmup=warmup, seed=seed, target_accept=ta,
        chain_method=chain_method, dense_mass=dense, solver=solver if model == "ode" else None,
        ode_steps=steps if model == "ode" else None,
        family_gamma=bool(family_gamma) if model == "ode" else None,
        noisy_start=bool(noisy_start) if model == "ode" else None))


def _ode_init(fitted: dict, mu0: float, data: TrajectoryData, gamma0: float,
              family_gamma: bool, noisy_start: bool) -> dict:
    """Start every chain at the point fit (sampler coordinates; families the fit does
    not know at its population mean, h = 0; every γ0_f at the field's γ0, the start at
    its observation), hyper-parameters at moderate values: the fit is the MAP of a closely
    related penalised objective."""
    import jax.numpy as jnp

    lnc = np.array([float(fitted[f].log10_nc) if f in fitted else mu0 for f in data.families])
    h = np.array([np.asarray(fitted[f].h) if f in fitted else np.zeros(len(BENCHMARKS))
                  for f in data.families])
    mu = float(np.clip(np.mean(lnc), 7.0, 12.0))
    tau = float(max(np.std(lnc), 0.2))
    sigma_h = float(max(np.std(h), 0.05))
    centred = np.asarray(data.mask).sum(axis=1) >= CENTRED_H_MIN_OBS
    init = {"mu": jnp.asarray(mu), "tau": jnp.asarray(tau), "sigma_h": jnp.asarray(sigma_h),
            "sigma_score": jnp.full(len(BENCHMARKS), 2.0),
            "log10_nc_z": jnp.asarray(np.clip((lnc - mu) / tau, -3, 3)),
            "h_raw": jnp.asarray(np.where(centred[:, None], np.clip(h, -3 * sigma_h, 3 * sigma_h),
                                          np.clip(h / sigma_h, -3, 3)))}
    n_f = len(data.families)
    if family_gamma:
        init.update(log_gamma0_mu=jnp.asarray(np.log(max(gamma0, 0.02))),
                    log_gamma0_sd=jnp.asarray(0.5), gamma0_z=jnp.zeros(n_f))
    if noisy_start:
        init["start_z"] = jnp.zeros((n_f, len(BENCHMARKS)))
    return init


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
    σ_h, σ_b and, when the population had them, the γ0_f hyper-parameters at their
    posterior medians; the universal field at its point fit) is frozen and only the
    family's log10 Nc and h (and γ0_f, and its true start scores when the population was
    sampled with ``noisy_start``) are sampled.
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
        if len(data.gamma12):  # padded: every new family of similar size shares one sampler
            data = pad_pairs(data, pair_bucket(len(data.gamma12), 8))
        kwargs = dict(family_idx=data.family_idx, log10_n=data.log10_n, delta_hs=data.delta_hs,
                      gamma12=data.gamma12 if len(data.gamma12) else None,
                      hyper_prior=_coupling_hyper_prior(fit), pair_mask=pair_mask(data))
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
                         chain_method=chain_method, progress=progress,
                         static=dict(n_families=1))
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
        family_gamma = bool(fit.config.get("family_gamma"))
        if family_gamma:
            hyper.update({k: float(np.median(p[k].values)) for k in ("log_gamma0_mu", "log_gamma0_sd")})
        fld = fit.field_
        kwargs = dict(x0=data.x0, z0=data.z0, xs=data.xs, mask=data.mask, fld=fld,
                      scores=data.scores, centred_h=centred_sources(data.mask),
                      hyper={k: np.asarray(v, float) for k, v in hyper.items()})
        mcmc = _run_nuts(ode_model, kwargs, chains=chains, samples=samples, warmup=warmup,
                         seed=seed, target_accept=float(fit.config.get("target_accept", 0.8)),
                         chain_method=chain_method, progress=progress,
                         static=dict(family_gamma=family_gamma,
                                     noisy_start=bool(fit.config.get("noisy_start")),
                                     solver=fit.config.get("solver") or "fixed",
                                     steps=int(fit.config.get("ode_steps") or dflt["ode_steps"])))
    runtime = time.perf_counter() - t0
    prior_only = fit.model == "coupling" and not len(data.gamma12)
    out = _result(mcmc, fit.model, data, runtime, seed, notes, fld, config=dict(
        chains=chains, samples=samples, warmup=warmup, seed=seed, new_family=name,
        chain_method=chain_method, target_accept=fit.config.get("target_accept"),
        prior_only=prior_only))
    return out


def _new_family_pairs(df_new: pd.DataFrame, name: str) -> CouplingData:
    from ..coupling.running import running_coupling, usable_pairs

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


