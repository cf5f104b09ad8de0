"""Independent pieces of a held-out sweep on every CPU core, in threads of one process.

A leave-one-family-out sweep is many (held-out family, method) pieces of work that share
nothing but the memo of fitted models (:mod:`capedyn._fitmemo`, which makes a thread wait
for a fit another thread is running rather than repeat it). The pieces differ in method
and shape, so they cannot be one vectorised program; each runs its own compiled programs,
and XLA runs them with the interpreter lock released, so two threads keep two cores busy.
Every piece computes exactly what it computes alone (the same programs on the same
arrays), and results come back in the order of the input, so the numbers do not depend on
the number of threads.

``workers`` is the number of threads: None means :func:`default_workers` (the cores this
process may use, or ``$CAPEDYN_WORKERS``); 1 runs the pieces one after another in the
calling thread, as before.
"""

from __future__ import annotations

import contextvars
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

from ._errors import InputError

__all__ = ["ENV_WORKERS", "available_cores", "default_workers", "check_workers", "ordered_map"]

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


def default_workers() -> int:
    """``$CAPEDYN_WORKERS`` when set, otherwise the number of cores this process may use."""
    text = os.environ.get(ENV_WORKERS, "").strip()
    if not text:
        return available_cores()
    try:
        return check_workers(int(text))
    except (ValueError, InputError):
        raise InputError(f"{ENV_WORKERS}={text!r} is not a whole number of threads ≥ 1; "
                         f"unset it to use every core, or set it to 1, 2, ...") from None


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
    with _one_blas_thread():
        yield from _results(pool, call, items)


def _results(pool, call, items):
    try:
        futures = [pool.submit(call, item, contextvars.copy_context()) for item in items]
        for future in futures:
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _one_blas_thread():
    """The threads already use every core: a BLAS pool per thread would only contend. Set
    once around the whole pool, as the BLAS thread count is one setting per process."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().limit(limits=1, user_api="blas")
