"""A family of your own, end to end: its critical scale Nc with an honest interval, and its
next sizes.

:func:`family_nc` takes a base-model table of one new family (for example the CSV that
``capedyn ingest`` writes; extra columns such as ``n_shot`` are ignored), sets it beside
the shipped families and samples the hierarchical coupling-level posterior
(:func:`capedyn.inference.sampling.sample_posterior` with ``model="coupling"``, row #4 of
docs/nc.md) over all of them at once: the shipped families inform the population, which
is the new family's prior, and the family's own γ12 pairs are its data. The result is the
family's Nc in billions of parameters (median, 68% and 95% intervals) with the sampler's
diagnostics; any R-hat above :data:`RHAT_LIMIT` or any divergent transition sets
``converged`` to False and says so in ``warnings``.

Its scores at the next sizes come from the shipped coupling ODE (``all_families``) with
the family's source terms fitted on its own complete models (``CouplingODE.fit_family``),
integrated from its largest complete model. They are point predictions: no interval is
computed for them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._errors import CapedynError, InputError
from ..data.tables import BENCHMARKS

__all__ = ["family_nc", "FamilyNc", "FAMILY_SAMPLER", "RHAT_LIMIT"]

RHAT_LIMIT = 1.01
"""Largest R-hat accepted as converged (rank-normalised split R-hat, ArviZ)."""

FAMILY_SAMPLER: dict[str, Any] = {"chains": 4, "samples": 5000, "warmup": 1500,
                                  "target_accept": 0.99}
"""NUTS settings of :func:`family_nc`. The population posterior's own defaults (target
0.95) left one divergence and an R-hat of 1.011 on the shipped families plus the
example's Acme family; at target 0.99 the same run had no divergence and R-hat at most
1.002 (seeds 0 and 1; see docs/nc.md)."""

_SCHEMA = ("model", "family", "params_b", *BENCHMARKS, "source", "flags")


@dataclass
class FamilyNc:
    """The result of :func:`family_nc`. Sizes in billions of parameters, scores in percent.

    ``nc`` the family's row of the posterior table (``nc_median_b``, ``nc_ci68_lo_b`` ...
    ``nc_ci95_hi_b``, ``rhat_max``, ``ess_bulk_min``); ``pairs`` its running-coupling
    pairs; ``predictions`` its five scores at ``sizes`` (None when it has fewer than two
    complete models); ``posterior`` the whole :class:`~capedyn.NcPosterior`."""

    family: str
    nc: dict
    pairs: pd.DataFrame
    rhat_max: float
    ess_bulk_min: float
    divergences: int
    converged: bool
    warnings: list[str]
    predictions: pd.DataFrame | None
    start: dict | None
    posterior: Any
    prior_families: tuple[str, ...]
    config: dict
    runtime_s: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready summary (Nc in billions)."""
        nc = self.nc
        return {
            "family": self.family,
            "nc_b": {"median": nc["nc_median_b"],
                     "ci68": [nc["nc_ci68_lo_b"], nc["nc_ci68_hi_b"]],
                     "ci95": [nc["nc_ci95_lo_b"], nc["nc_ci95_hi_b"]]},
            "definition": "coupling-level posterior (docs/nc.md #4), the shipped families "
                          "as the population prior",
            "family_rhat_max": nc["rhat_max"], "family_ess_bulk_min": nc["ess_bulk_min"],
            "rhat_max": self.rhat_max, "ess_bulk_min": self.ess_bulk_min,
            "divergences": self.divergences, "converged": self.converged,
            "warnings": list(self.warnings),
            "n_models": int(nc["n_models"]), "n_pairs": int(nc["n_obs"]),
            "pairs": [{k: _plain(v) for k, v in r.items()}
                      for r in self.pairs.to_dict("records")],
            "start": self.start,
            "predictions": (None if self.predictions is None else
                            [{k: float(v) for k, v in r.items()}
                             for r in self.predictions.to_dict("records")]),
            "prediction_intervals": None,
            "prior_families": list(self.prior_families),
            "config": self.config, "runtime_s": round(self.runtime_s, 1),
            "notes": list(self.notes),
        }


def _plain(v):
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _own_table(table, family: str | None) -> tuple[pd.DataFrame, str]:
    """The user's rows in the base-model schema (validated), and the family's name."""
    from ..data.tables import load_base_models, validate_base_models

    if isinstance(table, (str, Path)):
        df = load_base_models(table)
    elif isinstance(table, pd.DataFrame):
        df = validate_base_models(table)
    else:
        raise InputError("family_nc needs a base-model table: a DataFrame or a CSV path")
    df = df[[c for c in _SCHEMA if c in df.columns]]
    names = [str(f) for f in dict.fromkeys(df["family"])]
    if family is None:
        if len(names) != 1:
            raise InputError(f"the table holds {len(names)} families ({', '.join(names)}); "
                             "name the one to analyse (family=..., --family)")
        family = names[0]
    hits = [n for n in names if n.lower() == str(family).strip().lower()]
    if not hits:
        raise InputError(f"no family '{family}' in the table; it holds {', '.join(names)}")
    return df[df["family"] == hits[0]].reset_index(drop=True), hits[0]


