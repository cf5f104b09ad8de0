"""Calibration of the ODE-implied Nc: families simulated from a known field and known family
parameters, the ODE-level posterior sampled on them, and how often the implied-Nc intervals
cover the implied Nc of the true parameters.

The simulation is the ODE-level model itself run forwards (NumPyro ``Predictive`` on
:func:`capedyn.inference.models.ode_model` with the population fixed at
:data:`ODE_CALIBRATION_TRUTH`): each simulated family takes the design of a real family
(its smallest model's five scores and its sizes), drawn at random; its log10 Nc and source
h are drawn from the population; the scores at its sizes are the accurately solved
trajectory (adaptive Tsit5) plus Normal noise at the stated per-benchmark sigma. The
smallest model is observed with the same noise and the posterior starts its trajectories
from that noisy observation, as it does on real data. The field is the one the posterior
holds fixed (so field uncertainty is not part of this check).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .._jax import scoped_x64
from .models import PosteriorError, TrajectoryData

__all__ = ["ODE_CALIBRATION_TRUTH", "simulate_trajectory_data", "implied_nc_coverage"]

ODE_CALIBRATION_TRUTH: dict = {"mu": 8.6, "tau": 0.4, "sigma_h": 0.33,
                               "sigma_score": (3.2, 2.4, 3.3, 2.1, 2.6),
                               "log_gamma0_mu": -2.0, "log_gamma0_sd": 1.9}
"""Population used to simulate (log10 N, latent units per decade, points per benchmark in
``BENCHMARKS`` order, log γ0 mean and sd): close to the ODE-level posterior of the shipped
data with the shipped ``all_families`` field."""


def _field(fit):
    from .sampling import _resolve_fit

    return _resolve_fit(fit)[0]


@scoped_x64
def simulate_trajectory_data(n_families: int, seed: int, *, fit=None, truth: dict | None = None,
                             design: TrajectoryData | None = None, noisy_start: bool = True,
                             family_gamma: bool = False) -> tuple[TrajectoryData, dict]:
    """Families simulated from the ODE-level model with known parameters.

    ``fit``: the field (a fitted :class:`capedyn.CouplingODE`, a field, a saved fit folder
    or a shipped fit name; default the shipped ``all_families``); ``truth``: population
    overrides of :data:`ODE_CALIBRATION_TRUTH`; ``design``: the real families whose start
    scores and sizes are reused (default: the shipped table's). ``noisy_start``: the
    smallest model is observed with noise too (default) or exactly. ``family_gamma``: each
    family draws its own coupling strength γ0_f from the population (default) or all take
    the field's.

    Returns (data, truth) where ``truth`` holds the true ``log10_nc`` (F,), ``h`` (F, 5),
    ``gamma0`` (F,),
    the noiseless start ``z0`` (F, 5) and ``x0`` (F,), the design family of each simulated
    family and the population values used.
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer import Predictive

    from ..dynamics.state import to_state
    from ..data.tables import load_base_models
    from .models import ode_model, trajectory_data

    if not (isinstance(n_families, (int, np.integer)) and n_families >= 1):
        raise PosteriorError(f"n_families must be a whole number >= 1, got {n_families!r}")
    pop = {**ODE_CALIBRATION_TRUTH, **(truth or {})}
    fld = _field(fit)
    design = design or trajectory_data(load_base_models())
    rng = np.random.default_rng(seed)
    src = rng.integers(len(design.families), size=int(n_families))
    x0, z0 = np.asarray(design.x0)[src], np.asarray(design.z0)[src]
    xs, mask = np.asarray(design.xs)[src], np.asarray(design.mask)[src]
    hyper = {"mu": pop["mu"], "tau": pop["tau"], "sigma_h": pop["sigma_h"],
             "sigma_score": jnp.asarray(pop["sigma_score"], dtype=float),
             "log_gamma0_mu": pop["log_gamma0_mu"], "log_gamma0_sd": pop["log_gamma0_sd"]}
    pred = Predictive(ode_model, num_samples=1)
    key = jax.random.PRNGKey(seed)
    for _ in range(20):  # redraw on the (rare) simulated family whose solve fails
        key, sub = jax.random.split(key)
        out = pred(sub, x0=jnp.asarray(x0), z0=jnp.asarray(z0), xs=jnp.asarray(xs),
                   mask=jnp.asarray(mask), fld=fld, scores=None, hyper=hyper, solver="adaptive",
                   family_gamma=family_gamma)
        if int(np.asarray(out["solve_failures"])[0]) == 0:
            break
    else:
        raise PosteriorError("could not simulate families whose trajectories solve; "
                             "use a smaller sigma_h or a more stable field")
    scores = np.asarray(out["scores"])[0]
    obs_start = scores[:, 0] if noisy_start else np.asarray(design.scores)[src, 0]
    scores = scores.copy()
    scores[:, 0] = obs_start
    names = tuple(f"sim-{i:02d}" for i in range(int(n_families)))
    data = TrajectoryData(
        families=names, x0=x0.copy(), z0=np.asarray(to_state(obs_start)), xs=xs.copy(),
        scores=scores, mask=mask.copy(),
        n_models=tuple(int(design.n_models[i]) for i in src),
        smallest_b=tuple(float(design.smallest_b[i]) for i in src),
        largest_b=tuple(float(design.largest_b[i]) for i in src))
    gamma0 = (np.asarray(out["gamma0"])[0] if family_gamma
              else np.full(len(names), float(fld.gamma0)))
    return data, {"log10_nc": np.asarray(out["log10_nc"])[0], "h": np.asarray(out["h"])[0],
                  "gamma0": gamma0,
                  "z0": z0, "x0": x0, "design": [design.families[i] for i in src],
                  "population": pop}


@scoped_x64
def implied_nc_coverage(n_families: int = 26, seed: int = 0, *, per_dataset: int = 13,
                        fit=None, chains: int = 4, samples: int = 250, warmup: int = 250,
                        noisy_start: bool = True, x_min: float | None = None,
                        x_max: float | None = None, n_grid: int = 200,
                        definitions: tuple[str, ...] = ("crossing", "linear"),
                        truth: dict | None = None, design: TrajectoryData | None = None,
                        family_gamma: bool = False, model_noisy_start: bool = True,
                        progress: bool = False) -> dict:
    """Coverage of the ODE-implied Nc intervals on simulated families with known parameters.

    ``n_families`` families are simulated (:func:`simulate_trajectory_data`) in datasets of
    at most ``per_dataset`` families (seeds ``seed``, ``seed + 1``, ...; each dataset is one
    hierarchical ODE-level posterior, NUTS with ``chains`` x ``samples`` draws after
    ``warmup``). For every family the implied Nc is computed from each posterior draw
    (:func:`capedyn.inference.implied_nc.implied_nc_batch`, trajectories from the observed smallest
    model) and from the true parameters (trajectory from the true smallest model), with the
    same scan (``x_min``/``x_max`` log10 N, defaults of :mod:`capedyn.inference.implied_nc`) and each of
    ``definitions`` (see :func:`capedyn.inference.implied_nc.implied_nc_batch`); ``truth``, ``design`` and
    ``noisy_start`` are passed to :func:`simulate_trajectory_data`; ``family_gamma`` to it
    and to the posterior, ``model_noisy_start`` to the posterior as its ``noisy_start``
    (see :func:`capedyn.inference.models.ode_model`). Nc is taken on
    the extended line (+inf: the trajectory stays on the tax side over the scan, −inf: it
    stays on the bonus side), the equal-tailed 68%/95% intervals are quantiles of the draws,
    and a family is covered when its true value lies inside.

    Returns, for the first definition (and for each under ``by_definition``), coverage at
    95% and 68% over all families, over the families whose true
    trajectory crosses inside the scan (``*_crossing``) and over those whose true crossing
    lies inside the family's sizes (``*_inside_data``), the per-family table (log10 N),
    divergences, the largest R-hat of log10 Nc and h, settings and run time.
    """
    from ..data.tables import load_base_models, log10_params
    from .implied_nc import DEFINITIONS, X_MAX, X_MIN, _implied_nc_batches
    from .implied_nc_posterior import _draws_batches, _ext_quantiles, _posterior_draws
    from .sampling import sample_posterior
    from .models import trajectory_data

    definitions = tuple(definitions)
    if not definitions or any(dfn not in DEFINITIONS for dfn in definitions):
        raise PosteriorError(f"definitions must be a non-empty subset of {DEFINITIONS}, "
                             f"got {definitions!r}")
    x_min = X_MIN if x_min is None else x_min
    x_max = X_MAX if x_max is None else x_max
    if not (isinstance(n_families, (int, np.integer)) and n_families >= 1):
        raise PosteriorError(f"n_families must be a whole number >= 1, got {n_families!r}")
    if not (isinstance(per_dataset, (int, np.integer)) and per_dataset >= 1):
        raise PosteriorError(f"per_dataset must be a whole number >= 1, got {per_dataset!r}")
    fld = _field(fit)
    design = design or trajectory_data(load_base_models())  # read once, not per dataset
    t0 = time.perf_counter()
    rows, divergences, rhat_max = [], 0, 0.0
    remaining, d = int(n_families), 0
    while remaining > 0:
        k = min(int(per_dataset), remaining)
        data, known = simulate_trajectory_data(k, seed + d, fit=fld, truth=truth, design=design,
                                               noisy_start=noisy_start,
                                               family_gamma=family_gamma)
        post = sample_posterior(data, model="ode", fit=fld, chains=chains, samples=samples,
                                warmup=warmup, seed=seed + d, progress=progress,
                                family_gamma=family_gamma, noisy_start=model_noisy_start)
        divergences += post.divergences
        rhat_max = max(rhat_max, float(post.family_rows()["rhat_max"].max()))
        draws = _posterior_draws(post.idata.posterior, k)
        n = draws.log10_nc.shape[0]
        x_fit = log10_params(data.largest_b)
        # One scan each for the draws and the truth; every definition reads off the same scan.
        kw = dict(x_min=x_min, x_max=x_max, n_grid=n_grid, definitions=definitions)
        all_draws = _draws_batches(fld, data, draws, **kw)
        all_true = _implied_nc_batches(fld, known["z0"], known["x0"], known["log10_nc"],
                                       known["h"], x_fit=x_fit, gamma0=known["gamma0"], **kw)
        for definition in definitions:
            draws, true = all_draws[definition], all_true[definition]
            ext = draws.extended().reshape(k, n)
            true_ext = true.extended()
            frac_cross = np.mean(draws.side.reshape(k, n) == "crosses", axis=1)
            for i, name in enumerate(data.families):
                q = _ext_quantiles(ext[i])
                t = float(true_ext[i])
                lo_x, hi_x = np.log10(data.smallest_b[i]) + 9.0, x_fit[i]
                rows.append({"dataset": d, "family": name, "definition": definition,
                             "design": known["design"][i],
                             "true_log10_nc_param": float(known["log10_nc"][i]),
                             "true_implied": t, "true_side": str(true.side[i]),
                             "true_inside_data": bool(np.isfinite(t) and lo_x <= t <= hi_x),
                             "lo95": q[0], "lo68": q[1], "median": q[2], "hi68": q[3],
                             "hi95": q[4],
                             "frac_cross": float(frac_cross[i]),
                             "covered95": bool(q[0] <= t <= q[4]),
                             "covered68": bool(q[1] <= t <= q[3])})
        remaining -= k
        d += 1
    table = pd.DataFrame(rows)

    def summary(sub: pd.DataFrame) -> dict:
        def cov(sel, col):
            return float(sub.loc[sel, col].mean()) if sel.any() else float("nan")

        every = pd.Series(True, index=sub.index)
        crossing, inside = sub["true_side"] == "crosses", sub["true_inside_data"]
        return {"coverage95": cov(every, "covered95"), "coverage68": cov(every, "covered68"),
                "n_crossing": int(crossing.sum()),
                "coverage95_crossing": cov(crossing, "covered95"),
                "coverage68_crossing": cov(crossing, "covered68"),
                "n_inside_data": int(inside.sum()),
                "coverage95_inside_data": cov(inside, "covered95"),
                "coverage68_inside_data": cov(inside, "covered68")}

    by_def = {dfn: summary(table[table["definition"] == dfn]) for dfn in definitions}
    return {"n_families": int(n_families), "n_datasets": d, "seed": seed,
            **by_def[definitions[0]], "definition": definitions[0], "by_definition": by_def,
            "divergences": int(divergences), "rhat_max": rhat_max,
            "runtime_s": round(time.perf_counter() - t0, 2),
            "truth": {**ODE_CALIBRATION_TRUTH, **(truth or {})},
            "chains": chains, "samples": samples, "warmup": warmup, "per_dataset": per_dataset,
            "noisy_start": bool(noisy_start), "family_gamma": bool(family_gamma),
            "model_noisy_start": bool(model_noisy_start), "x_min": x_min, "x_max": x_max, "table": table}
