"""The NumPyro models of the Nc posteriors, plain functions of data arrays, and the data
they take: running-coupling pairs (``coupling_model``) and score trajectories solved
through the coupling ODE (``ode_model``). Inference is in :mod:`capedyn.inference.sampling`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .._errors import CapedynError
from ..data.tables import BENCHMARKS

_MU_PRIOR = (9.5, 1.0)          # log10 N: centre of the tested sizes, one decade sd
_TAU_PRIOR = 1.0                # decades
_TAU_PRIOR_ODE = 0.5            # decades (ODE-level model, see ode_model)
_SOLVE_FAIL_PENALTY = -1.0e4    # finite: a failed solve is rejected, not a NaN gradient
_HYPER_COUPLING = ("mu", "tau", "log_gamma0_mu", "log_gamma0_sd", "sigma_gamma", "sigma_score")
_POSITIVE = {"tau", "log_gamma0_sd", "sigma_gamma", "sigma_score"}


POSTERIOR_PAPER_REFERENCE: dict[str, object] = {
    "_note": "The CAPE paper's own Nc bootstrap (10^4 resamples of 14 web-trained models: "
             "Pythia, Llama-1, Llama-2), from its own data version. Shown beside capedyn's "
             "posteriors for comparison; never used in a computation.",
    "nc_median_b": 3.5, "nc_ci68_b": (3.2, 4.3), "nc_ci95_b": (2.9, 13.4),
    "family_nc_b": {"OPT": 0.12, "Pythia": 3.5, "Falcon": 7.0},
}
"""The papers' Nc values shown beside the posteriors (reference only)."""


class PosteriorError(CapedynError, ValueError):
    """Bad sampler settings or data that cannot inform a posterior."""




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
    from ..coupling.running import running_coupling, usable_pairs
    from ..data.tables import select_families

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
    from ..dynamics.state import to_state
    from ..data.tables import select_families
    from ..dynamics.trajectory import trajectories

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


def pad_pairs(data: CouplingData, n_pairs: int) -> CouplingData:
    """``data`` with its pairs padded to ``n_pairs``.

    Padding pairs belong to no family (``family_idx`` −1, so :attr:`CouplingData.n_obs` is
    unchanged) and hold harmless finite values (log10 N 9, ΔHS 1, γ12 0); the sampler masks
    them out of the likelihood (:func:`pair_mask`). Padded, datasets of different pair counts share one
    compiled sampler (:mod:`capedyn.inference.compiled_nuts`)."""
    n = len(data.family_idx)
    if n_pairs < n:
        raise PosteriorError(f"cannot pad {n} pairs down to {n_pairs}")
    k = n_pairs - n

    def grow(a, fill, dtype):
        return np.concatenate([np.asarray(a, dtype), np.full(k, fill, dtype)])

    padded = CouplingData(
        families=data.families, family_idx=grow(data.family_idx, -1, np.int32),
        log10_n=grow(data.log10_n, 9.0, float), delta_hs=grow(data.delta_hs, 1.0, float),
        gamma12=grow(data.gamma12, 0.0, float), n_models=data.n_models,
        smallest_b=data.smallest_b, largest_b=data.largest_b)
    return padded


def pair_mask(data: CouplingData) -> np.ndarray | None:
    """(P,) bool of the real pairs of ``data``, or None when none is padding."""
    real = np.asarray(data.family_idx) >= 0
    return None if real.all() else real


