"""Compile once per machine: JAX's persistent compilation cache for capedyn's programs.

Compiling the default coupling-ODE fit takes longer than running it. JAX can keep compiled
programs on disk and reuse them in a later process, with two conditions that capedyn
arranges here:

* JAX never writes a program that holds a host callback. Diffrax checks its save times
  with ``equinox.internal.error_if``, which (in Equinox's default "raise" mode) is a host
  callback inside every solve. capedyn's solves run that check in Equinox's "nan" mode
  instead (:func:`solve_checks_as_nan`): a failing check gives NaN, which capedyn's
  solves already turn into a failed solve (``ok`` False). The check never fires for
  capedyn's own save grids, which are sorted and clipped to the span.
* JAX's defaults skip programs that compiled in under a second, which would leave the
  many small programs of a fit out; capedyn writes every program.

The cache is opt-in for library users (:func:`enable_compilation_cache`, one call) and on
for capedyn's own processes: the command line, the examples and the test suite. The folder
is ``$CAPEDYN_CACHE_DIR`` when set, otherwise ``capedyn/jax`` under the user's cache
folder; ``CAPEDYN_NO_CACHE=1`` (or ``capedyn --no-cache ...``) leaves JAX untouched. A
cache folder must be trusted (JAX loads the programs it holds), hence mode 0700.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

ENV_DIR = "CAPEDYN_CACHE_DIR"
ENV_OFF = "CAPEDYN_NO_CACHE"
MAX_BYTES = 2 << 30
"""Cap of the cache folder (2 GiB; least recently used programs go first). The default fit
writes about 1 MB, a whole ``reproduce --quick`` about 4 MB."""


def default_cache_dir() -> Path:
    """Where compiled programs go: ``$CAPEDYN_CACHE_DIR``, else ``<user cache>/capedyn/jax``."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    try:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("capedyn", appauthor=False))
    except ImportError:  # the same locations, without the optional package
        if sys.platform == "darwin":
            base = Path.home() / "Library" / "Caches" / "capedyn"
        elif os.name == "nt":
            base = Path(os.environ.get("LOCALAPPDATA", Path.home())) / "capedyn" / "Cache"
        else:
            base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "capedyn"
    return base / "jax"


def cache_disabled() -> bool:
    """True when ``CAPEDYN_NO_CACHE`` is set to anything but "", "0" or "false"."""
    return os.environ.get(ENV_OFF, "").strip().lower() not in ("", "0", "false", "no")


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep JAX's compiled programs on disk so a new process skips compiling them.

    ``path``: the folder (None: :func:`default_cache_dir`). Sets JAX's
    ``jax_compilation_cache_dir`` and lowers its thresholds so every program is kept
    (``jax_persistent_cache_min_compile_time_secs = 0``,
    ``jax_persistent_cache_min_entry_size_bytes = -1``); this changes the process's JAX
    configuration, which is why a library user asks for it with this call. The folder is
    capped at :data:`MAX_BYTES` when the ``filelock`` package is there. Returns the
    folder, or None when ``CAPEDYN_NO_CACHE`` is set (then nothing changes)."""
    if cache_disabled():
        return None
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    folder = Path(path).expanduser() if path is not None else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        from ._errors import InputError

        raise InputError(f"cannot create the compilation cache folder {folder} ({exc}); set "
                         f"{ENV_DIR} to a writable folder or {ENV_OFF}=1") from None
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    try:  # a size cap turns on JAX's file lock (two test workers write at once) and LRU
        import filelock  # noqa: F401  (JAX needs it for the cap)

        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
        pair_orphaned_entries(folder)
    except ImportError:
        pass
    if jax.config.jax_compilation_cache_dir != str(folder):
        jax.config.update("jax_compilation_cache_dir", str(folder))
        cc.reset_cache()  # JAX decides once per process whether a cache is used; ask again
    return folder


def pair_orphaned_entries(folder: Path) -> int:
    """Give every program file of the cache folder its access-time file; returns how many
    were missing.

    With a size cap, JAX's cache keeps a ``<key>-atime`` file beside each ``<key>-cache``
    and, before writing a new program, reads the access time of every program in the
    folder to find the least recently used. A program written by a process without the cap
    (plain ``JAX_COMPILATION_CACHE_DIR``, an older capedyn) has no access-time file, and
    then every later write fails (FileNotFoundError, reported by JAX as a warning): the
    cache stops growing and each new process compiles again what it could have read. The
    missing file is written with the program's modification time, under JAX's own lock."""
    import filelock

    orphans = 0
    try:
        with filelock.FileLock(folder / ".lockfile", timeout=60):
            for program in folder.glob("*-cache"):
                atime = program.with_name(program.name[: -len("cache")] + "atime")
                if not atime.exists():
                    atime.write_bytes(program.stat().st_mtime_ns.to_bytes(8, "little"))
                    orphans += 1
    except (OSError, filelock.Timeout):  # a cache is an optimisation: never fail on it
        pass
    return orphans


def enable_for_own_process() -> Path | None:
    """The cache for a process capedyn owns (command line, examples, tests), unless the
    user has chosen a JAX cache folder already (theirs is kept) or ``CAPEDYN_NO_CACHE``
    is set. Never raises: without a writable folder the process just compiles."""
    import jax

    if cache_disabled():
        return None
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    try:
        return enable_compilation_cache()
    except Exception:  # noqa: BLE001 - a cache is an optimisation, never a failure
        return None


class _ErrorIfAsNaN:
    """``equinox.internal`` with ``error_if`` in Equinox's "nan" mode (no host callback)."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def error_if(self, x, pred, msg, *, on_error="nan"):
        return self._inner.error_if(x, pred, msg, on_error=on_error)


@contextlib.contextmanager
def solve_checks_as_nan():
    """While capedyn traces a Diffrax solve, Diffrax's run-time checks (save times sorted
    and inside the span, step sign) give NaN instead of calling back into Python, so the
    compiled program can go to the persistent cache. Only the trace of capedyn's own
    ``diffeqsolve`` call sees this (the module reference is restored on exit); a user's
    solves keep Equinox's behaviour."""
    import diffrax._integrate as integrate

    inner = getattr(integrate, "eqxi", None)
    if inner is None or isinstance(inner, _ErrorIfAsNaN):  # another Diffrax layout; nested
        yield
        return
    integrate.eqxi = _ErrorIfAsNaN(inner)
    try:
        yield
    finally:
        integrate.eqxi = inner
