"""The ledger of the generalisation discipline (``docs/protocol.md``): each method's design
and how many times it was evaluated on the outer splits of P2. One structured place,
``design_ledger.csv`` beside this module, read by the report and matched by the table in
``docs/protocol.md`` (a test keeps the two equal). A count is text: designs that predate the
rule are recorded as far as the history goes."""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["LEDGER_COLUMNS", "design_ledger", "ledger_markdown"]

LEDGER_COLUMNS = ("method", "design", "p2_evaluations")
"""The method (a registry name, or a group), its design in a phrase, and the number of
outer-split (P2) evaluations it went through."""


def design_ledger() -> pd.DataFrame:
    """The ledger as a table of :data:`LEDGER_COLUMNS` (every cell text)."""
    with resources.files(__package__).joinpath("design_ledger.csv").open(encoding="utf-8") as fh:
        df = pd.read_csv(fh, dtype=str, keep_default_na=False)
    return df[list(LEDGER_COLUMNS)]


def ledger_markdown() -> str:
    """The ledger as the Markdown table of ``docs/protocol.md`` (a registry name in code)."""
    lines = ["| method | design | outer-split (P2) evaluations |", "|---|---|---|"]
    for r in design_ledger().itertuples(index=False):
        name = r.method if " " in r.method else f"`{r.method}`"
        lines.append(f"| {name} | {r.design} | {r.p2_evaluations} |")
    return "\n".join(lines)
