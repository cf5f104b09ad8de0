"""A report document written as Markdown (``report.md``).

Text the templates wrote is written as it is; a value (a name, a note, a number) is
backslash-escaped wherever Markdown would read it as markup (emphasis, code, a link or an
image, raw HTML, an entity, a bare web address, a heading or list marker at its start), so
it reads as the same text and nothing else. Values that are only digits, signs, intervals
and units need no escape and are written unchanged."""

from __future__ import annotations

import re
from pathlib import Path

from .blocks import (
    Bullets, Callout, Figure, Heading, Inline, Paragraph, Strong, Table, Text,
    Value, plain_text,
)

__all__ = ["document_markdown", "md_escape"]

_NUMBERISH = re.compile(r"[\d\s.,+\-−–eE%B×≈∞\[\]]*")
_SPECIAL = re.compile(r"[\\`*\[\]&~@]|<(?=[A-Za-z/!?])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"
                      r"|(?<!\S)#|:(?=//)|(?<=www)\.")
"""What Markdown reads as markup inside a line: emphasis, code, links and images, a tag or
an autolink (``<`` before a letter, ``/``, ``!`` or ``?``; ``a <= b`` and ``->`` are text),
an entity, strikethrough, a heading's closing ``#`` and the starts of bare web and e-mail
addresses."""
_BLOCK_START = re.compile(r"[#=>]|[+-](?!\d)|\d+[.)](?!\d)")


_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def md_escape(text: str) -> str:
    """``text`` as Markdown that reads as exactly this text, on one line (a line break or
    control character becomes a space, so a value never leaves its row or paragraph)."""
    text = _BREAKS.sub(" ", text)
    if not _NUMBERISH.fullmatch(text):
        text = _SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    start = _BLOCK_START.match(text)
    if start:  # a heading, quote or list marker if the value began a line
        cut = start.end() - 1
        text = text[:cut] + "\\" + text[cut:]
    return text


def spans_md(spans: Inline | None) -> str:
    return "".join(_span_md(s) for s in spans or ())


def _span_md(span) -> str:
    if isinstance(span, Text):
        return span.text
    if isinstance(span, Value):
        return md_escape(span.text)
    if isinstance(span, Strong):
        return f"**{spans_md(span.spans)}**"
    return _code_md(plain_text(span.spans))


def _code_md(text: str) -> str:
    """A code span holding ``text`` verbatim (on one line): the fence is longer than any
    backtick run."""
    text = _BREAKS.sub(" ", text)
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _heading(b: Heading) -> list[str]:
    return ["#" * b.level + " " + spans_md(b.spans), ""]


def _paragraph(b: Paragraph) -> list[str]:
    return [spans_md(b.spans), ""]


def _callout(b: Callout) -> list[str]:
    return ["> " + line for line in spans_md(b.spans).splitlines()] + [""]


def _bullets(b: Bullets) -> list[str]:
    return [f"- {spans_md(item)}" for item in b.items] + [""]


def _row(cells: tuple[Inline, ...]) -> str:
    return "| " + " | ".join(spans_md(c).replace("|", "\\|") for c in cells) + " |"


def _table(b: Table) -> list[str]:
    out = [f"*{spans_md(b.caption)}*", ""] if b.caption else []
    if not b.rows:
        return out + ["(no rows)", ""]
    rule = "|" + "|".join("---" for _ in b.columns) + "|"
    return out + [_row(b.columns), rule, *(_row(r) for r in b.rows), ""]


def _figure(b: Figure) -> list[str]:
    alt = Path(b.path).stem.replace("_", " ")
    return [f"![{alt}]({b.path})", "", f"*{spans_md(b.caption)}*", ""]


_BLOCKS = {Heading: _heading, Paragraph: _paragraph, Callout: _callout, Bullets: _bullets,
           Table: _table, Figure: _figure}


def document_markdown(doc) -> str:
    """``doc`` (a :class:`~capedyn.report.document.Report`) as Markdown text."""
    out = [f"# {md_escape(doc.title)}", ""] if doc.title else []
    for block in doc.blocks:
        out += _BLOCKS[type(block)](block)
    return "\n".join(out).rstrip() + "\n"