def pair_bucket(n: int, step: int = 16) -> int:
    """The padded length of ``n`` pairs: the next multiple of ``step`` (at least ``step``),
    so nearby pair counts share one compiled sampler."""
    return max(step, -(-int(n) // step) * step)


def pad_models(data: TrajectoryData, n_models: int) -> TrajectoryData:
    """``data`` with every family padded to ``n_models`` models the way
    :func:`trajectory_data` pads (repeating the last model, masked out), so tables with
    different largest families share one compiled sampler."""
    m = data.xs.shape[1]
    if n_models < m:
        raise PosteriorError(f"cannot pad {m} models down to {n_models}")
    k = n_models - m
    return TrajectoryData(
        families=data.families, x0=data.x0, z0=data.z0,
        xs=np.concatenate([data.xs, np.repeat(data.xs[:, -1:], k, axis=1)], axis=1),
        scores=np.concatenate([data.scores, np.repeat(data.scores[:, -1:], k, axis=1)], axis=1),
        mask=np.concatenate([data.mask, np.zeros((data.mask.shape[0], k), bool)], axis=1),
        n_models=data.n_models, smallest_b=data.smallest_b, largest_b=data.largest_b)


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
                   hyper_prior=None, pair_mask=None):
    """Hierarchical running-coupling model (see the module docstring).

    ``family_idx`` (P,) int, ``log10_n`` (P,) log10 N in parameters, ``delta_hs`` (P,)
    HellaSwag points, ``gamma12`` (P,) TQA points per HS point (None: prior predictive).
    ``hyper_prior``: optional (mean (6,), scale_tril (6, 6)) of the unconstrained
    hyper-parameters (μ, log τ, m_γ, log s_γ, log σ_γ, log σ_s), replacing the default
    hyper-priors; :func:`posterior_family` passes a fitted population's. ``pair_mask``
    (P,) bool: which pairs count (False: padding, see :func:`pad_pairs`); None: all.
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
        if pair_mask is None:
            numpyro.sample("gamma12", dist.Normal(pred, scale), obs=gamma12)
        else:
            with numpyro.handlers.mask(mask=jnp.asarray(pair_mask)):
                numpyro.sample("gamma12", dist.Normal(pred, scale), obs=gamma12)


def solve_families(fld, z0, x0, xs, log10_nc, h, *, gamma0=None, solver: str = "fixed",
                   steps: int = 5):
    """Latent states (F, M, 5) at ``xs`` for every family and a (F,) success flag, through
    :func:`capedyn.dynamics.field.solve_unchecked` (the one solve path of capedyn).

    ``gamma0``: optional (F,) coupling strength of each family (TQA points per HS point per
    decade), replacing the field's one value; None keeps the field's.
    ``solver="fixed"``: Tsit5 with ``steps`` equal steps per family (``fixed_steps``);
    ``"adaptive"``: its PID controller (rtol 1e-6, atol 1e-8, ≤ 1024 steps)."""
    import equinox as eqx
    import jax.numpy as jnp

    from ..dynamics.field import FamilyParams, solve_unchecked

    fams = FamilyParams(log10_nc=log10_nc, h=h)
    if solver == "fixed":
        kw = dict(fixed_steps=int(steps))
    elif solver == "adaptive":
        kw = dict(rtol=1e-6, atol=1e-8, max_steps=1024)
    else:
        raise PosteriorError(f"solver must be 'fixed' or 'adaptive', got {solver!r}")
    g = jnp.broadcast_to(fld.gamma0, jnp.shape(log10_nc)) if gamma0 is None else gamma0

    def one(g1, a, b, c, d):
        return solve_unchecked(fld.with_gamma0(g1), a, b, c, d, **kw)

    return eqx.filter_vmap(one)(g, z0, x0, xs, fams)


CENTRED_H_MIN_OBS = 3
"""Families with at least this many scored models (after the initial one) get a centred
source h in the ODE-level model; sparser families a non-centred one."""


def centred_sources(mask) -> np.ndarray:
    """(F,) bool: which families get a centred source h (``CENTRED_H_MIN_OBS`` or more scored
    models; see :func:`ode_model`)."""
    return np.asarray(mask).sum(axis=1) >= CENTRED_H_MIN_OBS


def ode_model(x0, z0, xs, mask, fld, scores=None, hyper=None, solver: str = "fixed",
              steps: int = 3, centred_h=None, family_gamma: bool = False,
              noisy_start: bool = True, start_noise: bool | None = None):
    """Hierarchical ODE-level model (see the module docstring).

    ``x0`` (F,) log10 N of each family's smallest model, ``z0`` (F, 5) its latent state
    (observed), ``xs`` (F, M) log10 N of the family's models, ``mask`` (F, M) which scores
    count, ``fld`` the fitted :class:`capedyn.dynamics.field.CouplingField` (its universal part held
    fixed), ``scores`` (F, M, 5) percent (None: prior predictive). ``hyper``: optional dict
    of fixed population values ``mu``, ``tau``, ``sigma_h`` (latent units per decade),
    ``sigma_score`` (5,) points and, with ``family_gamma``, ``log_gamma0_mu`` and
    ``log_gamma0_sd`` — the frozen population of :func:`posterior_family`.

    Family parameters: log10 Nc_f and the source h_f (5,); with ``family_gamma`` also the
    coupling strength γ0_f of γ12 = γ0_f·(log10 N − log10 Nc_f), log-normal across families
    with the coupling model's hyper-priors (log γ0_f ~ Normal(m, s), m ~ Normal(log 0.5, 1),
    s ~ HalfNormal(1)); by default every family takes the field's γ0. Measured on the shipped
    data (4 chains x 500 draws), γ0_f hardly changed how many of the 6 families whose pairs
    turn from tax to bonus have their ODE-implied Nc inside the coupling-level 68% interval
    (2 → 2 with the start exact, 1 → 2 with it noisy), made sampling 7 times slower
    (411 s against 58 s; 566 s against 84 s) and left divergences (23-41) and R-hat up to
    1.07 (Phi's γ0_f runs to ~12 on two models), so it is an option, not the default.

    ``noisy_start`` (default; used only when ``scores`` are given): the smallest model's
    scores are measurements too, with the same per-benchmark noise σ_b. Its true scores
    s0_f = observed + σ_b·ε_f, ε_f ~ Normal(0, 1) — a flat prior on the true start
    conditioned on the observation — start the trajectory. Treating the start as exact made
    the implied Nc intervals too narrow in simulation. ``start_noise`` overrides when that
    noise is drawn (default: with ``noisy_start`` and observed ``scores``); the posterior
    predictive of a new family (:mod:`capedyn.inference.posterior_predictive`) sets it
    True with ``scores=None``.

    Parametrisation: log10 Nc_f and γ0_f non-centred. h_f is sampled as ``h_raw``: centred
    (h = h_raw ~ Normal(0, σ_h)) for a family with ≥ ``CENTRED_H_MIN_OBS`` scored models,
    whose trajectory pins its source down (non-centring it would tie σ_h to every z and
    make a funnel), and non-centred (h = σ_h·h_raw, h_raw ~ Normal(0, 1)) for sparser
    families, which the prior dominates. ``centred_h``: a (F,) bool array overriding that.
    (Centring log10 Nc_f for the same families was tried on the shipped table: 264
    divergences and R-hat 1.08 at seed 0, a funnel in τ; it stays non-centred.)

    Priors: μ ~ Normal(9.5, 1), τ ~ HalfNormal(0.5) decades (tighter than the coupling
    model's HalfNormal(1): under HalfNormal(1) its tail (τ ≈ 4, family Nc spread over ±8
    decades) drove the running coupling to extreme values where every divergence of the
    sampler occurred), σ_h ~ HalfNormal(0.5) latent units per decade, σ_b ~ HalfNormal(3)
    points.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from ..dynamics.state import from_state, to_state

    n_f, n_b = xs.shape[0], len(BENCHMARKS)
    if hyper is None:
        mu = numpyro.sample("mu", dist.Normal(*_MU_PRIOR))
        tau = numpyro.sample("tau", dist.HalfNormal(_TAU_PRIOR_ODE))
        sigma_h = numpyro.sample("sigma_h", dist.HalfNormal(0.5))
        if family_gamma:
            g_mu = numpyro.sample("log_gamma0_mu", dist.Normal(math.log(0.5), 1.0))
            g_sd = numpyro.sample("log_gamma0_sd", dist.HalfNormal(1.0))
        with numpyro.plate("benchmark", n_b):
            sigma_score = numpyro.sample("sigma_score", dist.HalfNormal(3.0))
    else:
        mu, tau, sigma_h = (jnp.asarray(hyper[k]) for k in ("mu", "tau", "sigma_h"))
        sigma_score = jnp.asarray(hyper["sigma_score"])
        if family_gamma:
            g_mu, g_sd = (jnp.asarray(hyper[k]) for k in ("log_gamma0_mu", "log_gamma0_sd"))
    if centred_h is None:
        centred_h = centred_sources(mask)
    centred = jnp.asarray(centred_h, bool)[:, None]  # an argument: traced in a compiled sampler
    if start_noise is None:  # the start's noise is sampled only when scores are observed
        start_noise = noisy_start and scores is not None
    with numpyro.plate("family", n_f):
        z_nc = numpyro.sample("log10_nc_z", dist.Normal(0.0, 1.0))
        scale = jnp.broadcast_to(jnp.where(centred, sigma_h, 1.0), (n_f, n_b))
        h_raw = numpyro.sample("h_raw", dist.Normal(0.0, scale).to_event(1))
        if family_gamma:
            z_g = numpyro.sample("gamma0_z", dist.Normal(0.0, 1.0))
        if start_noise:
            eps = numpyro.sample("start_z", dist.Normal(jnp.zeros(n_b), 1.0).to_event(1))
    log10_nc = numpyro.deterministic("log10_nc", mu + tau * z_nc)
    h = numpyro.deterministic("h", jnp.where(centred, h_raw, sigma_h * h_raw))
    gamma0 = numpyro.deterministic("gamma0", jnp.exp(g_mu + g_sd * z_g)) if family_gamma else None
    z_start = jnp.asarray(z0)
    if start_noise:
        start = numpyro.deterministic("start_scores", from_state(z_start) + sigma_score * eps)
        z_start = to_state(start)
    zs, ok = solve_families(fld, z_start, jnp.asarray(x0), jnp.asarray(xs), log10_nc, h,
                            gamma0=gamma0, solver=solver, steps=steps)
    # A failed solve must not leak NaN into the gradient: predict from a finite stand-in
    # and reject the point through a large finite penalty instead.
    zs = jnp.where(ok[:, None, None], jnp.clip(zs, -40.0, 40.0), z_start[:, None, :])
    numpyro.deterministic("solve_failures", jnp.sum(~ok))
    numpyro.factor("solve_guard", jnp.where(jnp.all(ok), 0.0, _SOLVE_FAIL_PENALTY))
    pred = from_state(zs)
    with numpyro.handlers.mask(mask=jnp.asarray(mask)[..., None]):
        numpyro.sample("scores", dist.Normal(pred, sigma_score), obs=scores)
