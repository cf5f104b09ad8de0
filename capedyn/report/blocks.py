"""The report's document model: typed blocks (headings, paragraphs, a call-out, bullet
lists, tables, figures) whose text is a sequence of typed spans. :class:`Report`
(:mod:`capedyn.report.document`) holds them; :mod:`~capedyn.report.md_writer` and
:mod:`~capedyn.report.html_writer` write them as ``report.md`` and ``report.html``.

A span is either text capedyn's templates wrote (:class:`Text`, trusted), a value printed
from the results (:class:`Value`: names, notes, numbers), or a bold or code mark around
spans. A :class:`Value` is always text: the HTML escapes it (markupsafe) and the Markdown
backslash-escapes what Markdown would read as markup, so a name cannot become a heading, a
link, an image or an element in either file. A figure is a file inside the run's own
``figures/`` folder; any other path is refused.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

from .._errors import InputError
from .formatting import numeric_text

__all__ = ["Text", "Value", "Strong", "Code", "Heading", "Paragraph", "Callout", "Bullets",
           "Table", "Figure", "Block", "Span", "Inline", "strong", "code", "inline",
           "figure_path", "run_figure", "embedded_png", "cell_class", "plain_text"]


# ------------------------------------------------------------------ spans

@dataclass(frozen=True)
class Text:
    """Text the report's own templates wrote (may hold Markdown punctuation as text)."""
    text: str


@dataclass(frozen=True)
class Value:
    """A value printed into the report (a number, a name, a note): text, never markup."""
    text: str


@dataclass(frozen=True)
class Strong:
    spans: tuple["Span", ...]


@dataclass(frozen=True)
class Code:
    spans: tuple["Span", ...]


Span = Union[Text, Value, Strong, Code]
Inline = tuple[Span, ...]


def strong(*parts: str | Span) -> Strong:
    """Bold text (plain strings are values: shown as text)."""
    return Strong(inline(parts))


def code(*parts: str | Span) -> Code:
    """Code text (plain strings are values: shown as text)."""
    return Code(inline(parts))


def inline(parts: str | Span | Iterable[str | Span] | None) -> Inline:
    """Spans from a string (one :class:`Value`), a span, or a sequence of both."""
    if parts is None:
        return ()
    if isinstance(parts, (str, Text, Value, Strong, Code)):
        parts = (parts,)
    return tuple(Value(p) if isinstance(p, str) else p for p in parts)


# ------------------------------------------------------------------ blocks

@dataclass(frozen=True)
class Heading:
    level: int
    spans: Inline


@dataclass(frozen=True)
class Paragraph:
    spans: Inline


@dataclass(frozen=True)
class Callout:
    spans: Inline


@dataclass(frozen=True)
class Bullets:
    items: tuple[Inline, ...]


@dataclass(frozen=True)
class Table:
    columns: tuple[Inline, ...]
    rows: tuple[tuple[Inline, ...], ...]
    caption: Inline | None = None


@dataclass(frozen=True)
class Figure:
    path: str               # figures/NAME.png, relative to the run folder
    caption: Inline


Block = Union[Heading, Paragraph, Callout, Bullets, Table, Figure]

_FIGURE_PATH = re.compile(r"figures/[A-Za-z0-9_-]+\.png")
"""The only figure paths a report names: the run's own ``figures/NAME.png``."""


def figure_path(relpath: str) -> str:
    """``relpath`` when it names a PNG directly inside ``figures/``; else InputError."""
    if not _FIGURE_PATH.fullmatch(str(relpath)):
        raise InputError(f"report figure {str(relpath)!r} is not a file of the run's own "
                         "figures/ folder (figures/NAME.png); only those are shown")
    return str(relpath)


def run_figure(root: Path, relpath: str) -> Path:
    """The PNG ``relpath`` names, resolved (symbolic links followed) to a regular file
    inside ``root/figures``; anything else is an InputError."""
    folder = (root / "figures").resolve()
    target = (root / figure_path(relpath)).resolve()
    if target.parent != folder or not target.is_file():
        raise InputError(f"report figure {str(relpath)!r} does not resolve to a file inside "
                         f"'{folder}'; only the run's own figures are embedded")
    return target


def embedded_png(root: Path, relpath: str) -> str:
    """The ``data:`` URI of one of the run's own figures."""
    data = base64.b64encode(run_figure(root, relpath).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def cell_class(spans: Inline) -> str:
    """``num`` for a cell that reads as a number (right-aligned in HTML), else ``txt``."""
    return "num" if numeric_text(plain_text(spans)) else "txt"


def plain_text(spans: Inline) -> str:
    """The text of ``spans`` without any mark."""
    return "".join(s.text if isinstance(s, (Text, Value)) else plain_text(s.spans)
                   for s in spans)

