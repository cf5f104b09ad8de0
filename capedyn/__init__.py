"""capedyn: dynamics of capability coupling in language-model scaling.

The public API is flat and loaded lazily, so ``import capedyn`` stays cheap and does not
touch JAX until a function that needs it is called::

    import capedyn as cd
    df = cd.load_base_models()
    table = cd.running_coupling(df)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it. Each module owns its own entries.
_EXPORTS: dict[str, str] = {
    # data
    "BENCHMARKS": "data", "DataError": "data", "load_base_models": "data",
    "load_frontier_models": "data", "validate_base_models": "data",
    "validate_frontier_models": "data", "log10_params": "data", "complete_models": "data",
    # running coupling, Nc, phase classifier
    "running_coupling": "coupling", "population_fit": "coupling",
    "family_couplings": "coupling", "sign_test": "coupling", "phase_classifier": "coupling",
    "bootstrap_nc": "coupling", "bench_bootstrap": "coupling", "usable_pairs": "coupling",
    "web_trained_families": "coupling", "paper_web_trained_families": "coupling",
    "CouplingFit": "coupling", "NcBootstrap": "coupling", "SignTest": "coupling",
    "PhaseResult": "coupling", "CouplingError": "coupling",
    "COUPLING_PAPER_REFERENCE": "coupling",
    # errors
    "CapedynError": "_errors", "SolveError": "_errors", "FitFileError": "_errors",
    # held-out family benchmark (SPEC section 5): SINDy, baselines, splits, metrics, figures
    "SparseCouplingODE": "sindy", "PAPER_HS_EQUATION": "sindy",
    "LinearODE": "baselines", "PolynomialBaseline": "baselines",
    "holdout": "heldout", "crossval": "heldout", "p1": "heldout", "make_split": "heldout",
    "HoldoutResult": "heldout", "mae_points": "heldout", "relative_mae_pct": "heldout",
    "plot_holdout_trajectories": "heldout", "plot_method_errors": "heldout",
    "HOLDOUT_METHODS": "heldout", "HOLDOUT_PAPER_REFERENCE": "heldout",
    # state transform shared by all dynamics
    "to_state": "_state", "from_state": "_state", "polynomial_features": "_state",
    # frontier h-field (SPEC section 6)
    "PAPER_COEFFICIENTS": "frontier", "PAPER_REFERENCE": "frontier", "CASCADE": "frontier",
    "CascadeScale": "frontier", "PopulationLine": "frontier",
    "population_line": "frontier", "h_field": "frontier", "h_direction": "frontier",
    "is_specialist": "frontier", "reading": "frontier", "release_key": "frontier",
    "lab_summary": "frontier", "model_fields": "frontier",
    "leave_one_lab_out": "frontier", "extrapolation_check": "frontier",
    "saturation": "frontier", "plot_frontier": "frontier",
    # coupling ODE (ode.py: field + solve; fit.py: estimator, saved fits, per-phase analysis)
    "CouplingField": "ode", "FamilyParams": "ode", "solve": "ode", "predict_scores": "ode",
    "CouplingODE": "fit", "load_fit": "fit", "per_phase_analysis": "fit",
    # posteriors over Nc and h (SPEC section 4, NumPyro)
    "sample_posterior": "posterior", "posterior_family": "posterior",
    "load_posterior": "posterior", "plot_nc_forest": "posterior",
    "calibration_check": "posterior", "NcPosterior": "posterior",
    "coupling_model": "posterior", "ode_model": "posterior",
    "POSTERIOR_PAPER_REFERENCE": "posterior",
    # the whole analysis in one call, and the JAX-vs-SciPy / NUTS benchmark
    "reproduce": "report", "run_bench": "bench",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'capedyn' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
