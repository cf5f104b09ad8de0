"""Runs one background job of the explorer in its own low-priority process.

Protocol: the parent writes one pickle ``(function, args, cache_dir)`` to stdin
(``cache_dir``: the parent's persistent compilation cache folder, or None); the worker answers
on stdout with length-prefixed pickles ``("progress", x)``, then ``("done", result)`` or
``("failed", message)``. Anything the job prints goes to stderr. A plain subprocess rather
than multiprocessing: a spawned child would re-run the parent's main module, which inside
a Streamlit server is the app script.
"""

from __future__ import annotations

import os
import pickle
import sys


def _send(out, message) -> None:
    data = pickle.dumps(message)
    out.write(len(data).to_bytes(8, "little") + data)
    out.flush()


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints must not corrupt the message stream
    try:
        os.nice(19)  # the page's own work comes first
    except OSError:
        pass
    fn, args, cache_dir = pickle.load(sys.stdin.buffer)
    if cache_dir:  # the parent's compilation cache (capedyn._cache): never a failure
        try:
            from capedyn._cache import enable_compilation_cache

            enable_compilation_cache(cache_dir)
        except Exception:  # noqa: BLE001 - a cache is an optimisation
            pass
    try:
        result = fn(*args, lambda v: _send(out, ("progress", float(v))))
        _send(out, ("done", result))
    except Exception as exc:
        _send(out, ("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        out.close()


if __name__ == "__main__":
    main()
