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

from ._moved import install as _install_old_paths
from ._version import __version__

_install_old_paths()  # the flat 0.1 module paths, for one release (capedyn/_moved.py)

# public name -> submodule that defines it. Each module owns its own entries.
_EXPORTS: dict[str, str] = {
    # data
    "BENCHMARKS": "data.tables", "DataError": "data.tables", "load_base_models": "data.tables",
    "load_frontier_models": "data.tables", "validate_base_models": "data.tables",
    "validate_frontier_models": "data.tables", "log10_params": "data.tables",
    "complete_models": "data.tables",
    # running coupling, Nc, phase classifier
    "running_coupling": "coupling.running", "population_fit": "coupling.running",
    "family_couplings": "coupling.running", "sign_test": "coupling.running",
    "phase_classifier": "coupling.phase", "bootstrap_nc": "coupling.nc_bootstrap",
    "bench_bootstrap": "coupling.nc_bootstrap", "usable_pairs": "coupling.running",
    "web_trained_families": "coupling.running",
    "paper_web_trained_families": "coupling.running", "CouplingFit": "coupling.running",
    "NcBootstrap": "coupling.nc_bootstrap", "SignTest": "coupling.running",
    "PhaseResult": "coupling.phase", "CouplingError": "coupling.running",
    "COUPLING_PAPER_REFERENCE": "coupling.running",
    # errors
    "CapedynError": "_errors", "SolveError": "_errors", "FitFileError": "_errors",
    # held-out family benchmark (docs/protocol.md): SINDy, baselines, splits, metrics, figures
    "SparseCouplingODE": "models.sindy", "PAPER_HS_EQUATION": "models.sindy",
    "LinearODE": "models.baselines", "PolynomialBaseline": "models.baselines",
    "holdout": "evaluation.heldout", "crossval": "evaluation.heldout",
    "p1": "evaluation.heldout", "make_split": "evaluation.splits",
    "HoldoutResult": "evaluation.heldout", "mae_points": "evaluation.splits",
    "relative_mae_pct": "evaluation.splits", "plot_holdout_trajectories": "plotting",
    "plot_method_errors": "plotting", "HOLDOUT_METHODS": "evaluation.heldout",
    "HOLDOUT_PAPER_REFERENCE": "evaluation.heldout",
    # conformal intervals for an unseen family: predict(..., interval=0.9) after this
    "conformalize": "evaluation.conformal", "interval_predict": "models._intervals",
    # state transform shared by all dynamics
    "to_state": "dynamics.state", "from_state": "dynamics.state",
    "polynomial_features": "dynamics.state",
    # frontier h-field (docs/concepts.md)
    "PAPER_COEFFICIENTS": "coupling.frontier", "PAPER_REFERENCE": "coupling.frontier",
    "CASCADE": "coupling.frontier", "CascadeScale": "coupling.frontier",
    "PopulationLine": "coupling.frontier", "population_line": "coupling.frontier",
    "h_field": "coupling.frontier", "h_direction": "coupling.frontier",
    "is_specialist": "coupling.frontier", "reading": "coupling.frontier",
    "release_key": "coupling.frontier", "lab_summary": "coupling.frontier",
    "model_fields": "coupling.frontier", "leave_one_lab_out": "coupling.frontier",
    "extrapolation_check": "coupling.frontier", "saturation": "coupling.frontier",
    # figures: draw onto an Axes and return it; the caller saves
    "plot_frontier": "plotting", "plot_tqa_phases": "plotting", "plot_gamma12": "plotting",
    "plot_ode_trajectories": "plotting", "plot_holdout_errors": "plotting",
    # coupling ODE: the field and its solve, the estimator, saved fits, per-phase analysis
    "CouplingField": "dynamics.field", "FamilyParams": "dynamics.field",
    "solve": "dynamics.field", "predict_scores": "dynamics.field",
    "CouplingODE": "models.coupling_ode", "load_fit": "models.persistence",
    "per_phase_analysis": "models.per_phase",
    # posteriors over Nc and h (NumPyro; docs/nc.md)
    "sample_posterior": "inference.sampling", "posterior_family": "inference.sampling",
    "load_posterior": "inference.result", "plot_nc_forest": "plotting",
    "family_nc": "inference.new_family", "FamilyNc": "inference.new_family",
    "calibration_check": "inference.coupling_calibration", "NcPosterior": "inference.result",
    "coupling_model": "inference.models", "ode_model": "inference.models",
    "POSTERIOR_PAPER_REFERENCE": "inference.result",
    "predictive_interval": "inference.posterior_predictive",
    "posterior_interval_benchmark": "evaluation.posterior_intervals",
    # the whole analysis in one call, and the JAX-vs-SciPy / NUTS benchmark
    "reproduce": "report", "run_bench": "evaluation.bench",
    # your own scores: lm-evaluation-harness and Open LLM Leaderboard v1 result files
    "read_lm_eval": "data.ingest", "read_leaderboard_v1": "data.ingest",
    # the field's peer methods, nested selection, the second-generation shared-logit ODE
    "LogitRateModel": "models.peers", "PCACapabilityModel": "models.peers",
    "LatentSkillModel": "models.peers", "NestedSelection": "evaluation.selection",
    "SharedLogitODE": "models.shared_ode",
    # the ODE-implied critical scale: where dTQA/dHS on a solved trajectory changes sign
    "ImpliedNc": "inference.implied_nc", "implied_nc": "inference.implied_nc",
    "implied_nc_draws": "inference.implied_nc", "implied_nc_table": "inference.implied_nc",
    "implied_nc_batch": "inference.implied_nc", "ImpliedNcBatch": "inference.implied_nc",
    "implied_nc_posterior": "inference.implied_nc_posterior",
    "implied_nc_agreement": "inference.implied_nc_agreement",
    "ImpliedNcAgreement": "inference.implied_nc_agreement",
    "implied_nc_coverage": "inference.implied_nc_calibration",
    # the authors' published internal-coupling and steering results (steering itself:
    # capedyn.steer, the optional extra)
    "load_internal_coupling": "data.published", "load_steering_results": "data.published",
    "plot_internal_coupling": "plotting",
    # compile once per machine: JAX's persistent compilation cache, opt-in
    "enable_compilation_cache": "_cache",
    # a script's own process: NUTS chains on two cores, opt-in
    "enable_cpu_devices": "_devices",
    # a script's own process: XLA's quicker-compiling CPU emitters, opt-in
    "enable_fast_compile": "_compile_flags",
}


