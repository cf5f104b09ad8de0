"""Small statistics shared by the running coupling and the frontier line: the one
least-squares line (:func:`ols_line`) and the one paired bootstrap of it
(:func:`paired_bootstrap`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ._errors import CapedynError, InputError
from ._jax import scoped_x64


def ols_line(x: np.ndarray, y: np.ndarray, *, degenerate: str,
             error: type[CapedynError] = InputError) -> tuple[float, float, float]:
    """Slope, intercept and R² of the least-squares line y = slope·x + intercept, from
    centred sums (well conditioned for x = log10 N ≈ 8–11). Raises ``error(degenerate)`` when
    every x is the same (the slope is undefined). A constant y has R² 1 for an exact fit and 0
    otherwise (scikit-learn's finite convention)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    if sxx <= 1e-12 * max(1.0, float(np.abs(x).max()) ** 2):
        raise error(degenerate)
    slope = float(np.sum((x - xm) * (y - ym))) / sxx
    intercept = float(ym - slope * xm)
    ss_tot = float(np.sum((y - ym) ** 2))
    ss_res = float(np.sum((y - (slope * x + intercept)) ** 2))
    r2 = (1.0 if ss_res <= 1e-24 else 0.0) if ss_tot == 0.0 else 1.0 - ss_res / ss_tot
    return slope, intercept, r2


# --------------------------------------------------------------------------- paired bootstrap

BOOTSTRAP_BLOCK = 4096
"""Resamples drawn per jitted block: one compilation per number of points, and resample i
is the same whatever the total number of resamples is."""

_JITTED: dict[str, Any] = {}


@dataclass(frozen=True)
class BootstrapLines:
    """Least-squares lines of ``n`` paired resamples (arrays of length ``n``).

    ``valid`` is False for a degenerate resample, whose draws all sit at one x (the slope
    is undefined); its ``slopes``/``intercepts`` entries are NaN. ``n_degenerate`` counts
    them."""

    slopes: np.ndarray
    intercepts: np.ndarray
    valid: np.ndarray

    @property
    def n_degenerate(self) -> int:
        return int(np.size(self.valid) - np.count_nonzero(self.valid))


def weighted_ols(w: Any, x: Any, y: Any, tol: float) -> tuple[Any, Any, Any]:
    """Closed-form weighted least squares of y = slope·x + intercept with weights w (JAX).

    Returns (slope, intercept, valid); ``valid`` is False (and both coefficients NaN) when
    the weighted spread of x is at most ``tol`` (every weighted point at one x)."""
    import jax.numpy as jnp

    sw = jnp.sum(w)
    xm, ym = jnp.sum(w * x) / sw, jnp.sum(w * y) / sw
    sxx = jnp.sum(w * (x - xm) ** 2)
    slope = jnp.sum(w * (x - xm) * (y - ym)) / sxx
    intercept = ym - slope * xm
    valid = sxx > tol
    return (jnp.where(valid, slope, jnp.nan), jnp.where(valid, intercept, jnp.nan), valid)


def _block_indices(key, n: int):
    """(BOOTSTRAP_BLOCK, n) indices drawn with replacement from range(n) (JAX)."""
    import jax

    return jax.random.randint(key, (BOOTSTRAP_BLOCK, n), 0, n)


def _jitted(name: str):
    """The jitted block functions, built on first use (keeps JAX out of the import)."""
    if name not in _JITTED:
        import jax
        import jax.numpy as jnp

        def lines(key, x, y, tol):
            n = x.shape[0]
            idx = _block_indices(key, n)
            counts = jax.vmap(lambda i: jnp.bincount(i, length=n))(idx).astype(x.dtype)
            return jax.vmap(weighted_ols, in_axes=(0, None, None, None))(counts, x, y, tol)

        _JITTED["lines"] = jax.jit(lines)
        _JITTED["indices"] = jax.jit(_block_indices, static_argnums=1)
    return _JITTED[name]


def _degenerate_tol(x: np.ndarray) -> float:
    """Spread Σw(x − x̄)² at or below which a resample counts as one distinct x (the
    relative threshold of :func:`ols_line`)."""
    return 1e-12 * max(1.0, float(np.abs(x).max()) ** 2)


def _n_blocks(n_resamples: int) -> int:
    return -(-int(n_resamples) // BOOTSTRAP_BLOCK)


@scoped_x64
def bootstrap_indices(n_points: int, n_resamples: int, seed: int) -> np.ndarray:
    """The (n_resamples, n_points) indices :func:`paired_bootstrap` draws for ``seed``
    (row i is resample i), for checking its lines by an independent computation."""
    import jax

    key = jax.random.PRNGKey(int(seed))
    f = _jitted("indices")
    out = [np.asarray(f(jax.random.fold_in(key, k), int(n_points)))
           for k in range(_n_blocks(n_resamples))]
    return np.concatenate(out)[:n_resamples]


@scoped_x64
def paired_bootstrap(x, y, n_resamples: int, seed: int,
                     progress: Callable[[int, int], Any] | None = None) -> BootstrapLines:
    """Resample the (x, y) pairs with replacement and refit the least-squares line of each
    resample (JAX, float64): the one paired bootstrap of capedyn.

    Resample i draws n indices from ``jax.random.PRNGKey(seed)`` folded with its block
    number (:data:`BOOTSTRAP_BLOCK` resamples a block), so it does not depend on
    ``n_resamples``; each resample is a weighted least-squares fit with the draw counts as
    weights, vectorised with ``jax.vmap`` under one ``jax.jit``. A resample whose draws
    sit at a single x is degenerate: flagged in ``valid`` and NaN, for the caller to drop
    and count. ``progress(done, total)`` is called after each block."""
    import jax

    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape or x.size == 0:
        raise InputError("paired_bootstrap needs two non-empty arrays of equal length")
    n_resamples = int(n_resamples)
    if n_resamples == 0:
        return BootstrapLines(np.empty(0), np.empty(0), np.empty(0, dtype=bool))
    n_blocks = _n_blocks(n_resamples)
    block = _jitted("lines")
    key = jax.random.PRNGKey(int(seed))
    xs, ys, tol = jax.numpy.asarray(x), jax.numpy.asarray(y), _degenerate_tol(x)
    a_out, b_out, ok_out = [], [], []
    for k in range(n_blocks):
        a, b, ok = block(jax.random.fold_in(key, k), xs, ys, tol)
        a_out.append(np.asarray(a))
        b_out.append(np.asarray(b))
        ok_out.append(np.asarray(ok))
        if progress is not None:
            progress(min((k + 1) * BOOTSTRAP_BLOCK, n_resamples), n_resamples)
    return BootstrapLines(np.concatenate(a_out)[:n_resamples],
                          np.concatenate(b_out)[:n_resamples],
                          np.concatenate(ok_out)[:n_resamples])
