"""Folders written whole: the one mechanism behind every command that writes a folder
(``capedyn fit --out`` / :meth:`capedyn.CouplingODE.save`, ``capedyn reproduce --out`` /
:func:`capedyn.reproduce`).

* **Lock.** While a writer works on ``DIR`` it holds an exclusive ``flock`` on the sibling
  file ``.DIR.lock``; a second writer (another process, or another thread) fails at once
  with one line naming ``DIR`` and the owner's process id. The lock dies with its process,
  so a killed run never blocks the next one. It is re-entrant within one thread (the
  command line takes it before a long fit, :meth:`CouplingODE.save` takes it again).
* **Stage and move.** Every file is written into a fresh sibling ``.DIR.partial-PID-XXXX``;
  only when all of them are complete is the destination re-checked (the caller's rule, e.g.
  "a previous run needs --force") and the stage renamed onto ``DIR``. A previous folder is
  renamed aside first (``.DIR.old-PID-XXXX``) and deleted once the new one is in place, and
  put back if the rename fails. An exception, a full disk or Ctrl-C before the move leaves
  ``DIR`` exactly as it was and removes the stage.
* **Sweep.** Under the lock, leftovers of killed writers of the same ``DIR`` are removed:
  ``.DIR.partial-*`` / ``.DIR.old-*`` folders whose owning process is gone (or, with no
  process id in the name, older than :data:`STALE_AFTER_S`). A ``.DIR.old-*`` left by a
  writer killed between its two renames is moved back to ``DIR`` when ``DIR`` is missing.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ._errors import OutputError

__all__ = ["destination_lock", "staged_folder", "make_stage", "swap_into_place",
           "sweep_stale", "STALE_AFTER_S"]

STALE_AFTER_S = 24 * 3600.0
"""Age (seconds) after which a leftover folder with no owner recorded is swept."""

_held: dict[str, tuple[int, int]] = {}          # lock path -> (thread id, depth)
_held_guard = threading.Lock()


def _lock_path(out: Path) -> Path:
    out = Path(os.path.abspath(out))
    return out.parent / f".{out.name}.lock"


def _busy(given: str | Path, owner: str) -> OutputError:
    who = f" (pid {owner})" if owner else ""
    return OutputError(f"output folder '{given}' is being written by another capedyn "
                       f"run{who}; wait for it to finish, or choose another folder")


@contextmanager
def destination_lock(out: str | Path, given: str | Path | None = None) -> Iterator[None]:
    """Hold the exclusive lock of destination ``out`` for the ``with`` block.

    Raises :class:`OutputError` (naming ``given``, default ``out``) at once when another
    process or thread holds it, or when the lock file cannot be created."""
    given = out if given is None else given
    lock = _lock_path(Path(out).expanduser())
    key, me = str(lock), threading.get_ident()
    with _held_guard:
        owner = _held.get(key)
        if owner is not None:
            if owner[0] != me:
                raise _busy(given, str(os.getpid()))
            _held[key] = (me, owner[1] + 1)
    if owner is not None:                         # re-entered by the thread holding it
        try:
            yield
        finally:
            with _held_guard:
                _held[key] = (me, _held[key][1] - 1)
        return
    fd = _acquire(lock, given)
    with _held_guard:
        _held[key] = (me, 1)
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        try:
            os.unlink(lock)                       # unlinked while still locked: see _acquire
        except OSError:
            pass
        os.close(fd)


def _acquire(lock: Path, given: str | Path) -> int:
    try:
        import fcntl
    except ImportError:                          # no flock (Windows): staging still applies
        return os.open(os.devnull, os.O_RDONLY)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to output folder '{given}' "
                          f"({exc.strerror or exc})") from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write to output folder '{given}' "
                              f"({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = _read_owner(fd)
            os.close(fd)
            raise _busy(given, owner) from None
        try:  # the holder before us may have unlinked this file: lock the current one
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


# --------------------------------------------------------------------------- stage and move

def make_stage(out: Path, given: str | Path) -> Path:
    """A fresh, empty ``.NAME.partial-PID-XXXX`` folder beside ``out`` (same file system,
    so the final move is a rename), with the permissions of a normal folder."""
    from ._io import _umask

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        while True:
            stage = _sibling(out, "partial")
            try:
                os.mkdir(stage, 0o777 & ~_umask())
                return stage
            except FileExistsError:
                continue
    except OSError as exc:
        raise OutputError(f"cannot write to output folder '{given}' "
                          f"({exc.strerror or exc}); choose a writable output folder") from None


def _sibling(out: Path, tag: str) -> Path:
    return out.parent / f".{out.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def swap_into_place(stage: Path, out: Path, given: str | Path) -> None:
    """Rename the complete ``stage`` onto ``out``; a previous folder there is renamed aside
    first, deleted once the new one is in place, and put back if the rename fails."""
    old = None
    try:
        if out.is_dir() and not out.is_symlink() and any(out.iterdir()):
            old = _sibling(out, "old")
            os.rename(out, old)
        elif out.is_dir() and not out.is_symlink():
            out.rmdir()
        os.rename(stage, out)
    except OSError as exc:
        if old is not None and not os.path.lexists(out):
            os.rename(old, out)
        raise OutputError(f"cannot move the finished output into '{given}' "
                          f"({exc.strerror or exc}); nothing was changed there") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_folder(out: str | Path, given: str | Path | None = None, *,
                  recheck: Callable[[], object] | None = None) -> Iterator[Path]:
    """Lock ``out``, sweep its stale leftovers, and yield an empty staging folder; when the
    block ends normally, call ``recheck()`` (the caller's destination rule, which raises to
    refuse) and move the stage onto ``out``. On any exception (including
    KeyboardInterrupt) the stage is removed and ``out`` is left exactly as it was."""
    given = out if given is None else given
    out = Path(out).expanduser()
    with destination_lock(out, given):
        sweep_stale(out)
        if recheck is not None:
            recheck()
        stage = make_stage(out, given)
        try:
            yield stage
            if recheck is not None:
                recheck()                       # nothing replaced the destination meanwhile
            swap_into_place(stage, out, given)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise


# --------------------------------------------------------------------------- sweep

_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<tag>partial|old)-(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+")


def _owner_gone(pid: int | None, path: Path) -> bool:
    if pid is not None and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:                          # alive, owned by someone else
            pass
    try:
        return time.time() - path.lstat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def sweep_stale(out: str | Path) -> list[Path]:
    """Remove the leftovers of killed writers of ``out`` (call it holding ``out``'s lock);
    return what was removed or restored. Only real folders named ``.NAME.partial-*`` or
    ``.NAME.old-*`` for this ``NAME`` are touched; symlinks and anything else are left."""
    out = Path(out).expanduser()
    touched: list[Path] = []
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return touched
    for p in sorted(entries):
        m = _LEFTOVER.fullmatch(p.name)
        if not m or m["name"] != out.name or p.is_symlink() or not p.is_dir():
            continue
        if not _owner_gone(int(m["pid"]) if m["pid"] else None, p):
            continue
        if m["tag"] == "old" and not os.path.lexists(out):
            try:                                  # killed between its two renames: restore
                os.rename(p, out)
                touched.append(p)
                continue
            except OSError:
                pass
        shutil.rmtree(p, ignore_errors=True)
        touched.append(p)
    return touched