def _merged(own: pd.DataFrame, name: str, prior: pd.DataFrame) -> pd.DataFrame:
    clash = [f for f in dict.fromkeys(prior["family"]) if str(f).lower() == name.lower()]
    if clash:
        raise InputError(f"family '{name}' is also a shipped family; give yours another name "
                         "(ingest --family NAME, or the table's family column)")
    same = sorted(set(own["model"]) & set(prior["model"]))
    if same:
        raise InputError(f"model name(s) {same} are also in the shipped table; rename them "
                         "in your table")
    cols = [c for c in prior.columns if c in own.columns]
    return pd.concat([prior[cols], own[cols]], ignore_index=True)


def _next_sizes(own: pd.DataFrame) -> list[float]:
    top = float(own["params_b"].max())
    return [round(2 * top, 3), round(4 * top, 3)]


def family_nc(table, family: str | None = None, *, sizes: Sequence[float] | None = None,
              prior_families: Sequence[str] | None = None, chains: int | None = None,
              samples: int | None = None, warmup: int | None = None,
              target_accept: float | None = None, seed: int = 0, predict: bool = True,
              fit: str = "all_families", progress: bool = True) -> FamilyNc:
    """A new family's critical scale Nc from the coupling-level posterior with the shipped
    families as the population prior, and its scores at the next sizes.

    ``table``: a base-model table (DataFrame or CSV path; percent scores, sizes in
    billions) holding the family; ``family`` picks one when it holds several.
    ``sizes``: next sizes to predict in billions (default 2x and 4x its largest model).
    ``prior_families``: the shipped families to pool with (default all).
    ``chains``/``samples``/``warmup``/``target_accept``: NUTS settings (default
    :data:`FAMILY_SAMPLER`); ``seed`` the PRNG seed. ``predict=False`` skips the ODE
    predictions; ``fit`` is the coupling-ODE fit they come from. Raises
    :class:`~capedyn.CapedynError` when the family has no usable running-coupling pair
    (two models with HellaSwag and TruthfulQA whose HellaSwag differs by at least 0.5)."""
    from ..coupling.running import running_coupling
    from ..data.tables import load_base_models, select_families
    from .sampling import sample_posterior

    t0 = time.perf_counter()
    own, name = _own_table(table, family)
    pairs = running_coupling(own)
    if not int((~pairs["skipped"].astype(bool)).sum()):
        raise CapedynError(f"family '{name}' has no usable running-coupling pair: it needs two "
                           "models with HellaSwag and TruthfulQA whose HellaSwag differs by at "
                           "least 0.5 points")
    if sizes is not None:
        sizes = [float(s) for s in np.atleast_1d(np.asarray(sizes, dtype=float))]
        if not sizes or not all(np.isfinite(s) and s > 0 for s in sizes):
            raise InputError(f"sizes must be positive numbers of billions, got {sizes}")
    prior = select_families(load_base_models(), list(prior_families) if prior_families else None)
    merged = _merged(own, name, prior)
    nuts = {k: (FAMILY_SAMPLER[k] if v is None else v) for k, v in
            (("chains", chains), ("samples", samples), ("warmup", warmup),
             ("target_accept", target_accept))}
    from .._progress import Progress

    with Progress(2 if predict else 1, f"family {name}", enabled=progress) as stages:
        stages.update(0, stage=f"NUTS over {len(set(merged['family']))} families")
        post = sample_posterior(merged, model="coupling", seed=seed, progress=progress, **nuts)
        pred, start, note = None, None, None
        if predict:
            stages.update(1, stage="next sizes (coupling ODE)")
            pred, start, note = _predictions(own, name, sizes or _next_sizes(own), fit)
        stages.update(2 if predict else 1, stage="done")
    row = post.row(name)
    rhat = float(post.table["rhat_max"].max())
    ess = float(post.table["ess_bulk_min"].min())
    warn = []
    if rhat > RHAT_LIMIT:
        warn.append(f"NOT CONVERGED: R-hat {rhat:.3f} > {RHAT_LIMIT} (largest over the run; "
                    f"{name}: {row['rhat_max']:.3f}); rerun with more --warmup/--samples")
    if post.divergences:
        warn.append(f"NOT CONVERGED: {post.divergences} divergent transition(s); rerun with "
                    "a higher --target-accept")
    notes = list(post.notes) + ([note] if note else [])
    config = {"seed": seed, **nuts, "fit": fit if predict else None,
              "sizes": None if pred is None else list(pred["params_b"])}
    return FamilyNc(family=name, nc=row, pairs=pairs, rhat_max=rhat, ess_bulk_min=ess,
                    divergences=int(post.divergences), converged=not warn, warnings=warn,
                    predictions=pred, start=start, posterior=post,
                    prior_families=tuple(f for f in post.families if f != name),
                    config=config, runtime_s=time.perf_counter() - t0, notes=notes)


def _predictions(own: pd.DataFrame, name: str, sizes: list[float], fit: str):
    """Scores at ``sizes`` from the family's largest complete model (point predictions)."""
    from ..data.tables import complete_models
    from ..models.persistence import load_fit

    complete = complete_models(own).sort_values("params_b")
    if len(complete) < 2:
        return None, None, (f"no predictions: '{name}' has {len(complete)} model(s) with all "
                            "five scores; the coupling ODE needs two")
    model = load_fit(fit)
    model.progress = None  # a bar on a terminal only
    model.fit_family(own, name)
    top = complete.iloc[-1]
    pred = model.predict(top, sizes, family=name)
    start = {"model": str(top["model"]), "params_b": float(top["params_b"])}
    return pred, start, None
