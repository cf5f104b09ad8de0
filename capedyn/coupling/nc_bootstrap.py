"""The critical scale's bootstrap: resample the usable (log10 N, γ12) pairs, refit the
population line γ12 = A·log10 N + B on each resample and read Nc = 10^(−B/A) where it
rises through zero; the median and 68%/95% intervals are in billions of parameters."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._errors import InputError
from .._jax import scoped_x64
from .._json import to_jsonable
from .._stats import paired_bootstrap
from ..data.tables import WEB_TRAINED_PAPER
from .running import CouplingError, _crossing, _ols, running_coupling, usable_pairs


@dataclass(frozen=True)
class NcBootstrap:
    """Bootstrap distribution of Nc (billions) from resampled usable pairs.

    ``n_valid`` resamples had an upward crossing (A > 0); the other ``n_dropped`` (A ≤ 0
    or every draw at one size) are excluded from the percentiles.
    """

    median_b: float
    ci68_b: tuple[float, float]
    ci95_b: tuple[float, float]
    n_resamples: int
    n_valid: int
    n_dropped: int
    n_pairs: int
    seed: int
    nc_b: float
    families: tuple[str, ...]
    unit: str = "pairs"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci68_b"], d["ci95_b"] = list(self.ci68_b), list(self.ci95_b)
        d["families"] = list(self.families)
        return {k: to_jsonable(v) for k, v in d.items()}


@scoped_x64
def bootstrap_nc(table, n_resamples: int = 10_000, seed: int = 0,
                 families: Sequence[str] | None = None, progress=None) -> NcBootstrap:
    """Bootstrap the critical scale Nc = 10^(−B/A) of the population fit (JAX, float64).

    ``table`` is a :func:`running_coupling` table (restricted to ``families`` if given) or
    a pair of arrays ``(log10_n_mid, gamma12)`` of usable pairs.

    Unit of resampling: the usable *pairs* (γ12 values), drawn with replacement; each
    resample is a weighted OLS with the draw counts as weights, all resamples vectorised
    with ``jax.vmap`` under one ``jax.jit`` (:func:`capedyn._stats.paired_bootstrap`, the
    bootstrap the frontier line uses too). (Resampling *models* within families and
    recomputing the pairs is the alternative; it respects that adjacent pairs share a
    model, but with 2-3 models per family it often leaves no pair at all.) Resamples with
    A ≤ 0 (no upward crossing) or with every draw at a single size are dropped and
    counted. Percentiles are taken on log10 Nc and reported in billions. Reproducible:
    the key is ``jax.random.PRNGKey(seed)`` and resample i does not depend on
    ``n_resamples``.
    """

    if not (isinstance(n_resamples, (int, np.integer)) and n_resamples >= 1):
        raise InputError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if isinstance(table, pd.DataFrame):
        t = usable_pairs(table, families)
        x, y = t["log10_n_mid"].to_numpy(float), t["gamma12"].to_numpy(float)
        fams = tuple(dict.fromkeys(t["family"]))
    else:
        x, y = (np.asarray(v, dtype=float).ravel() for v in table)
        fams = tuple(families or ())
        if x.shape != y.shape or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise InputError("bootstrap_nc needs two finite arrays of equal length "
                             "(log10_n_mid, gamma12)")
    if len(x) < 3 or np.ptp(x) == 0.0:
        raise CouplingError(f"the Nc bootstrap needs at least 3 usable pairs at distinct "
                            f"sizes, found {len(x)}")
    lines = paired_bootstrap(x, y, int(n_resamples), int(seed), progress)
    a, b = lines.slopes, lines.intercepts
    ok = lines.valid & (a > 0)
    n_valid = int(ok.sum())
    if n_valid == 0:
        raise CouplingError(f"none of {n_resamples} resamples has an upward crossing "
                            "(A > 0); Nc is not defined for these pairs")
    log10_nc_b = -b[ok] / a[ok] - 9.0
    q = np.percentile(log10_nc_b, [2.5, 16.0, 50.0, 84.0, 97.5])
    with np.errstate(over="ignore", under="ignore"):
        lo95, lo68, med, hi68, hi95 = (float(v) for v in np.power(10.0, q))
    a0, b0, _ = _ols(x, y)
    return NcBootstrap(median_b=med, ci68_b=(lo68, hi68), ci95_b=(lo95, hi95),
                       n_resamples=int(n_resamples), n_valid=n_valid,
                       n_dropped=int(n_resamples) - n_valid, n_pairs=len(x), seed=int(seed),
                       nc_b=_crossing(a0, b0)[0], families=fams)


@scoped_x64
def bench_bootstrap(n: int = 10_000, table: pd.DataFrame | None = None,
                    families: Sequence[str] | None = WEB_TRAINED_PAPER) -> float:
    """Seconds for ``n`` bootstrap resamples after compilation (default: the shipped table,
    the paper's web-trained families). Best of three timed runs."""
    import time

    from ..data.tables import load_base_models

    t = running_coupling(load_base_models() if table is None else table)
    bootstrap_nc(t, n_resamples=n, families=families)  # compile
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        bootstrap_nc(t, n_resamples=n, families=families)
        best = min(best, time.perf_counter() - t0)
    return best
