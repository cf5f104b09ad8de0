"""Exception types raised to users; the CLI turns them into one-line messages, no traceback."""


class CapedynError(Exception):
    """Base class of every error capedyn raises on purpose (bad input, failed solve, ...)."""


class SolveError(CapedynError, RuntimeError):
    """An ODE solve failed (step budget exhausted or a non-finite state); names the family."""


class FitFileError(CapedynError, ValueError):
    """A saved fit is missing, corrupt, or made for a different field configuration."""
