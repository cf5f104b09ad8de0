"""One JSON sanitiser for every output capedyn writes or prints (CLI ``--json``,
``summary.json``, ``meta.json``): strict JSON, so NaN and infinities become ``null``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays turned into Python numbers and lists, tuples
    into lists, mapping keys into strings, paths into strings and every non-finite float
    (NaN, ±inf, pandas NA) into ``None``. Other objects are returned unchanged."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is not None and not isinstance(obj, str) and _is_missing(obj):
        return None
    return obj


def _is_missing(obj: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(obj)) if np.ndim(obj) == 0 else False
    except (TypeError, ValueError):
        return False
