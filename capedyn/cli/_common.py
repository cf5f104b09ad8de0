"""Helpers shared by the command groups: forgiving name matching and the family option.

Names typed on the command line (families, models) match case-insensitively; a name that
matches nothing fails with one line that lists the closest known names ("did you mean").
"""

from __future__ import annotations

import argparse
import difflib
from typing import Any, Iterable, Sequence

from .._errors import CapedynError

FAMILY_OPTIONS = ("--families", "--family")
"""Every subcommand that takes families accepts both spellings as one option."""


class UnknownNameError(CapedynError, ValueError):
    """A name given on the command line matches no known family or model."""


def add_family_option(parser: argparse.ArgumentParser, *, dest: str, help: str,
                      metavar: str = "F[,G...]", **kwargs: Any) -> argparse.Action:
    """Add ``--families`` and ``--family`` as one option storing into ``dest``."""
    return parser.add_argument(*FAMILY_OPTIONS, dest=dest, metavar=metavar, help=help,
                               **kwargs)


def suggestions(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` known names close to ``name`` (case-insensitive), best first."""
    known = list(dict.fromkeys(str(k) for k in known))
    lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.strip().lower(), list(lower), n=n, cutoff=0.5)
    return [lower[c] for c in close]


def match_name(name: str, known: Sequence[str], *, what: str = "family",
               option: str = "--family") -> str:
    """The known name equal to ``name`` ignoring case and surrounding spaces.

    Raises :class:`UnknownNameError` naming ``option``, with the close matches first when
    there are any, then the known names."""
    known = list(dict.fromkeys(str(k) for k in known))
    key = name.strip()
    if key in known:
        return key
    hits = [k for k in known if k.lower() == key.lower()]
    if len(hits) == 1:
        return hits[0]
    close = suggestions(key, known)
    hint = f"known {what} names: {', '.join(known) or 'none'}"
    if close:
        hint = ("did you mean " + (close[0] if len(close) == 1 else
                                   ", ".join(close[:-1]) + " or " + close[-1]) + "? " + hint)
    raise UnknownNameError(f"{option}: no {what} named '{name}'; {hint}")


def match_families(names: Sequence[str] | None, known: Sequence[str], *,
                   option: str = "--family",
                   passthrough: Sequence[str] = ()) -> list[str] | None:
    """Canonical spelling of each family in ``names`` (None or empty stays None).

    Entries whose lower-case form is in ``passthrough`` (aliases such as ``@web``) are
    returned unchanged for the caller to expand."""
    if not names:
        return None
    keep = {p.lower() for p in passthrough}
    return list(dict.fromkeys(n if n.strip().lower() in keep else
                              match_name(n, known, what="family", option=option)
                              for n in names))


def table_families(df) -> list[str]:
    """Families of a base-model table in table order."""
    return [str(f) for f in dict.fromkeys(df["family"])]


def interval_levels(text: str | None, option: str = "--interval") -> tuple[float, ...] | None:
    """Nominal coverage levels given as "0.9" or "0.5,0.9" (None when not given), checked
    before any fit."""
    if text is None:
        return None
    from .._conformal import check_levels
    from .._errors import InputError

    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"{option} takes levels such as 0.9 or 0.5,0.9, got {text!r}") from None
    return check_levels(values, option)


# ------------------------------------------------------------------ numbers typed as options

def size_value(text: str, option: str) -> float:
    """A size in billions of parameters typed for ``option``: a plain decimal (not
    ``1_000``, ``nan`` or ``inf``) inside the plausible range the table loaders use
    (:data:`capedyn._text.PARAMS_B_RANGE`). Raises a one-line :class:`InputError`."""
    from .._errors import InputError
    from .._text import params_b_problem

    value = _plain_number(text, option, "sizes are billions of parameters, e.g. 6.9")
    if value <= 0:
        raise InputError(f"{option}: {text.strip()} must be a positive size in billions")
    problem = params_b_problem(value)
    if problem:
        raise InputError(f"{option}: {problem}")
    return value


def score_value(text: str, option: str) -> float:
    """A score in percent typed for ``option``: a plain decimal from 0 to 100. Raises a
    one-line :class:`InputError`."""
    from .._errors import InputError

    value = _plain_number(text, option, "scores are percent, e.g. 61.5")
    if not 0.0 <= value <= 100.0:
        raise InputError(f"{option}: {text.strip()} is outside [0, 100] (scores are percent)")
    return value


def _plain_number(text: str, option: str, unit: str) -> float:
    """``text`` as a finite float when it is a plain decimal (float() also takes 1_000)."""
    import math

    from .._errors import InputError
    from .._text import is_number_text

    t = str(text).strip()
    if not is_number_text(t):
        raise InputError(f"{option}: '{t}' is not a number ({unit})")
    if not math.isfinite(float(t)):
        raise InputError(f"{option}: {t} is not a finite number ({unit})")
    return float(t)
