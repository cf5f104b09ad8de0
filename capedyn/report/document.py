"""The report as a document: a list of blocks (headings, paragraphs, a call-out, bullet
lists, tables, figures) written both as Markdown and as one self-contained HTML page
(figures embedded as base64 PNG).

The report's templates write Markdown; :meth:`Report.from_markdown` reads back the small
set of blocks they use, so the HTML page is built from exactly the same text. No general
Markdown converter is involved: only the block forms :meth:`Report.to_markdown` writes are
recognised, and everything else is a paragraph.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .formatting import cell, numeric_text

__all__ = ["Report"]


@dataclass
class _Block:
    kind: str
    payload: Any


class Report:
    """A small document model rendered both to Markdown and to self-contained HTML."""

    def __init__(self, title: str):
        self.title = title
        self.blocks: list[_Block] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(_Block("h", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(_Block("p", text))

    def callout(self, text: str) -> None:
        self.blocks.append(_Block("callout", text))

    def bullets(self, items: Iterable[str]) -> None:
        self.blocks.append(_Block("ul", list(items)))

    def table(self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
              caption: str | None = None) -> None:
        rows = list(rows)
        cols = list(columns or (rows[0].keys() if rows else []))
        self.blocks.append(_Block("table", (cols, [[cell(r.get(c)) for c in cols]
                                                   for r in rows], caption)))

    def figure(self, relpath: str, caption: str) -> None:
        self.blocks.append(_Block("figure", (relpath, caption)))

    @classmethod
    def from_markdown(cls, text: str) -> "Report":
        """Read back the blocks :meth:`to_markdown` writes. Blocks are separated by blank
        lines; a block is a heading (``#``), a call-out (``> ``), a bullet list (``- ``), a
        table (``|`` rows, captioned by an ``*italic*`` line just above it), a figure
        (``![alt](path)``, captioned by an ``*italic*`` line just below it), or else a
        paragraph. The lines of a paragraph or a call-out are joined by single spaces (as
        Markdown reads them)."""
        chunks: list[list[str]] = [[]]
        for line in text.splitlines():
            if line.strip():
                chunks[-1].append(line.strip())
            elif chunks[-1]:
                chunks.append([])
        chunks = [c for c in chunks if c]
        title = ""
        if chunks and len(chunks[0]) == 1 and chunks[0][0].startswith("# "):
            title = chunks.pop(0)[0][2:]
        doc = cls(title)
        i = 0
        while i < len(chunks):
            lines = chunks[i]
            after = chunks[i + 1] if i + 1 < len(chunks) else None
            head = _HEADING.fullmatch(lines[0])
            fig = _FIGURE.fullmatch(lines[0])
            caption = _caption(lines)
            if head and len(lines) == 1:
                doc.heading(head.group(2), len(head.group(1)))
            elif lines[0].startswith(">"):
                doc.callout(" ".join(line[1:].strip() for line in lines))
            elif lines[0].startswith("- "):
                items: list[str] = []
                for line in lines:
                    if line.startswith("- "):
                        items.append(line[2:])
                    else:  # a continuation line of the item above
                        items[-1] += "\n" + line
                doc.bullets(items)
            elif lines[0].startswith("|"):
                doc.blocks.append(_Block("table", (*_table_rows(lines), None)))
            elif fig and len(lines) == 1:
                cap = _caption(after) if after else None
                doc.figure(fig.group(2), cap or "")
                i += cap is not None
            elif caption is not None and after and (after[0].startswith("|")
                                                    or after == ["(no rows)"]):
                cols, body = _table_rows(after) if after[0].startswith("|") else ([], [])
                doc.blocks.append(_Block("table", (cols, body, caption)))
                i += 1
            else:
                doc.para(" ".join(lines))
            i += 1
        return doc

    # ---- rendering
    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""] if self.title else []
        for b in self.blocks:
            if b.kind == "h":
                level, text = b.payload
                out += ["#" * level + " " + text, ""]
            elif b.kind == "p":
                out += [b.payload, ""]
            elif b.kind == "callout":
                out += ["> " + line for line in b.payload.splitlines()] + [""]
            elif b.kind == "ul":
                out += [f"- {item}" for item in b.payload] + [""]
            elif b.kind == "table":
                cols, body, caption = b.payload
                if caption:
                    out += [f"*{caption}*", ""]
                if not body:
                    out += ["(no rows)", ""]
                    continue
                esc = lambda s: str(s).replace("|", "\\|")
                out.append("| " + " | ".join(esc(c) for c in cols) + " |")
                out.append("|" + "|".join("---" for _ in cols) + "|")
                out += ["| " + " | ".join(esc(v) for v in row) + " |" for row in body]
                out.append("")
            elif b.kind == "figure":
                path, caption = b.payload
                alt = Path(path).stem.replace("_", " ")
                out += [f"![{alt}]({path})", "", f"*{caption}*", ""]
        return "\n".join(out).rstrip() + "\n"

    def to_html(self, root: Path) -> str:
        parts = [f"<h1>{_inline(self.title)}</h1>"] if self.title else []
        for b in self.blocks:
            if b.kind == "h":
                level, text = b.payload
                parts.append(f"<h{level}>{_inline(text)}</h{level}>")
            elif b.kind == "p":
                parts.append(f"<p>{_inline(b.payload)}</p>")
            elif b.kind == "callout":
                parts.append(f'<div class="callout">{_inline(b.payload)}</div>')
            elif b.kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.payload)
                             + "</ul>")
            elif b.kind == "table":
                cols, body, caption = b.payload
                cap = f"<caption>{_inline(caption)}</caption>" if caption else ""
                head = "".join(f"<th>{_inline(c)}</th>" for c in cols)
                rows = "".join("<tr>" + "".join(
                    f'<td class="{"num" if numeric_text(v) else "txt"}">{_inline(v)}</td>'
                    for v in row) + "</tr>" for row in body)
                parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead>"
                             f"<tbody>{rows}</tbody></table>")
            elif b.kind == "figure":
                path, caption = b.payload
                png = _run_figure(root, path)
                if png is None:  # not one of the run's own figures: shown as text only
                    parts.append(f"<p>{_inline(f'[figure {path}]')}</p>")
                    continue
                data = base64.b64encode(png.read_bytes()).decode("ascii")
                parts.append(f'<figure><img alt="{html.escape(caption)}" '
                             f'src="data:image/png;base64,{data}"/>'
                             f"<figcaption>{_inline(caption)}</figcaption></figure>")
        return _HTML_PAGE.format(title=html.escape(self.title), body="\n".join(parts))


_HTML_PAGE = """<!DOCTYPE html>
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


def _inline(text: Any) -> str:
    """Escape for HTML, then render the two inline marks the report uses: **bold**, `code`."""
    s = html.escape(str(text))
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)



