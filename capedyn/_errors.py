"""Exception types raised to users; the CLI turns them into one-line messages, no traceback.

Every error capedyn raises on purpose derives from :class:`CapedynError`. Each subclass
also derives from the built-in type callers caught before (``ValueError`` for bad input,
``TypeError`` for an argument of the wrong kind, ``OSError`` for an output that cannot be
written, ``RuntimeError`` for a failed solve), so existing ``except ValueError`` code keeps
working.
"""


class CapedynError(Exception):
    """Base class of every error capedyn raises on purpose (bad input, failed solve, ...)."""


class InputError(CapedynError, ValueError):
    """An argument has a bad value (out of range, wrong unit, inconsistent options)."""


class InputTypeError(CapedynError, TypeError):
    """An argument has the wrong type (e.g. a list where a DataFrame is expected)."""


class NotFittedError(CapedynError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (same bases as scikit-learn's NotFittedError)."""


class OutputError(CapedynError, OSError):
    """An output cannot be written; the message names the path the user gave."""


class SolveError(CapedynError, RuntimeError):
    """An ODE solve failed (step budget exhausted or a non-finite state); names the family."""


class FitFileError(CapedynError, ValueError):
    """A saved fit is missing, corrupt, or made for a different field configuration."""


PERCENT_HINT = ("scores are percentages from 0 to 100: pass 78.0 for 78%, not 0.78 "
                "(multiply fractions by 100)")
"""The hint given whenever scores look like fractions."""
