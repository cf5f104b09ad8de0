"""The output folder of a run: checked before any work, built in a temporary sibling
folder, and moved into place only when complete (so it never mixes two runs); the
staging, locking and moving are :mod:`capedyn._publish`'s, shared with saved fits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .._errors import OutputError
from .._io import check_output_dir
from .._publish import make_stage, swap_into_place

__all__ = ["RUN_FILES", "writable", "staging_dir", "move_into_place"]


RUN_FILES: tuple[str, ...] = ("summary.json", "report.md", "report.html")
"""A folder holding any of these holds a previous run."""


def writable(path: str | Path, force: bool = False) -> Path:
    """Check the output folder before any work; create nothing. Refuses a file, a place
    where nothing can be written, a non-empty folder that holds no run, and (unless
    ``force``) a folder that holds a previous run. Messages name the folder as given."""
    given = str(path)
    head = f"cannot write to output folder '{given}'"
    p = Path(path).expanduser()
    if given.strip() == "":
        raise OutputError(f"{head}: the path is empty; give a folder name (--out)")
    if os.path.lexists(p) and not p.is_dir():
        raise OutputError(f"{head}: it is an existing file; choose a folder (--out)")
    if p.is_dir():
        entries = sorted(e.name for e in p.iterdir())
        holds_run = any(name in entries for name in RUN_FILES)
        foreign = [e for e in entries if not _run_entry(p / e)]
        if entries and not holds_run:
            raise OutputError(f"{head}: the folder is not empty and holds no capedyn run "
                              f"({_names(entries)}); choose a new or empty folder (--out)")
        if holds_run and foreign:
            raise OutputError(f"{head}: it holds a previous run and other files "
                              f"({_names(foreign)}), which a new run would remove; choose "
                              "another folder (--out)")
        if holds_run and not force:
            raise OutputError(f"{head}: it holds a previous run; pass --force (force=True) "
                              "to replace it, or choose another folder (--out)")
        if os.path.samefile(p, Path.cwd()):
            raise OutputError(f"{head}: it is the current folder; choose a folder below it")
    try:
        check_output_dir(p.parent if str(p.parent) else Path("."), "output folder")
    except OSError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise OutputError(f"{head} ({reason}); choose a writable output folder (--out)") from None
    return p


def _names(entries: Sequence[str], n: int = 5) -> str:
    return ", ".join(entries[:n]) + (f" and {len(entries) - n} more" if len(entries) > n else "")


def _run_entry(path: Path) -> bool:
    """Whether ``path`` (an entry of an output folder) is something a run writes."""
    if path.name in RUN_FILES:
        return path.is_file()
    if path.name == "figures" and path.is_dir():
        return all(f.is_file() and f.suffix.lower() == ".png" for f in path.iterdir())
    return False


def staging_dir(out: Path, given: str | Path) -> Path:
    """A fresh temporary folder next to ``out`` (:func:`capedyn._publish.make_stage`)."""
    return make_stage(out, given)


def move_into_place(stage_dir: Path, out: Path, given: str | Path) -> None:
    """Rename the complete run onto ``out`` (:func:`capedyn._publish.swap_into_place`)."""
    swap_into_place(stage_dir, out, given)
