"""Text that comes from input files: names, numbers written as text, and CSV cells.

* A name (model, family, lab, source) must be printable text on one line: control
  characters (newlines, tabs, escapes) and invisible or direction-changing characters
  (zero-width spaces, right-to-left overrides, ...) are refused, because they change how
  a name prints without changing what it is (``Pythia\\u200b`` prints as ``Pythia`` but is
  another family) or let a name leave its table row. Names are compared in Unicode NFC.
* A number written as text is a plain decimal (``7``, ``0.07``, ``1e-3``): Python's
  ``1_000`` is refused.
* Sizes in billions of parameters lie in :data:`PARAMS_B_RANGE`, which catches unit
  mistakes (a raw count 7e9 for 7B).
* A CSV cell that a spreadsheet would run as a formula (beginning with ``=``, ``+``, ``-``,
  ``@``, tab or carriage return) is written with a leading ``'``; the loaders read it
  back without it, so names survive the round trip.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["name_problem", "clean_name", "is_number_text", "PARAMS_B_RANGE",
           "params_b_problem", "csv_cell", "from_csv_cell"]

PARAMS_B_RANGE: tuple[float, float] = (1e-4, 1e4)
"""Plausible model sizes in billions of parameters: 100 thousand to 10 trillion (a larger
number is almost surely a parameter count, 1.24e9 for 1.24B)."""

_NUMBER = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)",
                     re.IGNORECASE)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def name_problem(text: str) -> str | None:
    """Why ``text`` cannot be a name (one clause), or None when it can."""
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            kind = ("a line break" if ch in "\n\r\x0b\x0c\x85\u2028\u2029" else
                    "a control character" if cat == "Cc" else
                    "an invisible or direction-changing character" if cat == "Cf" else
                    "a character that is not printable text")
            label = " " + unicodedata.name(ch) if unicodedata.name(ch, "") else ""
            return f"contains {kind} (U+{ord(ch):04X}{label}) at position {i + 1}"
    return None


def clean_name(text: str) -> str:
    """A name as compared and printed: surrounding spaces removed, Unicode NFC."""
    return unicodedata.normalize("NFC", str(text).strip())


def is_number_text(text: str) -> bool:
    """Whether ``text`` is a plain decimal number (or nan/inf, refused later as not finite)."""
    return bool(_NUMBER.fullmatch(text.strip()))


def positive_count(text: str) -> int | None:
    """``text`` as a whole number >= 1 (a count of threads, devices ...), or None."""
    try:
        n = int(str(text).strip())
    except ValueError:
        return None
    return n if n >= 1 else None


def params_b_problem(value: float) -> str | None:
    """Why ``value`` (billions of parameters) is implausible, or None."""
    lo, hi = PARAMS_B_RANGE
    if value > hi:
        hint = (f"; {value:g} looks like a raw parameter count: give billions "
                f"({value:g} parameters = {value / 1e9:g})" if 1e6 <= value <= 1e15 else "")
        return f"size {value:g} billion is above {hi:g} billion{hint}"
    if value < lo:
        return (f"size {value:g} billion is below {lo:g} billion (100 thousand parameters); "
                "sizes are in billions, e.g. 0.07 for 70M")
    return None


def _guarded(text: str) -> bool:
    return text.startswith("'") and text[1:].startswith((*_FORMULA_START, "'"))


def csv_cell(text: str) -> str:
    """``text`` made safe to open in a spreadsheet (a formula-like start gets a ``'``;
    so does a text :func:`from_csv_cell` would otherwise shorten)."""
    return "'" + text if text.startswith(_FORMULA_START) or _guarded(text) else text


def from_csv_cell(text: str) -> str:
    """Undo :func:`csv_cell`."""
    if _guarded(text):
        return text[1:]
    return text
