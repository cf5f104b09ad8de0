"""``capedyn bench``: what JAX buys, measured on the package's own problem.

1. **JAX against SciPy on the same fit.** The coupling-ODE objective of
   :mod:`capedyn.models.coupling_ode` — trajectory mean squared error in score points over every later
   model of every training family, plus the Gaussian-prior penalties — is minimised from
   one starting point (the estimator's own initial population) three ways:

   * capedyn's fit, :class:`capedyn.CouplingODE` with its defaults (``default``):
     Levenberg–Marquardt on the residual vector, exact Jacobians through the Diffrax
     Tsit5 solve (forward mode, family by family), all families batched, one
     compiled step;
   * the same estimator with ``optimizer="adam"`` (``jax_adam``): gradients by reverse mode
     through the solver, Optax Adam;
   * a stand-alone JAX Levenberg–Marquardt (``jax_lm``, optimistix) on a per-family
     residual function with reverse-mode Jacobians (the earlier, unbatched route);
   * SciPy: the vector field re-implemented term by term in numpy (:func:`field_numpy`),
     ``scipy.integrate.solve_ivp`` (RK45, the tolerances of the Diffrax solve) and
     ``scipy.optimize.least_squares`` (trust-region reflective, forward-difference
     Jacobian) on the residual vector whose sum of squares *is* the objective.

   The two codes are checked to compute the same objective, at the starting point and at
   the Adam solution. Reported: wall times (JAX with and without compilation), final
   objectives, and the speed ratio at equal loss — the time the slower method needs to
   reach the other's final objective — because a faster fit that fits worse is not a win.

2. **NUTS effective samples per second** of :func:`capedyn.inference.sampling.sample_posterior`:
   the coupling-level model, and the ODE-level model at the posterior's default settings
   (:data:`capedyn.inference.sampling.SAMPLER_DEFAULTS`), with R-hat, bulk ESS and divergences.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..data.tables import BENCHMARKS, log10_params
from .._jax import scoped_x64

__all__ = ["field_numpy", "ScipyCouplingFit", "bench_fit_vs_scipy", "bench_nuts", "run_bench",
           "format_bench", "BENCH_FAMILIES", "resolve_bench_families"]

BENCH_FAMILIES: tuple[str, ...] = ("Pythia", "OPT", "Cerebras-GPT", "BLOOM")
"""The default fit benchmarked: four families, 29 models, 131 parameters — a multi-family
fit as capedyn does them, small enough for the SciPy side to finish in a minute or two.
``capedyn bench --families Pythia`` (the paper's in-sample fit) or ``--families all``
(every family with two complete models) run the others."""

from .scipy_reference import ScipyCouplingFit, _degree_mask, field_numpy  # noqa: F401  (field_numpy re-exported)


# --------------------------------------------------------------------------- fit benchmark

def _population_arrays(pop, n_fam: int) -> tuple:
    fam = pop.families
    return (np.asarray(pop.field.coef), float(pop.field.gamma0),
            np.asarray(fam.log10_nc)[:n_fam], np.asarray(fam.h)[:n_fam], float(pop.mu_nc))


def _time_to(loss: float, times: np.ndarray, values: np.ndarray) -> float | None:
    """First time at which the running minimum of ``values`` is ≤ ``loss`` (None: never)."""
    run = np.minimum.accumulate(values)
    hit = np.flatnonzero(run <= loss)
    return float(times[hit[0]]) if hit.size else None


def _jax_residuals(trajs, pen: dict[str, np.ndarray], degree: int, coupling: str,
                   kappa_max: float, data_scale: np.ndarray):
    """The same residual vector in JAX, built on capedyn's own field and Diffrax solve."""
    import jax.numpy as jnp

    from ..dynamics.state import from_state, to_state
    from ..dynamics.field import CouplingField, FamilyParams, solve_unchecked

    n_fam, k = len(trajs), len(BENCHMARKS)
    n_coef = k * len(_degree_mask(2))
    xs = [jnp.asarray(log10_params(t.params_b)) for t in trajs]
    ys = [jnp.asarray(t.scores) for t in trajs]
    mask = jnp.asarray(_degree_mask(degree))

    def residuals(theta, args=None):
        coef = theta[:n_coef].reshape(k, -1)
        gamma0 = theta[n_coef]
        log10_nc = theta[n_coef + 1:n_coef + 1 + n_fam]
        h = theta[n_coef + 1 + n_fam:n_coef + 1 + n_fam + n_fam * k].reshape(n_fam, k)
        mu = theta[-1]
        field = CouplingField(coef=coef, gamma0=gamma0, degree=degree, coupling=coupling,
                              kappa_max=kappa_max)
        out = []
        for i in range(n_fam):
            zs, ok = solve_unchecked(field, to_state(ys[i][0]), xs[i][0], xs[i],
                                     FamilyParams(log10_nc[i], h[i]))
            err = from_state(zs)[1:] - ys[i][1:]
            out.append(data_scale[i] * jnp.where(ok, err, 1e3).ravel())
        mc = coef * mask
        out += [jnp.sqrt(pen["l2"]) * mc[:, 1:].ravel(), jnp.sqrt(pen["l2_const"]) * mc[:, 0],
                (jnp.sqrt(pen["l2_gamma"]) * gamma0)[None],
                jnp.sqrt(pen["l2_h"]) * (h - pen["h_center"]).ravel(),
                jnp.sqrt(pen["l2_nc"]) * (log10_nc - mu),
                (jnp.sqrt(1e-3) * (mu - pen["nc_prior_mean"]) / pen["nc_prior_sd"])[None]]
        return jnp.concatenate(out)

    return residuals


def _jax_lm(residuals, theta0: np.ndarray, max_steps: int) -> tuple[dict, dict]:
    """Levenberg–Marquardt (optimistix) with exact Jacobians (reverse mode through the
    solve), jitted; timed cold (with compilation) and warm. Returns (result, timings)."""
    import equinox as eqx
    import jax.numpy as jnp
    import optimistix as optx

    solver = optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8)

    @eqx.filter_jit
    def run(th0):
        return optx.least_squares(residuals, solver, th0, options={"jac": "bwd"},
                                  max_steps=max_steps, throw=False)

    t0 = time.perf_counter()
    jax_block(run(jnp.asarray(theta0)).value)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    sol = run(jnp.asarray(theta0))
    theta = np.asarray(jax_block(sol.value))
    warm = time.perf_counter() - t0
    return ({"theta": theta, "steps": int(sol.stats["num_steps"]),
             "status": "converged" if sol.result == optx.RESULTS.successful
             else str(sol.result)}, {"seconds": warm, "seconds_with_compile": cold})


