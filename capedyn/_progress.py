"""A dependency-free progress line on stderr for anything that runs more than a few seconds."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total, "fit") as p: p.update(k, loss=...)``; silent when ``enabled`` is False."""

    def __init__(self, total: int, label: str, enabled: bool = True, every: float = 0.5):
        self.total, self.label, self.enabled, self.every = total, label, enabled, every
        self._t0 = self._last = time.perf_counter()

    def __enter__(self) -> "Progress":
        return self

    def update(self, done: int, **info) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self._last < self.every and done < self.total):
            return
        self._last = now
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
        sys.stderr.write(f"\r{self.label}: {done}/{self.total} [{now - self._t0:5.1f}s] {extra}   ")
        sys.stderr.flush()

    def __exit__(self, *exc) -> None:
        if self.enabled:
            sys.stderr.write(f"\r{self.label}: done in {time.perf_counter() - self._t0:.1f}s" + " " * 30 + "\n")
            sys.stderr.flush()
