"""The shipped documentation: links resolve, every library name it cites exists, and no
shipped text points users to a document they do not have."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

import capedyn
from capedyn.cli.entry import _build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


def test_docs_pages_exist_and_are_linked_from_the_index():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for page in ("concepts.md", "protocol.md", "estimators.md", "nc.md"):
        assert (ROOT / "docs" / page).is_file()
        assert f"({page})" in index


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def _resolve(dotted: str):
    """``capedyn.a.b`` → the object, importing submodules on the way."""
    parts = dotted.split(".")
    obj = capedyn
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            obj = importlib.import_module(".".join(parts[: i + 1]))
    return obj


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_cited_library_name_exists(page):
    text = page.read_text(encoding="utf-8")
    names = set(re.findall(r"`(?:cd|capedyn)\.([A-Za-z_][\w.]*)", text))
    assert names or page.name in ("index.md", "README.md")
    for name in sorted(names):
        name = name.rstrip(".")
        _resolve(f"capedyn.{name}")  # raises AttributeError / ImportError when missing


def test_no_reference_to_the_internal_spec():
    for page in PAGES:
        assert "SPEC" not in page.read_text(encoding="utf-8"), page.name
    parser = _build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert "SPEC" not in parser.format_help()
    for name, p in sub.choices.items():
        assert "SPEC" not in p.format_help(), name