def jax_block(x):
    import jax

    return jax.block_until_ready(x)


@scoped_x64
def bench_fit_vs_scipy(df: pd.DataFrame | None = None, families: Sequence[str] = BENCH_FAMILIES,
                       *, steps: int | None = None, adam_steps: int | None = None,
                       lm_steps: int = 500, max_nfev: int = 200,
                       time_limit: float = 600.0, seed: int = 0,
                       progress: bool = True) -> dict[str, Any]:
    """Fit the same coupling ODE on ``families`` from one starting point four ways —
    capedyn's default fit (Levenberg–Marquardt, exact Jacobians), the estimator with
    Optax Adam, a stand-alone JAX Levenberg–Marquardt and SciPy (solve_ivp +
    least_squares) — and return wall times, objectives, agreement checks and speed ratios
    at equal loss. ``steps``: the default fit's iteration cap (None: its default);
    ``adam_steps``: Adam's (None: its default)."""
    from ..models import coupling_ode as F
    from ..data.tables import load_base_models, select_families

    df = load_base_models() if df is None else df
    data = select_families(df, list(families))
    cfg = {"seed": seed, "progress": False}
    if steps is not None:
        cfg["steps"] = steps
    est = F.CouplingODE(**cfg)
    from ..dynamics.trajectory import trajectories

    trajs = trajectories(data)
    if not trajs:
        from .._errors import CapedynError

        raise CapedynError(f"none of {list(families)} has two complete models (all five "
                           "scores); the benchmarked fit needs at least one such family")
    families = [t.family for t in trajs]
    start = est._initial_population(trajs, len(trajs))
    pen = est._penalties()
    pen_np = {k: np.asarray(getattr(pen, k)) for k in (
        "l2", "l2_const", "l2_gamma", "l2_h", "l2_nc", "nc_prior_mean", "nc_prior_sd", "h_center")}
    sp = ScipyCouplingFit(trajs, pen_np, degree=est.degree, coupling=est.coupling,
                          kappa_max=est.kappa_max, family_weight=est.family_weight)
    theta0 = sp.pack(*_population_arrays(start, len(trajs)))

    def say(msg):
        if progress:
            import sys
            sys.stderr.write(f"bench: {msg}\n")
            sys.stderr.flush()

    say(f"capedyn default fit ({est.optimizer}) on {', '.join(families)}: first fit "
        "(includes compilation), then a timed fit")
    dest, default_cold, default_warm = _cold_then_warm(lambda: F.CouplingODE(**cfg).fit(data))
    default_hist = np.asarray(dest.history_, float)
    default_theta = sp.pack(*_population_arrays(dest.population(), len(trajs)))
    # the default fit minimises its objective on fixed-step solves: compare it with SciPy's
    # at the same evaluator (SciPy's own objective at the fitted parameters)
    default_loss = float(sp.objective(default_theta))

    acfg = {**cfg, "optimizer": "adam", "steps": adam_steps}
    say("JAX Adam fit (optimizer='adam'): first fit (includes compilation), then a timed fit")
    jest, adam_cold, adam_warm = _cold_then_warm(lambda: F.CouplingODE(**acfg).fit(data))
    hist = np.asarray(jest.history_, float)
    adam_theta = sp.pack(*_population_arrays(jest.population(), len(trajs)))
    adam_loss = float(np.nanmin(hist))

    say(f"JAX Levenberg–Marquardt (optimistix), up to {lm_steps} steps: cold then warm")
    residuals = _jax_residuals(trajs, pen_np, est.degree, est.coupling, est.kappa_max,
                               sp._data_scale)
    lm, lm_t = _jax_lm(residuals, theta0, lm_steps)
    lm_loss = sp.objective(lm["theta"])

    say(f"SciPy fit: least_squares (TRF, {theta0.size} parameters), up to {max_nfev} "
        f"evaluations or {time_limit:g} s")
    res = sp.fit(theta0, max_nfev=max_nfev, time_limit=time_limit)
    times = np.array([t for t, _ in sp.log])
    values = np.array([v for _, v in sp.log])
    scipy_loss = float(res["objective"])

    def equal_loss(jax_loss, jax_s, jax_curve=None):
        """(loss level, JAX s, SciPy s, SciPy/JAX): the slower one's time to the other's loss."""
        if jax_loss <= scipy_loss * (1 + 1e-6):
            t_sp = _time_to(jax_loss * (1 + 1e-6), times, values)
            if t_sp is None:  # SciPy stopped above: its whole run is a lower bound
                return {"loss": jax_loss, "jax_s": jax_s, "scipy_s": res["seconds"],
                        "ratio": res["seconds"] / jax_s,
                        "note": "SciPy never reached the JAX loss: ratio uses SciPy's whole "
                                "run (a lower bound)"}
            return {"loss": jax_loss, "jax_s": jax_s, "scipy_s": t_sp, "ratio": t_sp / jax_s,
                    "note": ""}
        if jax_curve is None:
            return {"loss": scipy_loss, "jax_s": None, "scipy_s": res["seconds"], "ratio": None,
                    "note": "JAX stopped above the SciPy loss"}
        k = _time_to(scipy_loss, np.arange(len(jax_curve), dtype=float), jax_curve)
        t_j = None if k is None else k * jax_s / max(len(jax_curve) - 1, 1)
        return {"loss": scipy_loss, "jax_s": t_j, "scipy_s": res["seconds"],
                "ratio": res["seconds"] / t_j if t_j else None,
                "note": "" if t_j else "JAX (Adam) never reached the SciPy loss; "
                                       "SciPy's time to the Adam loss is below"}

    default_eq = equal_loss(default_loss, default_warm, default_hist)
    default_eq["ratio_with_compile"] = (None if default_eq.get("scipy_s") is None
                                        or default_eq.get("jax_s") is None else
                                        default_eq["scipy_s"] / (default_eq["jax_s"]
                                                                 + default_cold - default_warm))
    default_eq["jax_s_with_compile"] = (None if default_eq.get("jax_s") is None
                                        else default_eq["jax_s"] + default_cold - default_warm)
    adam_eq = equal_loss(adam_loss, adam_warm, hist)
    if adam_eq["ratio"] is None and adam_loss > scipy_loss:
        t_sp = _time_to(adam_loss, times, values)
        adam_eq.update(loss=adam_loss, jax_s=adam_warm, scipy_s=t_sp,
                       ratio=None if t_sp is None else t_sp / adam_warm)
    return {
        "problem": {"families": list(families), "n_models": int(sum(len(t.params_b) for t in trajs)),
                    "n_params": int(theta0.size), "n_residuals": int(sp._raw_residuals(theta0).size),
                    "field": {"degree": est.degree, "coupling": est.coupling}},
        "checks": {"start_objective_jax": float(hist[0]),
                   "default_solution_objective_jax": float(np.nanmin(default_hist)),
                   "default_solution_objective_scipy": sp.objective(default_theta),
                   "start_objective_scipy": sp.objective(theta0),
                   "adam_solution_objective_jax": adam_loss,
                   "adam_solution_objective_scipy": sp.objective(adam_theta)},
        "methods": {
            "default": {"label": "JAX: capedyn CouplingODE.fit, default (capedyn's "
                                 "Levenberg–Marquardt, exact Jacobian through Diffrax)",
                        "settings": f"{dest.n_iter_} LM steps (tol {dest.tol:g})",
                        "seconds": default_warm, "seconds_with_compile": default_cold,
                        "final_objective": default_loss, "final_mse_points2": float(dest.mse_)},
            "jax_adam": {"label": "JAX: capedyn CouplingODE.fit(optimizer='adam') (Diffrax + Optax Adam)",
                         "settings": f"{jest.n_iter_} Adam steps, warm-up + cosine schedule",
                         "seconds": adam_warm, "seconds_with_compile": adam_cold,
                         "final_objective": adam_loss, "final_mse_points2": float(jest.mse_)},
            "jax_lm": {"label": "JAX: Levenberg–Marquardt (optimistix), exact Jacobian",
                       "settings": f"{lm['steps']} steps, {lm['status']}",
                       "seconds": lm_t["seconds"], "seconds_with_compile": lm_t["seconds_with_compile"],
                       "final_objective": lm_loss},
            "scipy": {"label": "SciPy: solve_ivp (RK45) + least_squares (TRF, 2-point Jacobian)",
                      "settings": f"{res['nfev']} evaluations, {res['status']}",
                      "seconds": res["seconds"], "seconds_with_compile": None,
                      "final_objective": scipy_loss},
        },
        "equal_loss": {"default_vs_scipy": default_eq,
                       "jax_adam_vs_scipy": adam_eq,
                       "jax_lm_vs_scipy": equal_loss(lm_loss, lm_t["seconds"])},
    }


