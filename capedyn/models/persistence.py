"""Saved fits: reading the files a fitted :class:`capedyn.CouplingODE` writes
(``model.eqx`` + ``meta.json``) back into an estimator, and the shipped fits. The format
and its fingerprints are in :mod:`capedyn.models._fitfile`, shared with the writer
(:meth:`capedyn.CouplingODE.save`); the dependency runs one way: this module imports the
estimator, never the reverse."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import FitFileError
from ._extrapolation import range_from_meta
from ._fitfile import FIT_FORMAT, FIT_FORMAT_VERSION
from ._fitschema import check_regular_file, read_meta
from .._jax import scoped_x64
from ..dynamics.state import N_STATE
from .coupling_ode import CouplingODE, TransferRule, _Saved
from ..dynamics.objective import Population
from ..dynamics.field import CouplingField, FamilyParams
from ..dynamics.trajectory import Trajectory

__all__ = ["load_fit", "shipped_fits", "FIT_FORMAT", "FIT_FORMAT_VERSION"]

MAX_MODEL_BYTES = 64 * 2**20
"""Largest ``model.eqx`` read (a fit of every family is well under a megabyte)."""

# --------------------------------------------------------------------------- loading

def shipped_fits() -> list[str]:
    """Names of the fits shipped in ``capedyn.fits``."""
    root = resources.files("capedyn.fits")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.joinpath("meta.json").is_file())


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        return p
    name = p.name if p.parent in (Path("."), Path("fits")) else None
    if name and name in shipped_fits():
        return Path(str(resources.files("capedyn.fits").joinpath(name)))
    if p.exists():
        raise FitFileError(f"{p} is a file; a fit is a folder holding model.eqx and meta.json")
    raise FitFileError(f"no fit at '{path}'; pass a folder written by CouplingODE.save or "
                       f"`capedyn fit`, or a shipped fit name ({', '.join(shipped_fits()) or 'none'})")


@scoped_x64
def load_fit(path: str | Path) -> CouplingODE:
    """Load a saved fit: a folder (``model.eqx`` + ``meta.json``) or a shipped fit's name
    (e.g. ``"all_families"``). Raises :class:`~capedyn.FitFileError` for a missing or corrupt
    file, or a fit made for a different field configuration."""
    folder = _resolve(path)
    meta_file, model_file = folder / "meta.json", folder / "model.eqx"
    check_regular_file(meta_file, folder, "meta.json")
    meta = read_meta(meta_file)  # the schema, with bounds, before anything is allocated
    config = meta.get("config") or {}
    unknown = sorted(set(config) - set(CouplingODE().get_params()))
    if unknown:
        raise FitFileError(f"{meta_file}: options {unknown} are unknown to this capedyn; refit")
    try:
        est = CouplingODE(**config)
        checked = est._validated()
        template_field = CouplingField.zeros(degree=checked["degree"], coupling=checked["coupling"],
                                             kappa_max=checked["kappa_max"])
    except (TypeError, ValueError) as exc:
        raise FitFileError(f"{meta_file}: invalid configuration ({exc}); refit") from None
    if meta.get("field_config") != template_field.config:
        raise FitFileError(
            f"{meta_file}: made for a different field configuration "
            f"({str(meta.get('field_config'))[:200]}) than this capedyn builds "
            f"({template_field.config}); "
            "refit with this version")
    check_regular_file(model_file, folder, "model.eqx")
    if model_file.stat().st_size > MAX_MODEL_BYTES:
        raise FitFileError(f"{model_file}: far larger than a fit's parameters; refit")
    blob = model_file.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta["model_sha256"]:
        raise FitFileError(f"{model_file}: checksum does not match meta.json (the file is "
                           "corrupt or was replaced); refit")
    n = int(meta["n_families"])
    fams = FamilyParams(jnp.zeros(n), jnp.zeros((n, N_STATE)))
    like = _Saved(Population(template_field, fams, jnp.asarray(0.0)),
                  TransferRule(jnp.zeros(6), jnp.ones(6), jnp.zeros(6), jnp.zeros((6, 6))))
    try:
        saved = eqx.tree_deserialise_leaves(model_file, like)
    except Exception as exc:  # any decode failure means the file is unusable
        raise FitFileError(f"{model_file}: cannot be read as this fit's parameters "
                           f"({type(exc).__name__}: {exc}); refit") from None
    leaves = jax.tree_util.tree_leaves(saved)
    shapes = [np.shape(v) for v in leaves]
    if shapes != [np.shape(v) for v in jax.tree_util.tree_leaves(like)]:
        raise FitFileError(f"{model_file}: its parameters do not have the shapes meta.json "
                           f"describes ({n} families); the two files do not belong together, "
                           "refit")
    if not all(bool(jnp.all(jnp.isfinite(v))) for v in leaves):
        raise FitFileError(f"{model_file}: holds non-finite parameters; refit")
    pop = saved.population
    trajs = [Trajectory(f["name"], tuple(f["models"]), np.array([f["params_b"]]),
                        np.array([f["scores"]])) for f in meta["families"]]
    est._set_population(pop, trajs)
    for f, t in zip(meta["families"], trajs):
        est.starts_[t.family]["models"] = list(f["models"])
    est.transfer_ = saved.transfer
    est.loss_, est.mse_ = meta.get("loss"), meta.get("mse_points2")
    est.history_ = []
    est.metrics_ = meta.get("metrics")
    est.meta_ = meta
    est.training_rows_sha256_ = meta.get("data", {}).get("training_rows_sha256")
    est.training_range_ = range_from_meta(meta)
    return est
