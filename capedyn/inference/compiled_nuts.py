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

When JAX sees several devices, the chains are split over them (:mod:`capedyn._devices`):
each device samples its own chains (at least two) with the same program; in the runs
checked (tests/test_sharding.py, the default coupling posterior) every chain's draws were
bitwise those of a one-device run. With ``one_program`` the devices share one program,
compiled once (``jax.shard_map``), rather than a program compiled per device: the
coupling-level sampler compiled in 6 s instead of twice 9 s on a 2-core machine, with
draws still bitwise those of one device (tests/test_sharding.py; the default and the
quick coupling posterior of ``capedyn reproduce``). That equality is checked per model,
not given: XLA optimises the shared program through its partitioning pipeline, and the
test suite's eight-schools model moved in its last bits. A model whose gradient runs
Equinox's checkpointed loop (the ODE-level model's Diffrax solve) cannot share a program:
Equinox's closure check rejects the shapes ``shard_map`` gives it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .._devices import (
    batch_mesh, map_over_shards, mesh_for, one_program_over_shards, padded_size,
    shard_batch, to_host,
)

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
             target_accept: float, dense_mass: bool, with_init: bool, mesh=None):
    """The jitted sampler for one (model, static settings, sampler settings); JAX's own
    cache then keys it by the shapes and dtypes of the data. ``chains`` per device;
    ``mesh``: the devices that share the one program (None: one device, or a program per
    device)."""
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

    if mesh is None:
        return jax.jit(nuts_sampler)
    return jax.jit(one_program_over_shards(nuts_sampler, mesh, n_args=1, n_total=3))


def compiled_programs() -> int:
    """How many distinct sampler programs this process holds (one per model and settings;
    JAX compiles each once per data shape)."""
    return _program.cache_info().currsize


def run_nuts(model: Callable, data: Mapping[str, Any], *, static: Mapping[str, Any] | None = None,
             chains: int, samples: int, warmup: int, seed: int, target_accept: float,
             dense_mass: bool = False, init_values: Mapping[str, Any] | None = None,
             one_program: bool = False) -> NutsDraws:
    """NUTS on ``model(**data, **static)`` with vectorised chains, through the cached
    compiled program of :func:`_program`.

    ``data``: the model's array arguments (a pytree of arrays, None allowed), traced, so
    new values of the same shapes reuse the program; ``static``: hashable settings fixed
    at compile time (plate sizes, strings, flags); ``init_values``: starting values by
    site name (constrained space), or None for NumPyro's ``init_to_median``;
    ``one_program``: on several devices, one program compiled once for all of them (for
    models that ``jax.shard_map`` accepts, see the module docstring), else one per device."""
    import jax

    key = tuple(sorted((static or {}).items()))
    rng_key, n_run = _chain_keys(jax.random.PRNGKey(int(seed)), int(chains))
    mesh = mesh_for(n_run) if n_run > 1 else None  # None: every chain on one device
    shared = mesh if one_program else None
    program = _program(model, key, n_run if mesh is None else n_run // mesh.size, int(samples),
                       int(warmup), float(target_accept), bool(dense_mass),
                       init_values is not None, shared)
    if mesh is not None and shared is None:  # each device samples its chains, own program
        program = map_over_shards(program, 1)
    draws, extra = program(rng_key, None if init_values is None else dict(init_values),
                           dict(data))
    draws, extra = jax.block_until_ready((draws, extra))  # time the whole run
    draws, extra = to_host((draws, extra))
    return NutsDraws(samples={k: v[:chains] for k, v in draws.items()},
                     extra={k: v[:chains] for k, v in extra.items()})


def _chain_keys(rng_key, chains: int):
    """(key or chain keys, number of chains run), the chains split over every device JAX
    sees (:mod:`capedyn._devices`). With several devices the chains' keys are made here,
    as ``MCMC.run`` makes them (``random.split(key, chains)``), and padded by repeating
    chains up to :func:`~capedyn._devices.padded_size` (the extra chains are dropped);
    with one device, or one chain, the single key goes in unchanged."""
    if batch_mesh() is None or chains < 2:
        return rng_key, chains
    import jax

    n_run = padded_size(chains)
    keys = jax.random.split(rng_key, chains)[np.arange(n_run) % chains]
    return shard_batch(keys, n_run), n_run
