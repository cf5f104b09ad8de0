"""Ctrl-C on the command line: one line on stderr and exit status 130, every time.

The first Ctrl-C raises :class:`KeyboardInterrupt` as usual, so ``finally`` blocks run
(staging folders are removed, locks released) and :func:`capedyn.cli.main` prints one line.
Python drops an exception raised inside a garbage-collector callback or a ``__del__``
("Exception ignored in ..."), which would let the run go on; such a lost interrupt is
delivered again, and if the process is still running :data:`GRACE_S` seconds after the
Ctrl-C (or at a second Ctrl-C) it prints the line and exits 130 at once.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

GRACE_S = 5.0
"""Seconds the clean-up after a Ctrl-C may take before the process exits regardless."""

INTERRUPTED_STATUS = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""


def interrupted_line(command: str | None) -> str:
    return f"capedyn {command or ''}".rstrip() + ": interrupted (Ctrl-C)"


@contextmanager
def one_line_interrupts(command: str | None) -> Iterator[None]:
    """Within the block, Ctrl-C behaves as described in the module docstring. A no-op
    outside the main thread or when someone else already handles SIGINT."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    state = {"hits": 0, "timer": None, "redeliver": 0, "in_hook": False}
    line = interrupted_line(command)

    def hard_exit() -> None:
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        finally:
            os._exit(INTERRUPTED_STATUS)

    def redeliver_later() -> None:
        state["redeliver"] += 1         # delivered again from outside the callback
        again = threading.Timer(0.01, _thread.interrupt_main)
        again.daemon = True
        again.start()

    def on_sigint(signum, frame):
        if state["redeliver"]:          # our own re-delivery of a lost Ctrl-C
            state["redeliver"] -= 1
        else:
            state["hits"] += 1
            if state["hits"] > 1:       # a second Ctrl-C: leave now
                hard_exit()
            timer = threading.Timer(GRACE_S, hard_exit)  # runs from the first Ctrl-C on
            timer.daemon = True
            timer.start()
            state["timer"] = timer
        if state["in_hook"]:            # raised here, Python would drop it once more
            redeliver_later()
            return
        raise KeyboardInterrupt

    previous_hook = sys.unraisablehook

    def on_unraisable(info):
        state["in_hook"] = True         # a Ctrl-C raised in here would be dropped too
        try:
            if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
                redeliver_later()       # swallowed by Python: deliver it again
            else:
                previous_hook(info)
        finally:
            state["in_hook"] = False

    signal.signal(signal.SIGINT, on_sigint)
    sys.unraisablehook = on_unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = previous_hook
        if state["timer"] is not None:
            state["timer"].cancel()
