"""The ``capedyn`` command line.

Each command group lives in ``capedyn/_cli/<group>.py`` and exposes ``register(sub)``,
which adds its sub-parsers with ``set_defaults(handler=...)``. A handler receives the
parsed arguments and returns a JSON-serialisable dict; :func:`main` prints it as JSON
with ``--json`` and otherwise calls the handler's ``human`` printer.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Callable, Sequence

from .._errors import CapedynError
from .._json import to_jsonable
from .._table import format_table  # noqa: F401  (re-exported for the command modules)

COMMAND_GROUPS: tuple[str, ...] = (
    "coupling", "fit", "posterior", "holdout", "frontier", "reproduce",
    "predictions", "explore", "ingest", "intervals", "family", "steer",
)


def _build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="capedyn",
        description="Capability-coupling dynamics of language-model scaling: running "
                    "coupling, critical scale Nc, coupling ODEs, posteriors, held-out "
                    "benchmarks and the frontier h-field.",
    )
    parser.add_argument("--version", action="version", version=f"capedyn {__version__}")
    parser.add_argument("--no-cache", action="store_true",
                        help="do not keep compiled programs on disk (default: kept under the "
                             "user's cache folder, or $CAPEDYN_CACHE_DIR; same as "
                             "CAPEDYN_NO_CACHE=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        try:
            module = importlib.import_module(f"capedyn.cli.{group}")
        except ModuleNotFoundError as exc:
            if exc.name == f"capedyn.cli.{group}":
                continue
            raise
        module.register(sub)
    return parser


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def add_data_flag(parser: argparse.ArgumentParser, what: str = "base-model") -> None:
    parser.add_argument("--data", metavar="CSV", default=None,
                        help=f"{what} CSV (default: the table shipped with capedyn, measured "
                             "scores only); @paper: the authors' table with their mixed "
                             "Pythia rows (two partly estimated), to reproduce their numbers. "
                             "Rows of a CSV flagged estimated are left out")


def split_list(text: str | None) -> list[str] | None:
    """'A,B , C' → ['A', 'B', 'C']; None or '' → None."""
    if not text:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def emit(result: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    if as_json:
        print(json.dumps(to_jsonable(result), indent=2, default=str))
    else:
        print(human(result))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0 done, 2 error, 130 interrupted)."""
    from .._interrupt import INTERRUPTED_STATUS, interrupted_line, one_line_interrupts

    command = _command_of(argv)
    try:
        with one_line_interrupts(command):
            return _main(_build_parser(), argv)
    except KeyboardInterrupt:
        print(interrupted_line(command), file=sys.stderr)
        return INTERRUPTED_STATUS


def _command_of(argv: Sequence[str] | None) -> str | None:
    args = list(sys.argv[1:] if argv is None else argv)
    return next((a for a in args if not a.startswith("-")), None)


_SAMPLING_COMMANDS = frozenset({"reproduce", "posterior", "family"})
"""Commands whose time goes mostly into NUTS: their process shows the CPU to JAX as two
devices, which sample half the chains each (:func:`capedyn._devices.cpu_devices_for_own_process`;
the draws are bitwise those of one device), when the command line owns the process
(``main()`` reading ``sys.argv``). Not the others: a fit runs on one device, and its
held-out sweeps spread over worker threads instead.

Their XLA thread pool gets one thread per core and no spare ones: every LAPACK call these
commands compile is unbatched (a Cholesky of one matrix, as XLA's dump of a full
``reproduce`` shows), so none waits on the pool, and the spare threads made the
two-device coupling-level sampler twice as slow in many runs (docs/architecture.md)."""


def _own_process(command: str, cache: bool = True, devices: bool = True) -> None:
    """Settings of a process the CLI owns, made before JAX starts (``devices``): two CPU
    devices for the sampling commands, XLA's thread pool sized for them or for the
    worker threads, and XLA's quicker-compiling CPU emitters; and the compilation cache
    (compile once per machine)."""
    if devices:
        from .._compile_flags import fast_compile_for_own_process
        from .._devices import cpu_devices_for_own_process, thread_pool_for_own_process

        if command in _SAMPLING_COMMANDS:
            cpu_devices_for_own_process(spare_threads=False)
        else:
            thread_pool_for_own_process()
        fast_compile_for_own_process()
    if cache:
        from .._cache import enable_for_own_process

        enable_for_own_process()


def _main(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    repeated = _repeated_option(parser, args.command, sys.argv[1:] if argv is None else argv)
    if repeated:
        print(f"capedyn {args.command}: error: {repeated} is given more than once; give it "
              "once (only one value would be used)", file=sys.stderr)
        return 2

    try:
        # main(argv) called from Python shares its caller's process: its devices stay
        _own_process(args.command, cache=not getattr(args, "no_cache", False),
                     devices=argv is None)
    except CapedynError as exc:
        print(f"capedyn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    try:
        from .._jax import x64

        with x64():  # the CLI owns its process: all its numerics in float64
            result = args.handler(args)
    except (CapedynError, ValueError, OSError) as exc:
        print(f"capedyn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        try:
            emit(result, getattr(args, "json", False), getattr(args, "human", None) or _json_human)
            sys.stdout.flush()
        except BrokenPipeError:  # output piped into head & co.: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _repeated_option(parser: argparse.ArgumentParser, command: str,
                     argv: Sequence[str]) -> str | None:
    """The first single-valued option of ``command`` given twice (argparse keeps the last
    silently), or None."""
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    single = {}
    for action in sub.choices[command]._actions:
        if isinstance(action, (argparse._StoreAction, argparse._StoreTrueAction,
                               argparse._StoreConstAction)):
            for opt in action.option_strings:
                single[opt] = action
    seen = set()
    for token in argv:
        if token == "--":
            break
        action = single.get(str(token).split("=", 1)[0])
        if action is None:
            continue
        if action.dest in seen:
            return "/".join(action.option_strings)
        seen.add(action.dest)
    return None


def _json_human(result: dict[str, Any]) -> str:
    return json.dumps(to_jsonable(result), indent=2, default=str)


if __name__ == "__main__":
    sys.exit(main())