# --------------------------------------------------------------------------- NUTS

@scoped_x64
def bench_nuts(quick: bool = False, seed: int = 0, progress: bool = True,
               ode_fit=None) -> dict[str, Any]:
    """Effective samples per second of :func:`capedyn.inference.sampling.sample_posterior`.

    For each model (coupling-level; ODE-level with the universal field of ``ode_fit``, by
    default the shipped ``all_families`` fit) a tiny run (10 + 10 draws) measures the fixed
    cost — tracing and XLA compilation — and a real run gives the bulk ESS (the minimum over
    reported quantities, from ArviZ) and its wall time. ESS/s is given with and without the
    fixed cost. The ODE-level row runs the posterior's default settings
    (``SAMPLER_DEFAULTS["ode"]``: chains, draws, warm-up, solver); ``quick`` shrinks both."""
    from ..data.tables import load_base_models
    from ..inference.sampling import SAMPLER_DEFAULTS, sample_posterior

    df = load_base_models()
    ode = SAMPLER_DEFAULTS["ode"]
    # (model, chains, draws, warm-up): the ODE row runs the posterior's default settings
    plans = [("coupling", 4, 200 if quick else 1000, 200 if quick else 1000),
             ("ode", 2 if quick else ode["chains"], 20 if quick else ode["samples"],
              20 if quick else ode["warmup"])]
    rows = []
    for model, chains, samples, warmup in plans:
        kw = dict(model=model, chains=chains, seed=seed, progress=False)
        if model == "ode" and ode_fit is not None:
            kw["fit"] = ode_fit   # default: the shipped all_families fit
        if progress:
            import sys
            sys.stderr.write(f"bench: NUTS {model}-level, {chains} chains × {samples} draws "
                             f"(+ {warmup} warm-up)\n")
        t0 = time.perf_counter()
        sample_posterior(df, samples=10, warmup=10, **kw)
        fixed = time.perf_counter() - t0
        t0 = time.perf_counter()
        post = sample_posterior(df, samples=samples, warmup=warmup, **kw)
        wall = time.perf_counter() - t0
        ess = float(post.table["ess_bulk_min"].min())
        sampling = wall - fixed
        # the fixed cost is itself noisy: below a quarter of the wall time the difference
        # says nothing, so no sampling-only figure is given
        fam = post.family_rows()
        rows.append({"model": model, "chains": chains, "draws_per_chain": samples,
                     "warmup_per_chain": warmup, "wall_s": wall, "fixed_cost_s": fixed,
                     "ess_bulk_min": ess, "ess_per_s": ess / wall,
                     "ess_per_s_sampling_only": ess / sampling if sampling > 0.25 * wall else None,
                     "rhat_max": float(post.table["rhat_max"].max()),
                     "family_rhat_max": float(fam["rhat_max"].max()),
                     "family_ess_bulk_min": float(fam["ess_bulk_min"].min()),
                     "divergences": int(post.divergences),
                     "defaults": model == "ode" and not quick})
    return {"rows": rows}


