"""The phase label of a prompt from the cosine of its hidden state with the truth direction.

Thresholds (the original tool's labels, kept so results compare)::

    cosine < -0.1          severe tax
    -0.1 <= cosine < 0.1   mild tax
    0.1 <= cosine < 0.3    balanced
    0.3 <= cosine          bonus

The cosine is dimensionless, in [-1, 1]. The labels are a reading aid, not a calibrated
classifier: nothing here has been shown to separate prompts a model answers truthfully.
"""

from __future__ import annotations

import math

from .._errors import InputError

PHASE_THRESHOLDS: tuple[tuple[float, str], ...] = (
    (-0.1, "severe tax"), (0.1, "mild tax"), (0.3, "balanced"), (math.inf, "bonus"),
)
"""(upper bound, label) pairs: a cosine gets the first label whose bound exceeds it."""

TAX_PHASES = ("severe tax", "mild tax")


def phase_label(cosine: float) -> str:
    """The phase label of a cosine (see the module docstring for the thresholds)."""
    c = float(cosine)
    if math.isnan(c):
        raise InputError("cosine is NaN: the hidden state or the direction is zero")
    for bound, label in PHASE_THRESHOLDS:
        if c < bound:
            return label
    return PHASE_THRESHOLDS[-1][1]
