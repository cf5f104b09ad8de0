"""The blocks of the report from its templates' layout.

The templates (``templates/*.md.j2``) lay a section out in the small Markdown subset below;
while they render, every value they print (a number, a name, a note) is held out of the
text as a numbered slot (see :mod:`capedyn.report.render`). What is read here is therefore
only text capedyn's templates wrote, with slots where values go: a value can never open or
close a block, a table cell, a mark or a figure, and it enters the document as a
:class:`~capedyn.report.blocks.Value` span, i.e. as text.

Blocks are separated by blank lines; a block is a heading (``#``), a call-out (``> ``), a
bullet list (``- ``), a table (``|`` rows, captioned by an ``*italic*`` line just above
it), a figure (``![alt](figures/NAME.png)``, captioned by an ``*italic*`` line just below
it), or else a paragraph, whose lines are joined by single spaces. Inside a block,
``**bold**`` and ```code``` are the only marks.
"""

from __future__ import annotations

import re
from typing import Sequence

from .blocks import (
    Block, Bullets, Callout, Code, Figure, Heading, Inline, Paragraph, Strong, Table, Text,
    Value, figure_path,
)
from .document import Report

__all__ = ["SLOT", "slot_token", "read_layout"]

SLOT = re.compile("\ue000(\\d+)\ue001")
"""Where a printed value stands in the layout (characters of Unicode's private use area,
which no template writes)."""


def slot_token(index: int) -> str:
    return f"\ue000{index}\ue001"


def read_layout(layout: str, slots: Sequence[str]) -> Report:
    """The document the layout describes, with ``slots[i]`` standing at slot ``i``."""
    chunks = _chunks(layout)
    title = ""
    if chunks and len(chunks[0]) == 1 and chunks[0][0].startswith("# "):
        title = _plain(chunks.pop(0)[0][2:], slots)
    doc = Report(title)
    i = 0
    while i < len(chunks):
        block, used = _block(chunks, i, slots)
        doc.blocks.append(block)
        i += used
    return doc


def _chunks(layout: str) -> list[list[str]]:
    """The non-blank lines of each block (stripped)."""
    chunks: list[list[str]] = [[]]
    for line in layout.splitlines():
        if line.strip():
            chunks[-1].append(line.strip())
        elif chunks[-1]:
            chunks.append([])
    return [c for c in chunks if c]


_HEADING = re.compile(r"(#{1,6}) (.+)")
_FIGURE = re.compile(r"!\[[^\]]*\]\((figures/[A-Za-z0-9_-]+\.png)\)")


def _block(chunks: list[list[str]], i: int, slots: Sequence[str]) -> tuple[Block, int]:
    """The block starting at chunk ``i`` and the number of chunks it takes."""
    lines = chunks[i]
    after = chunks[i + 1] if i + 1 < len(chunks) else None
    head, fig, caption = _HEADING.fullmatch(lines[0]), _FIGURE.fullmatch(lines[0]), _caption(lines)
    if head and len(lines) == 1:
        return Heading(len(head.group(1)), spans(head.group(2), slots)), 1
    if lines[0].startswith(">"):
        return Callout(spans(" ".join(line[1:].strip() for line in lines), slots)), 1
    if lines[0].startswith("- "):
        return Bullets(tuple(spans(item, slots) for item in _items(lines))), 1
    if lines[0].startswith("|"):
        return _table(lines, None, slots), 1
    if fig and len(lines) == 1:
        cap = _caption(after) if after else None
        return Figure(figure_path(fig.group(1)), spans(cap or "", slots)), 1 + (cap is not None)
    if caption is not None and after and (after[0].startswith("|") or after == ["(no rows)"]):
        if after[0].startswith("|"):
            return _table(after, spans(caption, slots), slots), 2
        return Table((), (), spans(caption, slots)), 2
    return Paragraph(spans(" ".join(lines), slots)), 1


def _items(lines: list[str]) -> list[str]:
    """Bullet items; a line not starting ``- `` continues the item above."""
    items: list[str] = []
    for line in lines:
        if line.startswith("- "):
            items.append(line[2:])
        else:
            items[-1] += "\n" + line
    return items


def _caption(lines: list[str]) -> str | None:
    """The text of a one-line ``*italic*`` block (a table or figure caption), else None."""
    if len(lines) == 1 and len(lines[0]) > 2 and lines[0][0] == lines[0][-1] == "*" \
            and lines[0][1] != "*" and lines[0][-2] != "*":
        return lines[0][1:-1]
    return None


_CELL_SEP = re.compile(r"(?<!\\)\|")
_RULE = re.compile(r"\|?[\s:|-]+\|?")


def _table(lines: list[str], caption: Inline | None, slots: Sequence[str]) -> Table:
    """A table block (the ``|---|`` line is skipped; ``\\|`` is a bar inside a cell)."""
    if len(lines) > 1 and _RULE.fullmatch(lines[1]):
        lines = [lines[0], *lines[2:]]
    rows = [tuple(spans(c, slots) for c in _cells(line)) for line in lines]
    return Table(rows[0], tuple(rows[1:]), caption)


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip().replace("\\|", "|") for c in _CELL_SEP.split(inner)]


_MARK = re.compile(r"\*\*(.+?)\*\*|`(.+?)`")


def spans(text: str, slots: Sequence[str]) -> Inline:
    """The spans of one block's text: ``**bold**`` (which may hold code), ```code```,
    template text and values."""
    out: list = []
    pos = 0
    for m in _MARK.finditer(text):
        out += _values(text[pos:m.start()], slots)
        if m.group(1) is not None:
            out.append(Strong(spans(m.group(1), slots)))
        else:
            out.append(Code(_values(m.group(2), slots)))
        pos = m.end()
    return tuple(out + _values(text[pos:], slots))


def _values(text: str, slots: Sequence[str]) -> list:
    """Template text with the values of its slots, as Text and Value spans."""
    out: list = []
    pos = 0
    for m in SLOT.finditer(text):
        if m.start() > pos:
            out.append(Text(text[pos:m.start()]))
        out.append(Value(slots[int(m.group(1))]))
        pos = m.end()
    if pos < len(text):
        out.append(Text(text[pos:]))
    return out


def _plain(text: str, slots: Sequence[str]) -> str:
    return SLOT.sub(lambda m: slots[int(m.group(1))], text)
