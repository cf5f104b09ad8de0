"""The report as a document: :class:`Report`, a title and a list of typed blocks
(:mod:`capedyn.report.blocks`), written twice: as Markdown (``report.md``) and as one
self-contained HTML page (``report.html``, the run's own figures embedded as base64 PNG).

A block's text is a sequence of spans: text capedyn's templates wrote, values printed from
the results (names, notes, numbers: always text, escaped in both files), and bold or code
marks. A figure is a file inside the run's own ``figures/`` folder; any other path is
refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from .blocks import (
    Block, Bullets, Callout, Code, Figure, Heading, Paragraph, Span, Strong, Table, Text,
    Value, code, figure_path, inline, plain_text, strong,
)
from .formatting import cell
from .html_writer import document_html
from .md_writer import document_markdown

__all__ = ["Report", "Text", "Value", "Strong", "Code", "Heading", "Paragraph", "Callout",
           "Bullets", "Table", "Figure", "strong", "code", "plain_text"]


class Report:
    """A document of typed blocks, rendered to Markdown and to self-contained HTML.

    Strings given to the building methods are shown as text (never read as markup); use
    :func:`strong` and :func:`code` for marks."""

    def __init__(self, title: str, blocks: Sequence[Block] = ()):
        self.title = title
        self.blocks: list[Block] = list(blocks)

    def heading(self, text: str | Span | Sequence, level: int = 2) -> None:
        self.blocks.append(Heading(level, inline(text)))

    def para(self, text: str | Span | Sequence) -> None:
        self.blocks.append(Paragraph(inline(text)))

    def callout(self, text: str | Span | Sequence) -> None:
        self.blocks.append(Callout(inline(text)))

    def bullets(self, items: Iterable[str | Span | Sequence]) -> None:
        self.blocks.append(Bullets(tuple(inline(i) for i in items)))

    def table(self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
              caption: str | Span | Sequence | None = None) -> None:
        rows = list(rows)
        cols = list(columns or (rows[0].keys() if rows else []))
        body = tuple(tuple(inline(cell(r.get(c))) for c in cols) for r in rows)
        self.blocks.append(Table(tuple(inline(str(c)) for c in cols), body,
                                 inline(caption) if caption is not None else None))

    def figure(self, relpath: str, caption: str | Span | Sequence) -> None:
        self.blocks.append(Figure(figure_path(relpath), inline(caption)))

    def to_markdown(self) -> str:
        return document_markdown(self)

    def to_html(self, root: Path) -> str:
        """The page; figures are read from ``root/figures`` (InputError for a figure that
        does not resolve to a regular file there)."""
        return document_html(self, Path(root))
