"""The algebraic phase classifier: a model is in the bonus phase when its TruthfulQA score
exceeds TQA_c = sqrt(0.187·HS) (scores as fractions), in the tax phase below; no model size
is needed. Scores in percent, 0-100."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InputError
from ..data.tables import check_percent_scores

CLASSIFIER_CONSTANT = 0.187
"""TQA_c = sqrt(0.187·HS), scores as fractions."""


@dataclass(frozen=True)
class PhaseResult:
    """Algebraic classifier output; arrays when the inputs were arrays.

    ``tqa_critical`` in percent, ``tqa_critical_fraction`` as a fraction, ``margin`` =
    TQA − TQA_c in points, ``phase`` "bonus" (TQA > TQA_c) or "tax".
    """

    tqa_critical: Any
    tqa_critical_fraction: Any
    margin: Any
    phase: Any


def phase_classifier(hs, tqa) -> PhaseResult:
    """TQA_c = sqrt(0.187·HS) with scores as fractions; inputs in percent.

    Scalars give scalar fields (``phase`` a str); arrays broadcast and give arrays.
    Raises :class:`~capedyn._errors.InputError` (a ValueError) for scores outside
    [0, 100] or non-finite, and when every score given is at most 1: fractions such as
    ``hs=0.78, tqa=0.357`` would otherwise be read as 0.78% and 0.357% and classified.
    """
    checked = check_percent_scores({"hs": hs, "tqa": tqa})
    h, q = checked["hs"], checked["tqa"]
    try:
        np.broadcast_shapes(h.shape, q.shape)
    except ValueError:
        raise InputError(f"hs and tqa have shapes {h.shape} and {q.shape}, which do not "
                         "broadcast") from None
    crit_frac = np.sqrt(CLASSIFIER_CONSTANT * h / 100.0)
    crit_pct = 100.0 * crit_frac
    margin = q - crit_pct
    phase = np.where(q / 100.0 > crit_frac, "bonus", "tax")
    if np.ndim(margin) == 0:
        return PhaseResult(float(crit_pct), float(crit_frac), float(margin), str(phase))
    return PhaseResult(crit_pct, crit_frac, margin, phase)
