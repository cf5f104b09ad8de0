"""One compiled NUTS program per model shape, reused across families, seeds and datasets.

``numpyro.infer.MCMC.run`` compiles two XLA programs per call (the chains' initialisation
and the warm-up + sampling loop) and, in the pinned NumPyro, compiles them again on every
call, even with ``jit_model_args=True`` and the same ``MCMC`` object: its loop function is
rebuilt per call, so JAX's cache never hits. A calibration check that samples ten
simulated datasets, or a leave-one-family-out loop, paid that compilation ten times.

:func:`run_nuts` instead traces the whole of ``MCMC.run`` (initialisation, adaptation,
sampling, all chains vectorised) inside one ``jax.jit`` whose arguments are the data
arrays, the PRNG key and the starting values. The program depends only on the model
function, its static settings (``static``: plate sizes, solver choice, flags), the
sampler settings and the shapes of the data, so a second family, seed or simulated
dataset of the same shapes reuses it. Data that vary in size (running-coupling pairs, a
family's number of models) are padded to a common shape with a mask by the callers
(:func:`capedyn.inference.models.pad_pairs`, :func:`~capedyn.inference.models.pad_models`),
never closed over.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["NutsDraws", "run_nuts", "compiled_programs"]

_EXTRA_FIELDS = ("diverging", "num_steps")


@dataclass(frozen=True)
class NutsDraws:
    """Draws of one NUTS run, grouped by chain: ``samples`` site → (chains, draws, ...)
    (latent and deterministic sites), ``extra`` ``diverging`` and ``num_steps`` →
    (chains, draws)."""

    samples: dict[str, np.ndarray]
    extra: dict[str, np.ndarray]


@functools.lru_cache(maxsize=32)
def _program(model: Callable, static: tuple, chains: int, samples: int, warmup: int,
             target_accept: float, dense_mass: bool, with_init: bool):
    """The jitted sampler for one (model, static settings, sampler settings); JAX's own
    cache then keys it by the shapes and dtypes of the data."""
    import jax
    from numpyro.infer import MCMC, NUTS, init_to_median, init_to_value

    bound = functools.partial(model, **dict(static))

    def nuts_sampler(rng_key, init_values, data):
        init = init_to_value(values=init_values) if with_init else init_to_median()
        kernel = NUTS(bound, target_accept_prob=target_accept, init_strategy=init,
                      dense_mass=dense_mass)
        mcmc = MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=chains,
                    chain_method="vectorized", progress_bar=False)
        mcmc.run(rng_key, extra_fields=_EXTRA_FIELDS, **data)
        return mcmc.get_samples(group_by_chain=True), mcmc.get_extra_fields(group_by_chain=True)

    return jax.jit(nuts_sampler)


def compiled_programs() -> int:
    """How many distinct sampler programs this process holds (one per model and settings;
    JAX compiles each once per data shape)."""
    return _program.cache_info().currsize


def run_nuts(model: Callable, data: Mapping[str, Any], *, static: Mapping[str, Any] | None = None,
             chains: int, samples: int, warmup: int, seed: int, target_accept: float,
             dense_mass: bool = False, init_values: Mapping[str, Any] | None = None) -> NutsDraws:
    """NUTS on ``model(**data, **static)`` with vectorised chains, through the cached
    compiled program of :func:`_program`.

    ``data``: the model's array arguments (a pytree of arrays, None allowed), traced, so
    new values of the same shapes reuse the program; ``static``: hashable settings fixed
    at compile time (plate sizes, strings, flags); ``init_values``: starting values by
    site name (constrained space), or None for NumPyro's ``init_to_median``."""
    import jax

    key = tuple(sorted((static or {}).items()))
    program = _program(model, key, int(chains), int(samples), int(warmup), float(target_accept),
                       bool(dense_mass), init_values is not None)
    draws, extra = program(jax.random.PRNGKey(int(seed)),
                           None if init_values is None else dict(init_values), dict(data))
    draws, extra = jax.block_until_ready((draws, extra))  # time the whole run
    return NutsDraws(samples={k: np.asarray(v) for k, v in draws.items()},
                     extra={k: np.asarray(v) for k, v in extra.items()})
