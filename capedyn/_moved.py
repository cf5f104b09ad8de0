"""The old module paths of the flat 0.1 layout, kept importable for one release.

``import capedyn.fit`` and ``from capedyn.posterior import sample_posterior`` still work:
a finder placed last on ``sys.meta_path`` (so it answers only for names no file provides)
builds a small alias module for each old path. The alias warns once, with a
``DeprecationWarning`` that names the new place, and hands on every name of the new
module(s). No file is left at the old place, so the package's folders show only the
layout as it is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

OLD_PATHS: dict[str, tuple[str, ...]] = {
    "ingest": ("capedyn.data.ingest",),
    "ode": ("capedyn.dynamics.field",),
    "trajectory": ("capedyn.dynamics.trajectory",),
    "objective": ("capedyn.dynamics.objective",),
    "optimise": ("capedyn.dynamics.optimise",),
    "fit": ("capedyn.models.coupling_ode",),
    "latent_ode": ("capedyn.models.shared_ode",),
    "sindy": ("capedyn.models.sindy",),
    "baselines": ("capedyn.models.baselines",),
    "peers": ("capedyn.models.peers",),
    "analysis": ("capedyn.models.per_phase",),
    "persistence": ("capedyn.models.persistence",),
    "frontier": ("capedyn.coupling.frontier",),
    "posterior_models": ("capedyn.inference.models",),
    "posterior": ("capedyn.inference.sampling",),
    "posterior_result": ("capedyn.inference.result",),
    "calibration": ("capedyn.inference.coupling_calibration",),
    "ode_nc": ("capedyn.inference.implied_nc", "capedyn.inference.implied_nc_posterior", "capedyn.inference.implied_nc_agreement",),
    "ode_calibration": ("capedyn.inference.implied_nc_calibration",),
    "splits": ("capedyn.evaluation.splits",),
    "selection": ("capedyn.evaluation.selection",),
    "heldout": ("capedyn.evaluation.heldout",),
    "predictions": ("capedyn.evaluation.predictions",),
    "bench": ("capedyn.evaluation.bench",),
}
"""Old module (under ``capedyn.``) → the module(s) its names now live in, searched in order."""

_MISSING = object()


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``capedyn.<old>`` for the names in :data:`OLD_PATHS` and loads an alias."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        package, _, name = fullname.partition(".")
        if package == "capedyn" and name in OLD_PATHS:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module) -> None:
        old = module.__name__
        new = OLD_PATHS[old.partition(".")[2]]
        module.__doc__ = f"Deprecated alias of {', '.join(new)} (the flat layout of 0.1)."
        module.__getattr__ = _resolver(old, new)
        warnings.warn(f"{old} moved to {' and '.join(new)}; the old path will be removed in "
                      "the next release", DeprecationWarning, stacklevel=_caller_level())


def _resolver(old: str, new: tuple[str, ...]):
    def __getattr__(name: str) -> Any:
        for module in new:
            value = getattr(importlib.import_module(module), name, _MISSING)
            if value is not _MISSING:
                return value
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__


def _caller_level() -> int:
    """The ``stacklevel`` that points the warning at the code doing the import, past the
    frames of the import machinery and of this module (``warnings`` itself does not count
    the frames of ``importlib._bootstrap``)."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and (frame.f_code.co_filename == __file__
                                        or "importlib" in frame.f_code.co_filename):
        frame = frame.f_back
        if not _bootstrap_frame(frame):
            level += 1
    return level


def _bootstrap_frame(frame) -> bool:
    name = frame.f_code.co_filename
    return "importlib" in name and "_bootstrap" in name


def install() -> None:
    """Put the alias finder last on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
