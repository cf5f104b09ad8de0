"""Output paths you can trust.

* Atomic writes: a file is either absent, the old one, or completely the new one
  (temporary file in the same folder, then a rename). A failure (full disk, read-only
  folder, ...) raises :class:`~capedyn._errors.OutputError` naming the destination the
  caller asked for, never the hidden temporary file.
* Destination checks (:func:`check_output_file`, :func:`check_output_dir`) that run before
  any work: they create nothing, and prove a file can be written where the output will go
  by creating and deleting a probe file in the nearest existing folder.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from ._errors import InputTypeError, OutputError
from ._json import to_jsonable


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _output_error(message: str, exc: OSError | None = None) -> OutputError:
    err = OutputError(message)
    if exc is not None:
        err.errno = exc.errno
    return err


def atomic_write(path: str | Path, writer: Callable[[Path], None], *,
                 replace: bool = True) -> Path:
    """Call ``writer(tmp_path)`` then rename the temporary file onto ``path``.

    Raises :class:`OutputError` naming ``path`` (and the reason, e.g. "No space left on
    device") if the folder cannot be created or the file cannot be written; the
    temporary file is removed and an existing ``path`` is left untouched. With
    ``replace=False`` a file that appeared at ``path`` meanwhile is not replaced (the
    temporary file is hard-linked into place, which fails if the name exists).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _output_error(f"cannot write '{path}': {_reason(exc)}", exc) from None
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        if replace:
            os.replace(tmp, path)
        else:
            _publish_new(Path(tmp), path)
    except OSError as exc:
        _unlink_quietly(tmp)
        if isinstance(exc, OutputError):
            raise
        raise _output_error(f"cannot write '{path}': {_reason(exc)}", exc) from None
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return path


def _publish_new(tmp: Path, path: Path) -> None:
    """Put ``tmp`` at ``path`` only if nothing is there (checked atomically by link)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _output_error(f"'{path}' appeared while capedyn was working; it was left as "
                            "it is (pass --force to replace it)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
            raise
        if os.path.lexists(path):        # no hard links here: check, then rename
            raise _output_error(f"'{path}' appeared while capedyn was working; it was left "
                                "as it is (pass --force to replace it)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _unlink_quietly(p: str | Path) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str, *, replace: bool = True) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), replace=replace)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False, default=_not_jsonable) + "\n")


def _not_jsonable(obj: Any):
    raise InputTypeError(f"{type(obj).__name__} is not JSON serialisable")

def check_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and prove a file can be written there; raise OSError otherwise."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    probe = tempfile.NamedTemporaryFile(dir=path, prefix=".capedyn-probe-", delete=True)
    probe.close()
    return path


# --------------------------------------------------------------------------- destination checks

def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p):
        parent = p.parent
        if parent == p:
            break
        p = parent
    return p


def _probe(folder: Path) -> None:
    """Create and delete a file in ``folder`` (os.access is not enough: root, read-only mounts)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".capedyn-probe-", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)


def _check_parent(path: Path, what: str, given: str) -> None:
    """The folder that will hold ``path`` exists or can be created, and is writable."""
    parent = path.parent if str(path.parent) else Path(".")
    base = _nearest_existing(parent)
    if not base.is_dir():
        raise _output_error(f"{what} '{given}': cannot write there ('{base}' is a file, "
                            "not a folder); choose another path")
    try:
        _probe(base)
    except OSError as exc:
        raise _output_error(f"{what} '{given}': cannot write there ({_reason(exc)} in "
                            f"'{base}'); choose a writable location", exc) from None


def check_output_file(path: str | Path, what: str = "output file",
                      suffixes: tuple[str, ...] = (), *, force: bool = True,
                      new_folders: bool = True) -> Path:
    """Check, before any work, that a file can be written at ``path``; create nothing.

    ``what`` names the option in messages (e.g. ``"--plot"``); ``suffixes`` (lower case,
    e.g. ``(".png",)``) are the accepted extensions. An existing file may be replaced
    (the write is atomic) unless ``force`` is False. ``new_folders=False`` refuses a path
    whose folder does not exist (figures: a typo in the folder should not create a
    tree). Raises :class:`OutputError` naming the path as given.
    """
    given = str(path)
    if given.strip() == "":
        raise _output_error(f"{what}: the path is empty; give a file name")
    p = Path(path).expanduser()
    if suffixes and p.suffix.lower() not in suffixes:
        raise _output_error(f"{what} '{given}': the file is written as "
                            f"{'/'.join(s.lstrip('.').upper() for s in suffixes)}; give a "
                            f"path ending in {' or '.join(suffixes)}")
    if p.is_dir():
        raise _output_error(f"{what} '{given}' is a folder; give a file name")
    if os.path.lexists(p) and not p.is_file():
        raise _output_error(f"{what} '{given}' exists and is not a regular file")
    if os.path.lexists(p) and not force:
        raise _output_error(f"{what} '{given}' already exists; pass --force to replace it, "
                            "or choose another file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not new_folders and not parent.is_dir():
        raise _output_error(f"{what} '{given}': the folder '{parent}' does not exist; create "
                            "it first or choose an existing folder")
    _check_parent(p, what, given)
    return p


def check_output_dir(path: str | Path, what: str = "output folder", *,
                     holds: tuple[str, ...] = (), kind: str = "a previous output",
                     force: bool = False) -> Path:
    """Check, before any work, that ``path`` is (or can become) a writable folder.

    Creates nothing. An existing *file* at ``path`` is refused at once. When ``holds``
    names files (e.g. ``("meta.json",)``) and the folder already contains one of them, it
    holds ``kind`` and is refused unless ``force``. Raises :class:`OutputError` naming the
    path as given.
    """
    given = str(path)
    if given.strip() == "":
        raise _output_error(f"{what}: the path is empty; give a folder name")
    p = Path(path).expanduser()
    if os.path.lexists(p) and not p.is_dir():
        raise _output_error(f"{what} '{given}' is an existing file, not a folder; give a "
                            "folder name (or remove the file)")
    if p.is_dir():
        found = [h for h in holds if os.path.lexists(p / h)]
        if found and not force:
            raise _output_error(f"{what} '{given}' already holds {kind} ({', '.join(found)}); "
                                "pass --force to replace it, or choose another folder")
        try:
            _probe(p)
        except OSError as exc:
            raise _output_error(f"{what} '{given}': cannot write there ({_reason(exc)}); "
                                "choose a writable folder", exc) from None
    else:
        _check_parent(p, what, given)
    return p