if TYPE_CHECKING:  # the lazy exports above, spelled out for type checkers and IDEs
    # generated from _EXPORTS by scripts/update_type_checking_block.py
    from ._cache import (
        enable_compilation_cache,
    )
    from ._compile_flags import (
        enable_fast_compile,
    )
    from ._devices import (
        enable_cpu_devices,
    )
    from ._errors import (
        CapedynError, FitFileError, SolveError,
    )
    from .coupling.frontier import (
        CASCADE, CascadeScale, extrapolation_check, h_direction, h_field, is_specialist,
        lab_summary, leave_one_lab_out, model_fields, PAPER_COEFFICIENTS,
        PAPER_REFERENCE, population_line, PopulationLine, reading, release_key,
        saturation,
    )
    from .coupling.nc_bootstrap import (
        bench_bootstrap, bootstrap_nc, NcBootstrap,
    )
    from .coupling.phase import (
        phase_classifier, PhaseResult,
    )
    from .coupling.running import (
        COUPLING_PAPER_REFERENCE, CouplingError, CouplingFit, family_couplings,
        paper_web_trained_families, population_fit, running_coupling, sign_test,
        SignTest, usable_pairs, web_trained_families,
    )
    from .data.ingest import (
        read_leaderboard_v1, read_lm_eval,
    )
    from .data.published import (
        load_internal_coupling, load_steering_results,
    )
    from .data.tables import (
        BENCHMARKS, complete_models, DataError, load_base_models, load_frontier_models,
        log10_params, validate_base_models, validate_frontier_models,
    )
    from .dynamics.field import (
        CouplingField, FamilyParams, predict_scores, solve,
    )
    from .dynamics.state import (
        from_state, polynomial_features, to_state,
    )
    from .evaluation.bench import (
        run_bench,
    )
    from .evaluation.conformal import (
        conformalize,
    )
    from .evaluation.heldout import (
        crossval, holdout, HOLDOUT_METHODS, HOLDOUT_PAPER_REFERENCE, HoldoutResult, p1,
    )
    from .evaluation.posterior_intervals import (
        posterior_interval_benchmark,
    )
    from .evaluation.selection import (
        NestedSelection,
    )
    from .evaluation.splits import (
        mae_points, make_split, relative_mae_pct,
    )
    from .inference.coupling_calibration import (
        calibration_check,
    )
    from .inference.implied_nc import (
        implied_nc, implied_nc_batch, implied_nc_draws, implied_nc_table, ImpliedNc,
        ImpliedNcBatch,
    )
    from .inference.implied_nc_agreement import (
        implied_nc_agreement, ImpliedNcAgreement,
    )
    from .inference.implied_nc_calibration import (
        implied_nc_coverage,
    )
    from .inference.implied_nc_posterior import (
        implied_nc_posterior,
    )
    from .inference.models import (
        coupling_model, ode_model,
    )
    from .inference.new_family import (
        family_nc, FamilyNc,
    )
    from .inference.posterior_predictive import (
        predictive_interval,
    )
    from .inference.result import (
        load_posterior, NcPosterior, POSTERIOR_PAPER_REFERENCE,
    )
    from .inference.sampling import (
        posterior_family, sample_posterior,
    )
    from .models._intervals import (
        interval_predict,
    )
    from .models.baselines import (
        LinearODE, PolynomialBaseline,
    )
    from .models.coupling_ode import (
        CouplingODE,
    )
    from .models.peers import (
        LatentSkillModel, LogitRateModel, PCACapabilityModel,
    )
    from .models.per_phase import (
        per_phase_analysis,
    )
    from .models.persistence import (
        load_fit,
    )
    from .models.shared_ode import (
        SharedLogitODE,
    )
    from .models.sindy import (
        PAPER_HS_EQUATION, SparseCouplingODE,
    )
    from .plotting import (
        plot_frontier, plot_gamma12, plot_holdout_errors, plot_holdout_trajectories,
        plot_internal_coupling, plot_method_errors, plot_nc_forest,
        plot_ode_trajectories, plot_tqa_phases,
    )
    from .report import (
        reproduce,
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
