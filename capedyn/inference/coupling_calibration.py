"""Calibration of the coupling-level posterior: families simulated with known Nc, and how
often the 95% intervals cover the truth."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from .._jax import scoped_x64
from .sampling import SAMPLER_DEFAULTS, _check_counts, sample_posterior
from .models import (
    _HYPER_COUPLING, CouplingData, PosteriorError, coupling_data, coupling_model, pad_pairs,
    pair_bucket,
)
from .result import _QNAMES, _summary


# --------------------------------------------------------------------------- calibration

CALIBRATION_TRUTH = {"mu": 9.5, "tau": 0.6, "log_gamma0_mu": math.log(0.4),
                     "log_gamma0_sd": 0.8, "sigma_gamma": 0.15, "sigma_score": 1.0}
"""Population used to simulate calibration data (inside the prior's typical range, close
to the shipped data's posterior)."""


def _design_sources(n_families: int, n_design: int, rng: np.random.Generator) -> np.ndarray:
    """Which real family lends its design to each simulated family: the real families in
    a random order, a fresh order each time all have been used (every design appears
    ⌊n/F⌋ or ⌈n/F⌉ times, so the simulation covers the real designs evenly)."""
    rounds = -(-n_families // n_design)
    return np.concatenate([rng.permutation(n_design) for _ in range(rounds)])[:n_families]


@scoped_x64
def simulate_coupling_data(n_families: int, seed: int, truth: dict | None = None,
                           design: CouplingData | None = None) -> tuple[CouplingData, np.ndarray]:
    """Families simulated from :func:`capedyn.inference.models.coupling_model` with known
    log10 Nc, through ``numpyro.infer.Predictive`` with the population hyper-parameters
    fixed to ``truth`` (default :data:`CALIBRATION_TRUTH`; keys ``mu``, ``tau``,
    ``log_gamma0_mu``, ``log_gamma0_sd``, ``sigma_gamma``, ``sigma_score``).

    Each simulated family takes the pair design (sizes and HellaSwag steps) of a family of
    ``design`` (default: the shipped table's), the real families taken in a random order
    (:func:`numpy.random.default_rng` seeded with ``seed``), so the simulation has the real
    data's spacing and conditioning; the family values and γ12 are drawn by the model from
    ``jax.random.PRNGKey(seed)``. Returns (data, true log10 Nc per family)."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import Predictive

    from ..data.tables import load_base_models

    truth = {**CALIBRATION_TRUTH, **(truth or {})}
    unknown = sorted(set(truth) - set(_HYPER_COUPLING))
    if unknown:
        raise PosteriorError(f"unknown population parameter(s) {unknown}; the coupling model's "
                             f"are {list(_HYPER_COUPLING)}")
    design = design or coupling_data(load_base_models())
    src = _design_sources(int(n_families), len(design.families), np.random.default_rng(seed))
    sel = [np.flatnonzero(design.family_idx == s) for s in src]
    family_idx = np.concatenate([np.full(len(i), f, np.int32) for f, i in enumerate(sel)])
    log10_n = np.concatenate([design.log10_n[i] for i in sel])
    delta_hs = np.concatenate([design.delta_hs[i] for i in sel])
    fixed = {k: jnp.asarray([float(truth[k])]) for k in _HYPER_COUPLING}
    draw = Predictive(coupling_model, posterior_samples=fixed,
                      return_sites=["log10_nc", "gamma12"])(
        jax.random.PRNGKey(int(seed)), family_idx, log10_n, delta_hs, int(n_families))
    data = CouplingData(families=tuple(f"sim-{i:02d}" for i in range(int(n_families))),
                        family_idx=family_idx, log10_n=log10_n, delta_hs=delta_hs,
                        gamma12=np.asarray(draw["gamma12"][0], float),
                        n_models=tuple(design.n_models[s] for s in src),
                        smallest_b=tuple(design.smallest_b[s] for s in src),
                        largest_b=tuple(design.largest_b[s] for s in src))
    return data, np.asarray(draw["log10_nc"][0], float)


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
    from ..data.tables import load_base_models

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
    # Every dataset padded to the most pairs its families could have: one compiled sampler.
    n_pad = pair_bucket(int(n_families) * max(design.n_obs))
    for d in range(int(n_datasets)):
        data, truth = simulate_coupling_data(int(n_families), seed + d, design=design)
        post = sample_posterior(pad_pairs(data, n_pad), chains=chains, samples=samples, warmup=warmup,
                                seed=seed + d, progress=progress)
        divergences += post.divergences
        fam = post.family_rows()
        rhat_max = max(rhat_max, float(fam["rhat_max"].max()))
        log10 = _summary(post.idata, ["log10_nc"])["log10_nc"]
        q = np.array([log10.sel(metric=m, family=list(data.families)).values for m in _QNAMES])
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
