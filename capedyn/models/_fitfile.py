"""The saved-fit file format shared by the writer (:meth:`capedyn.CouplingODE.save`) and the
reader (:func:`capedyn.models.persistence.load_fit`): its name and version, the data and version
fingerprints ``meta.json`` records, and the rule for the folder a fit is saved to."""

from __future__ import annotations

import hashlib
import platform
from importlib import resources
from pathlib import Path
from typing import Sequence

from ..dynamics.trajectory import Trajectory

FIT_FORMAT = "capedyn-coupling-ode"
FIT_FORMAT_VERSION = 1


def _rows_sha256(trajs: Sequence[Trajectory]) -> str:
    text = "\n".join(f"{t.family},{m},{p!r}," + ",".join(repr(float(s)) for s in sc)
                     for t in trajs for m, p, sc in zip(t.models, t.params_b, t.scores))
    return hashlib.sha256(text.encode()).hexdigest()


def _file_sha256(path) -> str:
    if path is None:
        text = resources.files("capedyn.benchmarks_data").joinpath("base_models.csv").read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _versions() -> dict:
    import diffrax
    import equinox as eqx
    import jax
    import numpy as np
    import optax

    from .._version import __version__
    return {"capedyn": __version__, "jax": jax.__version__, "equinox": eqx.__version__,
            "diffrax": diffrax.__version__, "optax": optax.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


FIT_FILES = ("model.eqx", "meta.json")
"""What a saved fit's folder holds."""


def check_fit_destination(path: str | Path, given: str | Path | None = None,
                          force: bool = True, what: str = "fit folder") -> Path:
    """The folder a fit is saved to: missing, empty, or holding only a previous fit (which
    needs ``force``). Anything else there (a file at ``path``, other files in the folder,
    which the move would remove) raises :class:`~capedyn._errors.OutputError`."""
    from .._errors import OutputError
    from .._io import check_output_dir

    given = path if given is None else given
    p = check_output_dir(given, what, holds=FIT_FILES, kind="a saved fit", force=force)
    if p.is_dir():
        other = sorted(e.name for e in p.iterdir() if e.name not in FIT_FILES)
        if other:
            raise OutputError(f"{what} '{given}' holds files that are not part of a fit "
                              f"({', '.join(other[:5])}), which saving would remove; choose "
                              "another folder")
    return p
