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
    # errors
    "CapedynError": "_errors", "SolveError": "_errors", "FitFileError": "_errors",
    # state transform shared by all dynamics
    "to_state": "_state", "from_state": "_state", "polynomial_features": "_state",
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
