"""Reading contrastive pairs, evaluation items and prompts from CSV or JSONL files.

* pairs: columns ``true`` and ``false`` (a true statement and a false one on one topic);
* items: columns ``question``, ``true`` and ``false`` (a question and two answers);
* prompts: a ``.txt`` file with one prompt per line, or CSV/JSONL with a ``prompt`` column.

CSV files have a header row; JSONL files hold one JSON object per line. ``None`` reads the
set shipped with capedyn (``capedyn/steer/data/``, written for this package). Any problem
gives a one-line :class:`TextFileError` naming the file, the row and the column.
"""

from __future__ import annotations

import csv
import io
import json
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from .._errors import CapedynError


class TextFileError(CapedynError, ValueError):
    """A pairs, items or prompts file is missing, unreadable or has a bad row."""


class Pair(NamedTuple):
    true: str
    false: str


class Item(NamedTuple):
    question: str
    true: str
    false: str


def _read(path: str | Path | None, default: str) -> tuple[str, str, str]:
    """(text, label, suffix) of a user file or of the shipped default."""
    if path is None:
        res = resources.files("capedyn.steer").joinpath("data", default)
        return res.read_text(encoding="utf-8"), f"<capedyn>/steer/data/{default}", ".csv"
    p = Path(path)
    if not p.is_file():
        what = "is a folder, not a file" if p.is_dir() else "not found"
        raise TextFileError(f"{p}: {what}")
    try:
        return p.read_text(encoding="utf-8-sig"), str(p), p.suffix.lower()
    except (UnicodeDecodeError, OSError) as exc:
        raise TextFileError(f"{p}: cannot be read as UTF-8 text ({exc})") from None


def _records(text: str, label: str, suffix: str) -> list[tuple[int, dict]]:
    """(line number, record) for every non-blank record."""
    if suffix in (".jsonl", ".json", ".ndjson"):
        out = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TextFileError(f"{label}: line {n}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise TextFileError(f"{label}: line {n}: expected a JSON object")
            out.append((n, obj))
        return out
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise TextFileError(f"{label}: the file is empty")
    header = [h.strip() for h in rows[0]]
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise TextFileError(f"{label}: row {n} has {len(row)} fields, the header has "
                                f"{len(header)} (quote text that contains commas)")
        out.append((n, dict(zip(header, row))))
    return out


def _table(path, default: str, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    text, label, suffix = _read(path, default)
    records = _records(text, label, suffix)
    if not records:
        raise TextFileError(f"{label}: no rows")
    missing = [c for c in columns if c not in records[0][1]]
    if missing:
        raise TextFileError(f"{label}: no column {', '.join(repr(c) for c in missing)}; "
                            f"expected columns {', '.join(columns)}")
    out = []
    for n, rec in records:
        values = []
        for c in columns:
            v = rec.get(c)
            if not isinstance(v, str) or not v.strip():
                raise TextFileError(f"{label}: row {n}, column '{c}': empty or not text")
            values.append(v.strip())
        out.append(tuple(values))
    return out


def load_pairs(path: str | Path | None = None) -> list[Pair]:
    """Contrastive (true, false) statement pairs; ``None``: the shipped set."""
    return [Pair(*r) for r in _table(path, "pairs.csv", ("true", "false"))]


def load_items(path: str | Path | None = None) -> list[Item]:
    """(question, true answer, false answer) items; ``None``: the shipped set."""
    return [Item(*r) for r in _table(path, "items.csv", ("question", "true", "false"))]


def load_prompts(path: str | Path) -> list[str]:
    """Prompts from a .txt file (one per line, blank lines skipped) or a CSV/JSONL file
    with a ``prompt`` column."""
    text, label, suffix = _read(path, "")
    if suffix in (".csv", ".jsonl", ".json", ".ndjson"):
        return [r[0] for r in _table(path, "", ("prompt",))]
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise TextFileError(f"{label}: no prompts (one per line)")
    return prompts


def as_pairs(pairs) -> list[Pair]:
    """Pairs from ``None`` (shipped), a path, or a sequence of (true, false)."""
    if pairs is None or isinstance(pairs, (str, Path)):
        return load_pairs(pairs)
    out = [Pair(*p) for p in pairs]
    if not out:
        raise TextFileError("no contrastive pairs given")
    return out


def as_items(items) -> list[Item]:
    """Items from ``None`` (shipped), a path, or a sequence of (question, true, false)."""
    if items is None or isinstance(items, (str, Path)):
        return load_items(items)
    out = [Item(*i) for i in items]
    if not out:
        raise TextFileError("no evaluation items given")
    return out
