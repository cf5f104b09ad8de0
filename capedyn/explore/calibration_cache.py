"""The explorer's conformal calibration kept on disk between sessions.

Calibrating the fitted ODE's band refits it once per training family (minutes), and its
result depends only on the fit, the table it is calibrated on, the refit budget and
capedyn's code; so it is stored under the user's cache folder, keyed by a hash of those,
and read back in the next session instead of refitted. ``CAPEDYN_NO_CACHE`` turns it off.
A file that cannot be read back (corrupt, another JAX) is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .._cache import cache_disabled, default_cache_dir
from .._io import atomic_write_bytes
from .._jax import x64
from .._version import __version__

__all__ = ["calibration_key", "cached_calibration", "calibration_dir"]


def calibration_dir() -> Path:
    """``<capedyn cache>/calibrations`` (beside the compiled programs' folder)."""
    return default_cache_dir().parent / "calibrations"


def calibration_key(fit_folder: Path, train: pd.DataFrame, settings: dict[str, Any]) -> str:
    """Hex digest of everything a calibration depends on: the fit's files, the training
    table's rows, the refit settings and capedyn's version and source files."""
    h = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parents[1]
    for f in sorted(package.rglob("*.py")):
        h.update(f.read_bytes())
    for f in sorted(p for p in Path(fit_folder).iterdir() if p.is_file()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(train.to_csv(index=False).encode())
    h.update(repr(sorted(settings.items())).encode())
    return h.hexdigest()[:32]


def cached_calibration(key: str, compute: Callable[[], Any]) -> Any:
    """The calibration stored under ``key``, else ``compute()`` stored there (pickled in
    float64 scope, so the fold models' arrays come back bitwise)."""
    if cache_disabled():
        return compute()
    path = calibration_dir() / f"{key}.pkl"
    if path.is_file():
        try:
            with x64():
                return pickle.loads(path.read_bytes())
        except Exception:  # noqa: BLE001 - any unreadable entry is recomputed
            pass
    result = compute()
    try:
        with x64():
            data = pickle.dumps(result)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except Exception:  # noqa: BLE001 - a cache that cannot be written never fails the band
        pass
    return result
