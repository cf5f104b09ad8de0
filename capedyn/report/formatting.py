"""How numbers are written in the report: significant digits, intervals, paper values, and
table cells. Used as Jinja2 filters by :mod:`capedyn.report.render`."""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np


def fmt(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (at least one decimal for |v| < 1000);
    None/NaN as an en dash."""
    if v is None:
        return "–"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = max(digits - 1 - mag, 0)
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{decimals}f}"


def fmt_ci(ci: Sequence[float] | None, digits: int = 3, unit: str = "") -> str:
    """An interval ``[lo, hi]`` with :func:`fmt`; None as an en dash."""
    if ci is None:
        return "–"
    lo, hi = ci
    return f"[{fmt(lo, digits)}{unit}, {fmt(hi, digits)}{unit}]"


def paper(v: Any, unit: str = "") -> str:
    """A paper reference value exactly as published (no re-rounding)."""
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(paper(x, unit) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}{unit}"
    return f"{v}{unit}"


def cell(v: Any) -> str:
    """A table cell: None as an en dash, booleans as yes/no, floats with :func:`fmt`,
    lists as ``[a, b]``, anything else as its text."""
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return fmt(float(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(cell(x) for x in v) + "]"
    return str(v)


def numeric_text(s: str) -> bool:
    """Whether a rendered cell reads as a number (right-aligned in HTML)."""
    return bool(re.fullmatch(r"[-+−]?[\d.,]+(e[-+]?\d+)?( ?[%B])?", str(s).strip()))
