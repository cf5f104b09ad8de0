"""capedyn: dynamics of capability coupling in language-model scaling.

The public API is flat and loaded lazily, so ``import capedyn`` stays cheap and does not
touch JAX until a function that needs it is called::

    import capedyn as cd
    df = cd.load_base_models()
    table = cd.running_coupling(df)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    # held-out family benchmark (docs/protocol.md): SINDy, baselines, splits, metrics, figures
    "SparseCouplingODE": "sindy", "PAPER_HS_EQUATION": "sindy",
    "LinearODE": "baselines", "PolynomialBaseline": "baselines",
    "holdout": "heldout", "crossval": "heldout", "p1": "heldout", "make_split": "splits",
    "HoldoutResult": "heldout", "mae_points": "splits", "relative_mae_pct": "splits",
    "plot_holdout_trajectories": "plotting", "plot_method_errors": "plotting",
    "HOLDOUT_METHODS": "heldout", "HOLDOUT_PAPER_REFERENCE": "heldout",
    # state transform shared by all dynamics
    "to_state": "_state", "from_state": "_state", "polynomial_features": "_state",
    # frontier h-field (docs/concepts.md)
    "PAPER_COEFFICIENTS": "frontier", "PAPER_REFERENCE": "frontier", "CASCADE": "frontier",
    "CascadeScale": "frontier", "PopulationLine": "frontier",
    "population_line": "frontier", "h_field": "frontier", "h_direction": "frontier",
    "is_specialist": "frontier", "reading": "frontier", "release_key": "frontier",
    "lab_summary": "frontier", "model_fields": "frontier",
    "leave_one_lab_out": "frontier", "extrapolation_check": "frontier",
    "saturation": "frontier",
    # figures: draw onto an Axes and return it; the caller saves
    "plot_frontier": "plotting", "plot_tqa_phases": "plotting", "plot_gamma12": "plotting",
    "plot_ode_trajectories": "plotting", "plot_holdout_errors": "plotting",
    # coupling ODE (ode.py: field + solve; fit.py: estimator, saved fits, per-phase analysis)
    "CouplingField": "ode", "FamilyParams": "ode", "solve": "ode", "predict_scores": "ode",
    "CouplingODE": "fit", "load_fit": "persistence", "per_phase_analysis": "analysis",
    # posteriors over Nc and h (NumPyro; docs/nc.md)
    "sample_posterior": "posterior", "posterior_family": "posterior",
    "load_posterior": "posterior_result", "plot_nc_forest": "plotting",
    "family_nc": "new_family", "FamilyNc": "new_family",
    "calibration_check": "calibration", "NcPosterior": "posterior_result",
    "coupling_model": "posterior_models", "ode_model": "posterior_models",
    "POSTERIOR_PAPER_REFERENCE": "posterior_result",
    # the whole analysis in one call, and the JAX-vs-SciPy / NUTS benchmark
    "reproduce": "report", "run_bench": "bench",
    # your own scores: lm-evaluation-harness and Open LLM Leaderboard v1 result files
    "read_lm_eval": "ingest", "read_leaderboard_v1": "ingest",
    # the field's peer methods, nested selection, the second-generation shared-logit ODE
    "LogitRateModel": "peers", "PCACapabilityModel": "peers", "LatentSkillModel": "peers",
    "NestedSelection": "selection", "SharedLogitODE": "latent_ode",
    # the ODE-implied critical scale: where dTQA/dHS on a solved trajectory changes sign
    "ImpliedNc": "ode_nc", "implied_nc": "ode_nc", "implied_nc_draws": "ode_nc",
    "implied_nc_table": "ode_nc", "implied_nc_batch": "ode_nc", "ImpliedNcBatch": "ode_nc",
    "implied_nc_posterior": "ode_nc", "implied_nc_agreement": "ode_nc",
    "ImpliedNcAgreement": "ode_nc", "implied_nc_coverage": "ode_calibration",
}


if TYPE_CHECKING:  # the lazy exports above, spelled out for type checkers and IDEs
    # generated from _EXPORTS by scripts/update_type_checking_block.py
    from ._errors import (
        CapedynError, FitFileError, SolveError,
    )
    from ._state import (
        from_state, polynomial_features, to_state,
    )
    from .analysis import (
        per_phase_analysis,
    )
    from .baselines import (
        LinearODE, PolynomialBaseline,
    )
    from .bench import (
        run_bench,
    )
    from .calibration import (
        calibration_check,
    )
    from .coupling import (
        bench_bootstrap, bootstrap_nc, COUPLING_PAPER_REFERENCE, CouplingError,
        CouplingFit, family_couplings, NcBootstrap, paper_web_trained_families,
        phase_classifier, PhaseResult, population_fit, running_coupling, sign_test,
        SignTest, usable_pairs, web_trained_families,
    )
    from .data import (
        BENCHMARKS, complete_models, DataError, load_base_models, load_frontier_models,
        log10_params, validate_base_models, validate_frontier_models,
    )
    from .fit import (
        CouplingODE,
    )
    from .frontier import (
        CASCADE, CascadeScale, extrapolation_check, h_direction, h_field, is_specialist,
        lab_summary, leave_one_lab_out, model_fields, PAPER_COEFFICIENTS,
        PAPER_REFERENCE, population_line, PopulationLine, reading, release_key,
        saturation,
    )
    from .heldout import (
        crossval, holdout, HOLDOUT_METHODS, HOLDOUT_PAPER_REFERENCE, HoldoutResult, p1,
    )
    from .ingest import (
        read_leaderboard_v1, read_lm_eval,
    )
    from .latent_ode import (
        SharedLogitODE,
    )
    from .new_family import (
        family_nc, FamilyNc,
    )
    from .ode import (
        CouplingField, FamilyParams, predict_scores, solve,
    )
    from .ode_calibration import (
        implied_nc_coverage,
    )
    from .ode_nc import (
        implied_nc, implied_nc_agreement, implied_nc_batch, implied_nc_draws,
        implied_nc_posterior, implied_nc_table, ImpliedNc, ImpliedNcAgreement,
        ImpliedNcBatch,
    )
    from .peers import (
        LatentSkillModel, LogitRateModel, PCACapabilityModel,
    )
    from .persistence import (
        load_fit,
    )
    from .plotting import (
        plot_frontier, plot_gamma12, plot_holdout_errors, plot_holdout_trajectories,
        plot_method_errors, plot_nc_forest, plot_ode_trajectories, plot_tqa_phases,
    )
    from .posterior import (
        posterior_family, sample_posterior,
    )
    from .posterior_models import (
        coupling_model, ode_model,
    )
    from .posterior_result import (
        load_posterior, NcPosterior, POSTERIOR_PAPER_REFERENCE,
    )
    from .report import (
        reproduce,
    )
    from .selection import (
        NestedSelection,
    )
    from .sindy import (
        PAPER_HS_EQUATION, SparseCouplingODE,
    )
    from .splits import (
        mae_points, make_split, relative_mae_pct,
    )


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
