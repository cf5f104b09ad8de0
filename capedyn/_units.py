"""Unit mistakes that every entry point refuses the same way: sizes given in parameters
instead of billions, sizes that contradict the size written in a model's name, and one
score written as a fraction among percentages."""

from __future__ import annotations

import math
import re

from ._text import PARAMS_B_RANGE, params_b_problem

MAX_PARAMS_B = PARAMS_B_RANGE[1]
"""Largest size accepted, in billions (:data:`capedyn._text.PARAMS_B_RANGE`)."""

NAME_SIZE_TOLERANCE = 0.35
"""A size may differ from the one in the model's name by this fraction (names round:
"pythia-410m" has 405M parameters, "opt-6.7b" 6.66B)."""

_NAME_SIZE = re.compile(r"(?:^|[-_./ ])(\d+(?:\.\d+)?)([mMbB])(?=$|[-_./ ])")


def parameter_count_hint(value: float) -> str:
    """What is wrong with a size above :data:`MAX_PARAMS_B` (the message the tables give)."""
    return params_b_problem(value) or f"size {value:g} billion is plausible"


def is_parameter_count(value: float) -> bool:
    """True when a size in billions is too large to be one (see :data:`MAX_PARAMS_B`)."""
    return math.isfinite(value) and value > MAX_PARAMS_B


def size_in_name(name: str) -> float | None:
    """The size a model's name states, in billions ('zeta-1b' → 1.0, 'acme-410m' → 0.41),
    or None when the name states none or more than one."""
    base = str(name).split("/")[-1]
    hits = _NAME_SIZE.findall(base)
    if len(hits) != 1:
        return None
    number, unit = hits[0]
    return float(number) / (1000.0 if unit.lower() == "m" else 1.0)


def name_size_mismatch(name: str, size_b: float) -> str | None:
    """A message when ``size_b`` (billions) contradicts the size in ``name``, else None."""
    stated = size_in_name(name)
    if stated is None or stated <= 0:
        return None
    if abs(size_b - stated) <= NAME_SIZE_TOLERANCE * stated:
        return None
    return f"size {size_b:g}B given for {name}, whose name says {stated:g}B"


def fraction_among_percent(values) -> int | None:
    """Index of the first score at most 1 in ``values`` (percentages, NaN for missing)
    when another score exceeds 1: a fraction written among percentages. None otherwise."""
    finite = [(i, float(v)) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if not finite or max(v for _, v in finite) <= 1.0:
        return None
    for i, v in finite:
        if v <= 1.0:
            return i
    return None
