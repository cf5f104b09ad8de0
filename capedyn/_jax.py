"""Float64 for capedyn's numerics, scoped: the user's global JAX setting is never changed.

Every public entry point that fits, solves or samples runs inside ``jax.enable_x64(True)``
(a thread-local context, public since JAX 0.8, which pyproject.toml pins), applied with
the :func:`scoped_x64` decorator. The decorator also holds BLAS at one thread for the call
(:func:`capedyn._workers.one_blas_thread`), as a held-out sweep does for its whole run: the
small LAPACK factorisations of a fit (a ~200 x 200 Cholesky per Levenberg–Marquardt step)
run faster on one thread than on threads that compete with XLA's own, and a fit or
prediction then gives the same numbers, to the last bit, alone or inside a sweep, on any
core count. On the way out the process is as it was (BLAS's thread count included):
``jax.config.jax_enable_x64`` keeps the user's value, and arrays created outside capedyn
keep their dtype. Arrays capedyn returns are float64; used
later outside capedyn under the default float32 setting they are computed in float32.
"""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

from ._workers import one_blas_thread

F = TypeVar("F", bound=Callable)


def scoped_x64(fn: F) -> F:
    """Run ``fn`` with float64 enabled and BLAS on one thread, for the call only."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with x64(), one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def x64():
    """Context manager form of :func:`scoped_x64`: ``with x64(): ...``."""
    import jax

    return jax.enable_x64(True)  # a thread-local context in the pinned JAX (>= 0.8)
