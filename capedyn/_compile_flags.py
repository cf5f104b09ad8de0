"""XLA's CPU compiler set for capedyn's many small programs, in a process capedyn owns.

Most of a cold capedyn command is XLA compiling small float64 programs (a fixed-step ODE
solve inside a Levenberg–Marquardt step, a NUTS sampler over it). XLA's CPU backend
compiles their elementwise fusions with its MLIR "fusion emitters" by default; its older
emitters compile the same programs in less time. Measured on two cores, back to back
(``capedyn bench --stages fit,nested``): backend compilation of the default fit 3.35 s
→ 1.99 s, of the nested stage 5.49 s → 3.68 s, run times no slower; numbers the same to
rounding, which NUTS chains amplify to Monte Carlo differences (docs/architecture.md).

The flag is set only where capedyn owns the process (the command line, the test suite, a
script that opts in with :func:`enable_fast_compile`), never by the library, and never
when the user's ``XLA_FLAGS`` already names it: ``XLA_FLAGS=--xla_cpu_use_fusion_emitters=true``
keeps XLA's default. An XLA that does not know a flag aborts the process, so it is set
only on the jaxlib versions :data:`CHECKED_JAXLIB` allows.
"""

from __future__ import annotations

__all__ = ["FAST_COMPILE_FLAG", "CHECKED_JAXLIB", "fast_compile_for_own_process",
           "enable_fast_compile"]

FAST_COMPILE_FLAG = "--xla_cpu_use_fusion_emitters=false"
"""The XLA flag set (its name without the value is what a user's setting is matched by)."""

CHECKED_JAXLIB = ((0, 10), (0, 11))
"""[lowest, first excluded) jaxlib (major, minor) on which the flag is set: the releases on
which it was checked (0.10.2); elsewhere XLA keeps its default."""


def _jaxlib_version() -> tuple[int, int] | None:
    from importlib import metadata

    try:
        major, minor = metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (metadata.PackageNotFoundError, ValueError):
        return None


def fast_compile_for_own_process(environ=None, jaxlib_version=None,
                                 jax_running: bool | None = None) -> bool:
    """Add :data:`FAST_COMPILE_FLAG` to ``XLA_FLAGS`` before JAX starts its backend, unless
    JAX runs already, the user's ``XLA_FLAGS`` names the flag, or jaxlib is outside
    :data:`CHECKED_JAXLIB`. Returns whether the flag was added. ``environ``,
    ``jaxlib_version`` ((major, minor)) and ``jax_running`` default to this process's."""
    from ._devices import _own_process_state

    env, jax_running = _own_process_state(environ, jax_running)
    flags = env.get("XLA_FLAGS", "")
    name = FAST_COMPILE_FLAG.split("=")[0]
    version = _jaxlib_version() if jaxlib_version is None else tuple(jaxlib_version)
    lo, hi = CHECKED_JAXLIB
    if jax_running or name in flags or version is None or not lo <= version < hi:
        return False
    env["XLA_FLAGS"] = f"{flags} {FAST_COMPILE_FLAG}".strip()
    return True


def enable_fast_compile() -> bool:
    """Opt in, from a script that owns its process, to the XLA compiler setting the command
    line uses (:data:`FAST_COMPILE_FLAG`: the same numbers to rounding, compiled in less
    time). Call it before JAX computes anything; returns whether it was set. The library
    never calls it, so a notebook's XLA settings stay as they are."""
    return fast_compile_for_own_process()