# --------------------------------------------------------------------------- entry point

def resolve_bench_families(names: Sequence[str] | None) -> tuple[str, ...]:
    """None → :data:`BENCH_FAMILIES`; ``["all"]`` → every family with ≥ 2 complete models."""
    if not names:
        return BENCH_FAMILIES
    if [n.lower() for n in names] == ["all"]:
        from ..data.tables import families, load_base_models

        return tuple(families(load_base_models(), min_models=2, complete=True))
    return tuple(names)


@scoped_x64
def run_bench(quick: bool = False, seed: int = 0, progress: bool = True,
              families: Sequence[str] | None = None) -> dict[str, Any]:
    """Both benchmarks. ``quick`` shrinks budgets to a smoke test (numbers not meaningful);
    ``families`` picks the fit benchmarked (see :data:`BENCH_FAMILIES`)."""
    from .._version import __version__

    t0 = time.perf_counter()
    fit = bench_fit_vs_scipy(families=resolve_bench_families(families),
                             steps=10 if quick else None, adam_steps=150 if quick else None,
                             lm_steps=10 if quick else 500,
                             max_nfev=4 if quick else 200, time_limit=60.0 if quick else 900.0,
                             seed=seed, progress=progress)
    nuts = bench_nuts(quick=quick, seed=seed, progress=progress)
    return {"version": __version__, "quick": quick, "seed": seed, "cpu_count": os.cpu_count(),
            "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "seconds_total": time.perf_counter() - t0, "fit": fit, "nuts": nuts}


def _g(v: Any, d: int = 3) -> str:
    if v is None:
        return "–"
    return f"{v:.{d}g}" if isinstance(v, float) else str(v)


def format_bench(r: dict[str, Any]) -> str:
    """Human-readable benchmark report."""
    from .._table import format_table

    f = r["fit"]
    p = f["problem"]
    lines = []
    if r.get("quick"):
        lines.append("QUICK RUN: budgets cut to a smoke test; the numbers are not the benchmark.")
    lines += [f"Coupling-ODE fit on {', '.join(p['families'])}: {p['n_models']} models, "
              f"{p['n_params']} parameters, {p['n_residuals']} residuals; same objective, "
              "same starting point.", ""]
    rows = [{"method": m["label"], "wall s": m["seconds"],
             "wall s incl. compile": m["seconds_with_compile"],
             "final objective": m["final_objective"], "stopped": m["settings"]}
            for m in f["methods"].values()]
    lines += [format_table(rows, floatfmt=".4g"), ""]
    c = f["checks"]
    lines.append(f"same objective in both codes: at the start JAX {c['start_objective_jax']:.7g} vs "
                 f"SciPy {c['start_objective_scipy']:.7g}; at the Adam solution JAX "
                 f"{c['adam_solution_objective_jax']:.7g} vs SciPy "
                 f"{c['adam_solution_objective_scipy']:.7g}")
    for key, name in (("default_vs_scipy", "capedyn default fit (LM)"),
                      ("jax_lm_vs_scipy", "stand-alone JAX Levenberg–Marquardt"),
                      ("jax_adam_vs_scipy", "JAX Adam (optimizer='adam')")):
        e = f["equal_loss"].get(key)
        if e is None:
            continue
        lines.append(f"{name} vs SciPy at equal loss {_g(e['loss'], 5)}: JAX {_g(e['jax_s'])} s, "
                     f"SciPy {_g(e['scipy_s'])} s → SciPy/JAX = {_g(e['ratio'])}×"
                     + (f"; incl. compilation {_g(e['ratio_with_compile'])}×"
                        if e.get("ratio_with_compile") is not None else "")
                     + (f" ({e['note']})" if e.get("note") else ""))
    n = r.get("nuts")
    if n:
        lines += ["", "NUTS effective samples per second (bulk ESS, minimum over parameters)"]
        lines.append(format_table(n.get("rows", []), floatfmt=".4g"))
    lines += ["", f"cpu_count {r.get('cpu_count')}, 1-min load average "
                  f"{_g(r.get('loadavg_1min'))}, total {_g(r.get('seconds_total'))} s"]
    return "\n".join(lines)


@scoped_x64
def bench_fit(df: pd.DataFrame | None = None, repeats: int = 1, **config) -> dict:
    """Time a fit on all families with ≥ 2 complete models: compile once (a short warm-up fit
    with the same shapes and settings), then ``repeats`` timed fits."""
    import os
    import time

    from ..data.tables import load_base_models
    df = load_base_models() if df is None else df
    cfg = {**_F().CouplingODE().get_params(), **config, "progress": False}
    t0 = time.perf_counter()
    _F().CouplingODE(**{**cfg}).fit(df)  # includes compilation
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        est = _F().CouplingODE(**cfg).fit(df)
        times.append(time.perf_counter() - t0)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"first_fit_with_compile_s": first, "fit_s": times, "optimizer": est.optimizer_,
            "n_iter": est.n_iter_,
            "n_families": len(est.families_),
            "loadavg": load, "cpu_count": os.cpu_count()}


def _F():
    from ..models import coupling_ode as fit

    return fit


def _cold_then_warm(fit: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``fit()`` twice: the first call includes compilation, the second is timed warm.
    Returns (the second result, cold seconds, warm seconds)."""
    import time

    t0 = time.perf_counter()
    fit()
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = fit()
    return out, cold, time.perf_counter() - t0