_HEADING = re.compile(r"(#{1,6}) (.+)")
_FIGURE = re.compile(r"!\[([^\]]*)\]\((figures/[A-Za-z0-9_-]+\.png)\)")
"""A figure line; only the run's own ``figures/NAME.png`` (anything else is a paragraph)."""


def _run_figure(root: Path, relpath: str) -> Path | None:
    """The PNG ``relpath`` names, when it is a regular file inside ``root/figures``
    (no absolute path, no ``..``, no symbolic link leading out); else None."""
    if not _FIGURE.fullmatch(f"![]({relpath})"):
        return None
    folder = (root / "figures").resolve()
    target = (root / relpath).resolve()
    if target.parent != folder or not target.is_file():
        return None
    return target
_CELL_SEP = re.compile(r"(?<!\\)\|")


def _caption(lines: list[str]) -> str | None:
    """The text of a one-line ``*italic*`` block (a table or figure caption), else None."""
    if len(lines) == 1 and len(lines[0]) > 2 and lines[0][0] == lines[0][-1] == "*" \
            and lines[0][1] != "*" and lines[0][-2] != "*":
        return lines[0][1:-1]
    return None


def _table_rows(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of a Markdown table (the ``|---|`` line is skipped; ``\\|``
    inside a cell is a literal bar)."""
    def cells(line: str) -> list[str]:
        inner = line.strip()
        inner = inner[1:] if inner.startswith("|") else inner
        inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
        return [c.strip().replace("\\|", "|") for c in _CELL_SEP.split(inner)]

    if len(lines) > 1 and re.fullmatch(r"\|?[\s:|-]+\|?", lines[1]):
        lines = [lines[0], *lines[2:]]
    rows = [cells(line) for line in lines]
    return (rows[0], rows[1:]) if rows else ([], [])
