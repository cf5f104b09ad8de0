"""Tables in, validated: the curated base-model and frontier tables shipped with capedyn,
their validation (every error names file, row and column), and readers for
lm-evaluation-harness and Open LLM Leaderboard v1 result files.

May import: the private helpers at the bottom of ``capedyn`` (``_errors``, ``_io``, ...).
Nothing here knows about dynamics, estimators or inference.
"""

from .._lazy import lazy_exports

# the names of the former flat module ``capedyn.data``, still importable from here
_EXPORTS = {
    'BENCHMARKS': 'tables',
    'BASE_REQUIRED': 'tables',
    'BASE_OPTIONAL': 'tables',
    'FRONTIER_SCORES': 'tables',
    'FRONTIER_REQUIRED': 'tables',
    'FRONTIER_OPTIONAL': 'tables',
    'WEB_TRAINED_PAPER': 'tables',
    'CURATED_FAMILIES': 'tables',
    'DataError': 'tables',
    'check_percent_scores': 'tables',
    'check_params_b': 'tables',
    'validate_base_models': 'tables',
    'validate_table_columns': 'tables',
    'validate_frontier_models': 'tables',
    'load_base_models': 'tables',
    'load_frontier_models': 'tables',
    'log10_params': 'tables',
    'complete_models': 'tables',
    'families': 'tables',
    'select_families': 'tables',
    'MAX_TABLE_BYTES': 'tables',
    'BASE_TABLES': 'tables',
    'ESTIMATED_FLAGS': 'tables',
    'estimated_rows': 'tables',
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
