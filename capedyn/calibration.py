"""Calibration of the coupling-level posterior: families simulated with known Nc, and how
often the 95% intervals cover the truth."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from ._jax import scoped_x64
from .posterior import SAMPLER_DEFAULTS, _check_counts, sample_posterior
from .posterior_models import CouplingData, PosteriorError, coupling_data
from .posterior_result import QUANTILES


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
