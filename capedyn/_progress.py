"""Progress bars on stderr for anything that runs more than a few seconds (a thin tqdm wrapper).

``enabled``: ``None`` shows the bar only when stderr is a terminal (quiet in logs, pipes and
test runs); ``True`` forces it; ``False`` hides it.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def stderr_is_terminal() -> bool:
    """True when stderr is an interactive terminal."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def resolve(enabled: bool | None) -> bool:
    """Whether a bar with this ``enabled`` setting is shown (None: only on a terminal)."""
    return stderr_is_terminal() if enabled is None else bool(enabled)


class Progress:
    """``with Progress(total, "fit") as p: p.update(k, loss=...)``.

    ``update(done, **info)`` takes the absolute number of finished units (not an
    increment) and shows ``info`` after the bar (floats to four significant digits).
    ``every``: the least number of seconds between two redraws.
    """

    def __init__(self, total: int, label: str, enabled: bool | None = None,
                 every: float = 0.5):
        self.total, self.label, self.every = int(total), label, every
        self.enabled = resolve(enabled)
        self._bar: Any = None

    def __enter__(self) -> "Progress":
        self._bar = tqdm(total=self.total, desc=self.label, file=sys.stderr,
                         disable=not self.enabled, mininterval=self.every, leave=True,
                         dynamic_ncols=True)
        return self

    def update(self, done: int, **info: Any) -> None:
        if not self.enabled:
            return
        bar = self._bar if self._bar is not None else self.__enter__()._bar
        if info:
            bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v)
                             for k, v in info.items()}, refresh=False)
        step = int(done) - bar.n
        if step > 0:
            bar.update(step)
        elif step < 0:  # restarted count: move the bar back
            bar.n = int(done)
            bar.refresh()

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            bar = self._bar
            if exc[0] is None and bar.n < bar.total:  # done early (a fit that converged):
                bar.refresh()                         # show where it stopped, then end
                bar.total = bar.n                     # the bar full, not at 20%
                bar.refresh()
            bar.close()
            self._bar = None
