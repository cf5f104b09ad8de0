"""The coupling between capabilities read straight from the scores: the running coupling
γ12 between consecutive sizes, the population fit and its critical scale Nc, the Nc
bootstrap and sign test, the algebraic phase classifier, and the frontier h-field.

May import: ``capedyn.data`` and the private helpers. No ODE, no estimator.
"""

from .._lazy import lazy_exports

# the names of the former flat module ``capedyn.coupling``, still importable from here
_EXPORTS = {
    'MIN_DELTA_HS': 'running',
    'CLASSIFIER_CONSTANT': 'phase',
    'PAPER_REFERENCE': 'running',
    'COUPLING_PAPER_REFERENCE': 'running',
    'CouplingError': 'running',
    'running_coupling': 'running',
    'usable_pairs': 'running',
    'web_trained_families': 'running',
    'paper_web_trained_families': 'running',
    'resolve_families': 'running',
    'CouplingFit': 'running',
    'population_fit': 'running',
    'family_couplings': 'running',
    'SignTest': 'running',
    'sign_test': 'running',
    'PhaseResult': 'phase',
    'phase_classifier': 'phase',
    'NcBootstrap': 'nc_bootstrap',
    'bootstrap_nc': 'nc_bootstrap',
    'bench_bootstrap': 'nc_bootstrap',
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
