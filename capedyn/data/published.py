"""The authors' published internal-coupling and steering results, as curated tables.

Built from their JSON files by ``scripts/build_steering_data.py``; provenance and the
oddities of the source files are in ``benchmarks_data/DATA.md``. Only pandas is needed
(no PyTorch).

* :func:`load_internal_coupling` — one row per model and measure (``unit_net``: net
  coupling over attention heads or units; ``pair_net``: coupling of one benchmark pair;
  ``hidden_cosine`` / ``output_projection_cosine`` / ``wider_projection_cosine``: the
  hidden-state versus output-projection comparison), or with ``per_layer=True`` one row per
  model and layer.
* :func:`load_steering_results` — one row per steered prompt, or with ``runs=True`` one
  row per published run, with the authors' "changed" count next to the count recomputed
  from the stored texts.

Couplings and cosines are dimensionless, in [-1, 1]; ``params_b`` is in billions.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from .tables import DataError

_REQUIRED = {
    "internal_coupling.csv": ("model", "family", "params_b", "measure", "value", "source"),
    "internal_coupling_layers.csv": ("model", "layer", "coupling", "source"),
    "steering_results.csv": ("model", "run", "prompt", "unsteered", "steered",
                             "changed_reported", "text_identical", "source"),
    "steering_runs.csv": ("model", "run", "n_prompts", "n_changed_reported", "source"),
}


def _read(name: str, path: str | Path | None) -> pd.DataFrame:
    if path is None:
        res = resources.files("capedyn.benchmarks_data").joinpath(name)
        with resources.as_file(res) as p:
            df = pd.read_csv(p, keep_default_na=False, na_values=[""])
        label = f"<capedyn>/benchmarks_data/{name}"
    else:
        p = Path(path)
        if not p.is_file():
            raise DataError("file not found", file=str(p), hint=f"Pass a copy of {name}")
        try:
            df = pd.read_csv(p, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"not a readable CSV ({exc})", file=str(p)) from None
        label = str(p)
    missing = [c for c in _REQUIRED[name] if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}", file=label,
                        hint=f"Expected the columns of {name}")
    for col in ("flags", "pair", "phase", "prompt_name"):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    df.attrs["label"] = label
    return df


def load_internal_coupling(per_layer: bool = False,
                           path: str | Path | None = None) -> pd.DataFrame:
    """The published internal-coupling measurements.

    ``per_layer=False``: ``internal_coupling.csv`` (columns model, family, params_b,
    measure, pair, value, n_layers, n_units, cooperative_pct, competing_count, early, mid,
    late, layer_min, layer_max, source, flags). ``per_layer=True``:
    ``internal_coupling_layers.csv`` (model, layer counted from 0, coupling, source).
    ``path``: read this copy instead of the shipped table."""
    return _read("internal_coupling_layers.csv" if per_layer else "internal_coupling.csv",
                 path)


def load_steering_results(runs: bool = False, path: str | Path | None = None) -> pd.DataFrame:
    """The published steering runs.

    ``runs=False``: ``steering_results.csv``, one row per prompt (model, run, probe_layer,
    prompt_name, prompt, phase, cos_truth, strength, unsteered, steered, changed_reported,
    text_identical, source). ``runs=True``: ``steering_runs.csv`` (model, run, phase,
    probe_layer, n_prompts, n_changed_reported, n_changed_by_text, n_judged_correct,
    source); ``n_judged_correct`` is empty because no published file judges whether a
    steered output is truer."""
    return _read("steering_runs.csv" if runs else "steering_results.csv", path)
