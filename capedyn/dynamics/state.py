"""The bounded state transform and the degree-2 polynomial library shared by every ODE.

Scores live in [0, 100] with a chance floor below which a benchmark carries no signal.
Dynamics are written for the latent state

    z_k = logit((s_k - floor_k) / (100 - floor_k))

so any finite z maps back inside (floor_k, 100): long extrapolations cannot leave the
valid range. Floors sit ten points below each benchmark's chance rate (HellaSwag, ARC and
MMLU are 4-way, chance 25; WinoGrande is 2-way, chance 50; TruthfulQA MC2 taken as 20)
because small models do score a few points under chance (Cerebras-GPT-111M: ARC 20.2,
WinoGrande 47.8). The learned field, SINDy and the baselines all use this one transform
and the one polynomial library below, so their terms can be compared one to one.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..data.tables import BENCHMARKS

CHANCE = {"hellaswag": 25.0, "truthfulqa": 20.0, "arc": 25.0, "winogrande": 50.0, "mmlu": 25.0}
FLOOR_SLACK = 10.0
FLOORS = np.array([CHANCE[b] - FLOOR_SLACK for b in BENCHMARKS])
"""Lower bound of each score (percent) in the order of ``BENCHMARKS``."""
CEILING = 100.0
EPS = 1e-6

N_STATE = len(BENCHMARKS)
QUADRATIC_PAIRS: tuple[tuple[int, int], ...] = tuple(
    itertools.combinations_with_replacement(range(N_STATE), 2))
N_FEATURES = 1 + N_STATE + len(QUADRATIC_PAIRS)
"""Library size: constant, 5 linear, 15 quadratic = 21 (pysindy PolynomialLibrary(degree=2) order)."""
_PAIR_LEFT, _PAIR_RIGHT = (np.array(side) for side in zip(*QUADRATIC_PAIRS))

SHORT = {"hellaswag": "HS", "truthfulqa": "TQA", "arc": "ARC", "winogrande": "WG", "mmlu": "MMLU"}


def _xp(a):
    """numpy for numpy input, jax.numpy for JAX arrays and tracers."""
    if isinstance(a, np.ndarray) or np.isscalar(a) or isinstance(a, (list, tuple)):
        return np
    import jax.numpy as jnp
    return jnp


def to_state(scores):
    """Percent scores (..., 5) → latent state z (..., 5). Works on numpy and JAX arrays."""
    xp = _xp(scores)
    s = xp.asarray(scores)
    floors = FLOORS if xp is np else xp.asarray(FLOORS, dtype=xp.result_type(s, 1.0))  # no f32/f64 mixing
    u = (s - floors) / (CEILING - floors)
    u = xp.clip(u, EPS, 1.0 - EPS)
    return xp.log(u) - xp.log1p(-u)


def from_state(z):
    """Latent state z (..., 5) → percent scores (..., 5), always inside (floor, 100)."""
    xp = _xp(z)
    z = xp.asarray(z)
    u = 1.0 / (1.0 + xp.exp(-z))
    floors = FLOORS if xp is np else xp.asarray(FLOORS, dtype=u.dtype)  # no f32/f64 mixing
    return floors + (CEILING - floors) * u


def polynomial_features(z):
    """Library Θ(z) of shape (..., 21): [1, z_0..z_4, z_i z_j for i ≤ j] in pysindy's order."""
    xp = _xp(z)
    z = xp.asarray(z)
    ones = xp.ones(z.shape[:-1] + (1,), dtype=z.dtype)
    # two gathers, not fifteen slices: the vector field runs this at every solver stage,
    # and the smaller program compiles and runs faster inside JAX's solves
    quad = z[..., _PAIR_LEFT] * z[..., _PAIR_RIGHT]
    return xp.concatenate([ones, z, quad], axis=-1)


def feature_names(symbols=None) -> list[str]:
    """Readable names of the 21 library terms, e.g. ``'1', 'HS', 'HS*TQA'``."""
    sym = list(symbols) if symbols is not None else [SHORT[b] for b in BENCHMARKS]
    quad = [f"{sym[i]}^2" if i == j else f"{sym[i]}*{sym[j]}" for i, j in QUADRATIC_PAIRS]
    return ["1", *sym, *quad]
