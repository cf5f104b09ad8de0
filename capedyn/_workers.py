"""Independent pieces of a held-out sweep on every CPU core, in threads of one process.

A leave-one-family-out sweep is many (held-out family, method) pieces of work that share
nothing but the memo of fitted models (:mod:`capedyn._fitmemo`, which makes a thread wait
for a fit another thread is running rather than repeat it). The pieces differ in method
and shape, so they cannot be one vectorised program; each runs its own compiled programs,
and XLA runs them with the interpreter lock released, so two threads keep two cores busy.
Every piece computes exactly what it computes alone (the same programs on the same
arrays), and results come back in the order of the input, so the numbers do not depend on
the number of threads, provided BLAS's thread count, one setting of the whole process,
stays put while they run (:func:`one_blas_thread`, which a sweep holds throughout).

``workers`` is the number of threads: None means :func:`default_workers` (the cores this
process may use, or ``$CAPEDYN_WORKERS``); 1 runs the pieces one after another in the
calling thread, as before.
"""

from __future__ import annotations

import contextvars
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

from ._errors import InputError
from ._text import positive_count

__all__ = ["ENV_WORKERS", "available_cores", "default_workers", "check_workers", "ordered_map",
           "one_blas_thread"]

T = TypeVar("T")
R = TypeVar("R")

ENV_WORKERS = "CAPEDYN_WORKERS"
"""Environment variable with the default number of worker threads (a whole number ≥ 1)."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers(environ=None, cores: int | None = None) -> int:
    """``$CAPEDYN_WORKERS`` when set, otherwise the number of cores this process may use.
    ``environ`` and ``cores`` default to this process's."""
    text = (os.environ if environ is None else environ).get(ENV_WORKERS, "").strip()
    if not text:
        return available_cores() if cores is None else int(cores)
    n = positive_count(text)
    if n is None:
        raise InputError(f"{ENV_WORKERS}={text!r} is not a whole number of threads ≥ 1; "
                         f"unset it to use every core, or set it to 1, 2, ...")
    return n


def check_workers(workers: int | None) -> int:
    """``workers`` as a whole number ≥ 1 (None: :func:`default_workers`)."""
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a whole number ≥ 1, got {workers!r}")
    return workers


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None,
                thread_context: Callable[[], object] | None = None) -> Iterator[R]:
    """``fn`` of each item, yielded in the items' order, on ``workers`` threads.

    Each call runs in a copy of the caller's context variables (NumPy's error state, say);
    ``thread_context``, when given, makes a context manager entered around every call in a
    worker thread, for settings JAX keeps per thread (``jax.enable_x64``)."""
    items = list(items)
    workers = min(check_workers(workers), max(len(items), 1))
    if workers == 1:
        yield from map(fn, items)
        return

    def call(item, ctx):
        if thread_context is None:
            return ctx.run(fn, item)
        with thread_context():
            return ctx.run(fn, item)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="capedyn")
    try:
        futures = [pool.submit(call, item, contextvars.copy_context()) for item in items]
        for future in futures:
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """The process's BLAS libraries, found once (``threadpool_limits`` scans every loaded
    library on each call, 5-25 ms, and fits call it thousands of times). SciPy's LAPACK,
    which JAX's CPU factorisations call, is loaded first so the controller sees it."""
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS/LAPACK library)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread():
    """A context in which NumPy's and SciPy's BLAS use one thread. The thread count is one
    setting for the whole process and some LAPACK results change in their last bits with
    it (a 6 x 6 solve in the coupling ODE's transfer rule moved held-out predictions by
    up to 1.6e-7 points), so a sweep sets it once around all its threads: its numbers
    then depend neither on its number of threads nor on the machine's core count."""
    return _blas_controller().limit(limits=1, user_api="blas")
