"""The saved-fit file format shared by the writer (:meth:`capedyn.CouplingODE.save`) and the
reader (:func:`capedyn.persistence.load_fit`): its name and version, and the data and
version fingerprints ``meta.json`` records."""

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
