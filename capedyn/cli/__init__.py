"""The ``capedyn`` command line: one module per command group (``coupling``, ``fit``,
``posterior``, ...), each exposing ``register(sub)``; ``entry`` builds the parser and
runs a command.

The top of the import graph: may import everything below it, and nothing imports it.
"""

from .entry import COMMAND_GROUPS, _build_parser, main

__all__ = ["COMMAND_GROUPS", "main"]
