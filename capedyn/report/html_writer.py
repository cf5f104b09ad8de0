"""A report document written as one self-contained HTML page
(``report.html``). Every piece of text is escaped by markupsafe; the only elements are the
ones written here, and the only images are the run's own figures, embedded as base64 PNG."""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup, escape

from .blocks import (
    Bullets, Callout, Figure, Heading, Inline, Paragraph, Strong, Table, Text,
    Value, cell_class, embedded_png, plain_text,
)

__all__ = ["document_html"]


def spans_html(spans: Inline | None) -> Markup:
    return Markup("").join(_span_html(s) for s in spans or ())


def _span_html(span) -> Markup:
    if isinstance(span, (Text, Value)):
        return escape(span.text)
    tag = "strong" if isinstance(span, Strong) else "code"
    return Markup("<{0}>{1}</{0}>").format(Markup(tag), spans_html(span.spans))


def _heading(b: Heading, root: Path) -> Markup:
    return Markup("<h{0}>{1}</h{0}>").format(int(b.level), spans_html(b.spans))


def _paragraph(b: Paragraph, root: Path) -> Markup:
    return Markup("<p>{}</p>").format(spans_html(b.spans))


def _callout(b: Callout, root: Path) -> Markup:
    return Markup('<div class="callout">{}</div>').format(spans_html(b.spans))


def _bullets(b: Bullets, root: Path) -> Markup:
    items = Markup("").join(Markup("<li>{}</li>").format(spans_html(i)) for i in b.items)
    return Markup("<ul>{}</ul>").format(items)


def _cells(cells: tuple[Inline, ...], tag: str) -> Markup:
    if tag == "th":
        return Markup("").join(Markup("<th>{}</th>").format(spans_html(c)) for c in cells)
    return Markup("").join(Markup('<td class="{}">{}</td>').format(cell_class(c), spans_html(c))
                           for c in cells)


def _table(b: Table, root: Path) -> Markup:
    cap = Markup("<caption>{}</caption>").format(spans_html(b.caption)) if b.caption else ""
    rows = Markup("").join(Markup("<tr>{}</tr>").format(_cells(r, "td")) for r in b.rows)
    return Markup("<table>{}<thead><tr>{}</tr></thead><tbody>{}</tbody></table>").format(
        cap, _cells(b.columns, "th"), rows)


def _figure(b: Figure, root: Path) -> Markup:
    return Markup('<figure><img alt="{}" src="{}"/><figcaption>{}</figcaption></figure>'
                  ).format(plain_text(b.caption), embedded_png(root, b.path),
                           spans_html(b.caption))


_BLOCKS = {Heading: _heading, Paragraph: _paragraph, Callout: _callout, Bullets: _bullets,
           Table: _table, Figure: _figure}


def document_html(doc, root: Path) -> str:
    """``doc`` (a :class:`~capedyn.report.document.Report`) as one HTML page; its
    figures are read from ``root/figures``."""
    parts = [Markup("<h1>{}</h1>").format(doc.title)] if doc.title else []
    parts += [_BLOCKS[type(b)](b, root) for b in doc.blocks]
    return _PAGE.format(title=escape(doc.title), body=Markup("\n").join(parts))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1000px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }}
h1 {{ border-bottom: 2px solid #444; padding-bottom: .2em; }}
h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .15em; margin-top: 2em; }}
table {{ border-collapse: collapse; margin: .8em 0 1.2em; font-size: .88em; }}
caption {{ caption-side: top; text-align: left; font-style: italic; padding-bottom: .3em; }}
th, td {{ border: 1px solid #ccc; padding: .25em .6em; }}
th {{ background: #f0f0f0; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tbody tr:nth-child(even) {{ background: #fafafa; }}
code {{ background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }}
figure {{ margin: 1em 0 1.6em; }}
figure img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ font-style: italic; font-size: .9em; color: #555; }}
.callout {{ background: #fff4ce; border-left: 6px solid #e0a800; padding: .6em 1em;
            margin: 1em 0; font-weight: 600; }}
</style></head>
<body>
{body}
</body></html>
"""
