"""Predictive intervals for a new family's larger models from the ODE-level posterior.

Given only a family's smallest model (its five scores and size), the ODE-level posterior
(:func:`capedyn.inference.sampling.sample_posterior` with ``model="ode"``) says what its
larger models will score: for each posterior draw of the population (μ, τ, σ_h, the
per-benchmark noise σ_b and, when sampled, the γ0 hyper-parameters) a new family is drawn
from it — log10 Nc ~ Normal(μ, τ), h_b ~ Normal(0, σ_h) —, its true starting scores from
the observed ones (observed + σ_b·ε, the model's ``noisy_start``), its trajectory solved
forward through the fixed universal field, and its scores observed with noise σ_b. The
draws come from ``numpyro.infer.Predictive`` on :func:`capedyn.inference.models.ode_model`
itself, so the predictive is the model's own and not a re-implementation. The interval at
level L runs between the (1 − L)/2 and (1 + L)/2 quantiles of the draws, clipped to the
score range [0, 100] percent.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import pandas as pd

from .._jax import scoped_x64
from ..data.tables import BENCHMARKS
from .models import PosteriorError

__all__ = ["predictive_draws", "predictive_interval"]

_HYPER_SITES = ("mu", "tau", "sigma_h", "sigma_score")
_GAMMA_SITES = ("log_gamma0_mu", "log_gamma0_sd")
_TARGET_BUCKET = 8  # targets padded to a multiple of this: one compiled program per bucket


def _levels(level) -> tuple[float, ...]:
    levels = tuple(float(v) for v in np.atleast_1d(np.asarray(level, dtype=float)))
    if not levels or any(not 0.0 < v < 1.0 for v in levels):
        raise PosteriorError(f"level must lie strictly between 0 and 1 (e.g. 0.9), got {level!r}")
    return levels


def _start(initial_row) -> tuple[float, np.ndarray]:
    """(size in billions, five scores in percent) of the starting model."""
    row = pd.Series(initial_row)
    missing = [c for c in ("params_b", *BENCHMARKS) if c not in row.index or pd.isna(row[c])]
    if missing:
        raise PosteriorError(f"the starting model needs params_b and all five scores; missing "
                             f"{missing} (give a complete row of the base-model table)")
    size = float(row["params_b"])
    scores = row[list(BENCHMARKS)].to_numpy(float)
    if not size > 0 or not np.all((scores >= 0) & (scores <= 100)):
        raise PosteriorError(f"the starting model needs a positive size (billions) and scores "
                             f"in [0, 100] percent; got params_b={size}, scores={scores.tolist()}")
    return size, scores


def _hyper_draws(posterior, n_draws: int | None, seed: int) -> dict[str, np.ndarray]:
    """The population draws (flattened over chains), thinned at random to ``n_draws``."""
    p = posterior.idata.posterior
    sites = _HYPER_SITES + (_GAMMA_SITES if bool(posterior.config.get("family_gamma")) else ())
    absent = [s for s in sites if s not in p]
    if absent:
        raise PosteriorError(f"the posterior lacks the population site(s) {absent}; a "
                             "predictive for a new family needs the hierarchical ODE model "
                             "sampled with its hyper-priors (not posterior_family's)")
    n = int(p["mu"].values.size)
    draws = {s: np.asarray(p[s].values, float).reshape(n, *p[s].values.shape[2:]) for s in sites}
    if n_draws is not None and int(n_draws) < n:
        keep = np.sort(np.random.default_rng(seed).choice(n, int(n_draws), replace=False))
        draws = {k: v[keep] for k, v in draws.items()}
    return draws


@functools.lru_cache(maxsize=8)
def _program(solver: str, steps: int, family_gamma: bool):
    """Jitted ``Predictive`` of one new family (data and draws are arguments)."""
    import jax
    from numpyro.infer import Predictive

    from .models import ode_model

    model = functools.partial(ode_model, solver=solver, steps=steps, family_gamma=family_gamma,
                              start_noise=True)

    def draw(rng_key, hyper, x0, z0, xs, mask, fld):
        pred = Predictive(model, posterior_samples=hyper,
                          return_sites=["scores", "solve_failures"])
        out = pred(rng_key, x0=x0, z0=z0, xs=xs, mask=mask, fld=fld, scores=None,
                   centred_h=np.zeros(1, bool))
        return out["scores"][:, 0], out["solve_failures"]

    return jax.jit(draw)


@scoped_x64
def predictive_draws(posterior, initial_row, params_b: Sequence[float], *,
                     n_draws: int | None = None, seed: int = 0) -> tuple[np.ndarray, int]:
    """Posterior predictive score draws (S, J, 5) in percent of a new family at the sizes
    ``params_b`` (J, billions, each above the starting model), starting from
    ``initial_row`` (its smallest model), and the number of draws dropped because their
    trajectory failed to solve. See the module docstring."""
    import jax
    import jax.numpy as jnp

    from ..data.tables import log10_params
    from ..dynamics.state import to_state

    if getattr(posterior, "model", None) != "ode":
        raise PosteriorError("predictive intervals need the ODE-level posterior "
                             "(sample_posterior(model='ode')); this one is "
                             f"{getattr(posterior, 'model', type(posterior).__name__)!r}")
    if posterior.field_ is None:
        raise PosteriorError("this ODE-level posterior has no field attached (loaded from "
                             "netCDF); rerun sample_posterior(model='ode')")
    size, scores = _start(initial_row)
    sizes = np.atleast_1d(np.asarray(params_b, dtype=float))
    if sizes.size == 0 or not np.all(np.isfinite(sizes)) or np.any(sizes <= size):
        raise PosteriorError(f"params_b must be sizes in billions above the starting model's "
                             f"{size:g}B; got {sizes.tolist()}")
    order = np.argsort(sizes, kind="stable")
    j = sizes.size
    m = -(-j // _TARGET_BUCKET) * _TARGET_BUCKET
    xs = np.concatenate([log10_params(sizes[order]), np.full(m - j, log10_params(sizes.max()))])
    hyper = _hyper_draws(posterior, n_draws, seed)
    cfg = posterior.config
    program = _program(cfg.get("solver") or "fixed", int(cfg.get("ode_steps") or 3),
                       bool(cfg.get("family_gamma")))
    draws, failed = program(jax.random.PRNGKey(int(seed)), {k: jnp.asarray(v) for k, v in hyper.items()},
                            jnp.asarray([log10_params(size)]), jnp.asarray(to_state(scores[None])),
                            jnp.asarray(xs[None]), jnp.ones((1, m), bool), posterior.field_)
    draws, ok = np.asarray(draws)[:, :j], np.asarray(failed) == 0
    out = np.empty_like(draws)
    out[:, order] = draws  # back to the caller's order
    return out[ok], int((~ok).sum())


def predictive_interval(posterior, initial_row, params_b: Sequence[float], level=0.9, *,
                        n_draws: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Posterior predictive intervals of a new family's scores at ``params_b`` (billions),
    given only its smallest model ``initial_row`` (a row of the base-model table: size and
    all five scores).

    ``posterior``: an ODE-level :class:`~capedyn.NcPosterior` of other families;
    ``level``: nominal coverage, a number in (0, 1) or several; ``n_draws``: population
    draws used (default all of them); ``seed`` for the new family's draws. Returns one row
    per (size, benchmark): ``params_b``, ``benchmark``, ``median`` and ``lower``/``upper``
    (percent, clipped to [0, 100]) for one level, or ``lower_50``/``upper_50``, ... for
    several, with ``level`` and ``n_draws`` (draws whose trajectory solved)."""
    levels = _levels(level)
    draws, _ = predictive_draws(posterior, initial_row, params_b, n_draws=n_draws, seed=seed)
    if len(draws) == 0:
        raise PosteriorError("no predictive draw solved; the field or the starting model is "
                             "outside what the ODE can integrate")
    sizes = np.atleast_1d(np.asarray(params_b, dtype=float))
    rows = []
    for i, size in enumerate(sizes):
        for b, bench in enumerate(BENCHMARKS):
            d = draws[:, i, b]
            row = {"params_b": float(size), "benchmark": bench, "median": float(np.median(d))}
            for lv in levels:
                lo, hi = np.quantile(d, [(1.0 - lv) / 2.0, (1.0 + lv) / 2.0])
                suffix = "" if len(levels) == 1 else f"_{round(100 * lv):d}"
                row[f"lower{suffix}"] = float(np.clip(lo, 0.0, 100.0))
                row[f"upper{suffix}"] = float(np.clip(hi, 0.0, 100.0))
            rows.append(row)
    table = pd.DataFrame(rows)
    table["level"] = levels[0] if len(levels) == 1 else ",".join(f"{v:g}" for v in levels)
    table["n_draws"] = len(draws)
    return table
