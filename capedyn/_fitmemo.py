"""Memo of deterministic fits, keyed by the exact content of their inputs.

A held-out sweep with nested selection asks for the same fit many times: the fold that
trains on every family but {F, G} occurs once for outer family F and once for outer
family G, and grid points that differ only in a setting read after the optimisation
(how an unseen family's source is chosen, say) run the same optimisation. A fit is a
deterministic function of its inputs (the same compiled program on the same arrays gives
the same bits), so its result can be kept and handed out again: the numbers stay exactly
those of a fresh fit and only the time goes.

Keys are digests of the inputs' bytes, shapes and dtypes (:func:`array_digest`) plus the
settings, so edited or poisoned data can never hit an entry of other data. Entries are
kept least recently used first out, at most ``maxsize`` per memo. :func:`memo_disabled`
turns every memo off (for checks that a memo changes nothing); :func:`clear_memos`
forgets every entry.

The memos are shared by the threads of a held-out sweep (:mod:`capedyn._workers`): a
thread that asks for a fit another thread is running waits for that fit instead of
running it a second time.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterator

import numpy as np

__all__ = ["FitMemo", "array_digest", "memo_disabled", "clear_memos"]

_ENABLED = [True]
_MEMOS: list["FitMemo"] = []


def array_digest(*arrays, extra: Any = ()) -> str:
    """SHA-256 of ``arrays`` (dtype, shape and bytes of each, in order) and ``repr(extra)``."""
    h = hashlib.sha256(repr(extra).encode())
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(repr((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class FitMemo:
    """Least-recently-used memo: ``get_or_fit(key, fit)`` returns ``(value, fresh)``.

    A raised exception of ``failures`` is memoised as the result too (the same inputs fail
    the same way) and returned, not raised: callers decide what a failure costs."""

    def __init__(self, maxsize: int, failures: tuple[type[BaseException], ...] = ()):
        self.maxsize = int(maxsize)
        self.failures = failures
        self.entries: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._running: dict[Hashable, threading.Event] = {}
        _MEMOS.append(self)

    def get_or_fit(self, key: Hashable, fit: Callable[[], Any]) -> tuple[Any, bool]:
        if not _ENABLED[0]:
            self.misses += 1
            return self._run(fit), True
        while True:
            with self._lock:
                if key in self.entries:
                    self.entries.move_to_end(key)
                    self.hits += 1
                    return self.entries[key], False
                running = self._running.get(key)
                if running is None:
                    self._running[key] = threading.Event()
                    self.misses += 1
                    break
            running.wait()  # another thread fits it; if that fit was interrupted, fit here
        try:
            value = self._run(fit)
            self.put(key, value)
        finally:
            with self._lock:
                self._running.pop(key).set()
        return value, True

    def _run(self, fit: Callable[[], Any]) -> Any:
        try:
            return fit()
        except self.failures as exc:
            return exc

    def put(self, key: Hashable, value: Any) -> None:
        if not _ENABLED[0]:
            return
        with self._lock:
            self.entries[key] = value
            self.entries.move_to_end(key)
            while len(self.entries) > self.maxsize:
                self.entries.popitem(last=False)

    def __contains__(self, key: Hashable) -> bool:
        return _ENABLED[0] and key in self.entries

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()
            self.hits = self.misses = 0


def clear_memos() -> None:
    """Forget every memoised fit of every memo."""
    for m in _MEMOS:
        m.clear()


@contextlib.contextmanager
def memo_disabled() -> Iterator[None]:
    """Inside the block every fit runs afresh and nothing is memoised."""
    old = _ENABLED[0]
    _ENABLED[0] = False
    try:
        yield
    finally:
        _ENABLED[0] = old
