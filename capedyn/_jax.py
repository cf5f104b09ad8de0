"""JAX set-up done at the library boundary (fits, solves, bootstraps), not on import."""

from __future__ import annotations


def enable_x64() -> None:
    """Switch JAX to float64; idempotent. Called by every public entry point that fits."""
    import jax

    if not jax.config.read("jax_enable_x64"):
        jax.config.update("jax_enable_x64", True)
