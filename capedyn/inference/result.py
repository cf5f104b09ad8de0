"""The result of a posterior run (:class:`NcPosterior`: the ArviZ InferenceData, the tidy
per-family table of Nc in billions with diagnostics) and its files (netCDF)."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._errors import FitFileError
from .._io import atomic_write
from ..data.tables import BENCHMARKS
from .models import POSTERIOR_PAPER_REFERENCE, CouplingData, PosteriorError, TrajectoryData


QUANTILES = (0.025, 0.16, 0.5, 0.84, 0.975)


def _az():
    """ArviZ, imported on demand with its refactor FutureWarning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


def _quantile(q: float):
    def stat(draws: np.ndarray) -> float:
        return float(np.quantile(draws, q))
    stat.__name__ = f"q{q:g}"
    return stat


SUMMARY_STATS = {**{f"q{q:g}": _quantile(q) for q in QUANTILES}, "median": np.median}
"""Statistics ``az.summary`` computes over every draw of every chain, beside its R-hat and
bulk ESS: the equal-tailed quantiles :data:`QUANTILES` (NumPy's linear interpolation) and
the median. Equal-tailed, not highest-density: Nc is reported in billions, 10^(log10 Nc −
9), and quantiles (unlike HDIs) carry over through that monotone map."""

_QNAMES = [f"q{q:g}" for q in QUANTILES]


def _summary(idata, var_names: Sequence[str]):
    """``az.summary`` of ``var_names`` as an xarray Dataset with a ``metric`` dimension:
    :data:`SUMMARY_STATS` plus ArviZ's diagnostics (rank-normalised split R-hat
    ``r_hat``, bulk and tail ESS, Monte Carlo standard errors), unrounded."""
    az = _az()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.summary(idata, var_names=list(var_names), fmt="xarray", kind="diagnostics",
                          stat_focus="mean", stat_funcs=SUMMARY_STATS, round_to="none")


def _quantiles_b(summary, var: str, **sel) -> dict[str, Any]:
    """Median and equal-tailed 68%/95% intervals of Nc in billions from the summarised
    quantiles of a log10 N variable."""
    da = summary[var].sel(**sel)
    q = np.array([float(da.sel(metric=m)) for m in _QNAMES])
    b = 10.0 ** (q - 9.0)
    return {"nc_median_b": float(b[2]), "nc_ci68_b": [float(b[1]), float(b[3])],
            "nc_ci95_b": [float(b[0]), float(b[4])], "log10_nc_median": float(q[2])}


def _defined(v) -> float | None:
    """A diagnostic as a float, or None where it is undefined (R-hat of one chain)."""
    v = float(v)
    return v if np.isfinite(v) else None


def _diag(summary, variables: Sequence[str], **sel) -> dict[str, float]:
    """Largest R-hat and smallest bulk ESS over ``variables`` (every element of each)."""
    rhat = [float(np.max(summary[v].sel(metric="r_hat", **sel).values)) for v in variables]
    ess = [float(np.min(summary[v].sel(metric="ess_bulk", **sel).values)) for v in variables]
    return {"rhat_max": max(rhat), "ess_bulk_min": min(ess)}


def _build_table(idata, model: str, data) -> pd.DataFrame:
    """Tidy per-family + population table from the posterior, through ``az.summary``."""
    post = idata.posterior
    per_family = ["log10_nc"] + (["gamma0"] if model == "coupling" else ["h"])
    if model == "ode" and "gamma0" in post:  # the ODE model with each family's own γ0
        per_family.append("gamma0")
    pop_vars = [v for v in ("mu", "tau") if v in post]
    var_names = per_family + pop_vars + (["log10_nc_new"] if "log10_nc_new" in post else [])
    s = _summary(idata, var_names)
    rows = []
    for i, fam in enumerate(data.families):
        row = {"family": fam, "kind": "family", "n_models": data.n_models[i],
               "n_obs": data.n_obs[i], **_flat(_quantiles_b(s, "log10_nc", family=fam)),
               **_diag(s, per_family, family=fam),
               "smallest_b": data.smallest_b[i], "largest_b": data.largest_b[i]}
        if "gamma0" in per_family:
            row["gamma0_median"] = float(s["gamma0"].sel(family=fam, metric="median"))
        if model == "ode":
            hmed = s["h"].sel(family=fam, metric="median").sel(benchmark=list(BENCHMARKS))
            row.update({f"h_{b}": float(v) for b, v in zip(BENCHMARKS, hmed.values)})
        rows.append(row)
    if pop_vars:
        rows.append({"family": "population (10^mu)", "kind": "population",
                     "n_models": int(sum(data.n_models)), "n_obs": int(sum(data.n_obs)),
                     **_flat(_quantiles_b(s, "mu")), **_diag(s, pop_vars)})
    if "log10_nc_new" in post:
        rows.append({"family": "new family (predictive)", "kind": "new_family",
                     "n_models": 0, "n_obs": 0, **_flat(_quantiles_b(s, "log10_nc_new")),
                     **_diag(s, ["log10_nc_new"])})
    return pd.DataFrame(rows)


def _flat(q: dict) -> dict:
    return {"nc_median_b": q["nc_median_b"], "nc_ci68_lo_b": q["nc_ci68_b"][0],
            "nc_ci68_hi_b": q["nc_ci68_b"][1], "nc_ci95_lo_b": q["nc_ci95_b"][0],
            "nc_ci95_hi_b": q["nc_ci95_b"][1], "log10_nc_median": q["log10_nc_median"]}




@dataclass
class NcPosterior:
    """Posterior over Nc (and h) from :func:`sample_posterior` or :func:`posterior_family`.

    ``idata`` ArviZ InferenceData (posterior, sample_stats with ``diverging``);
    ``table`` tidy DataFrame (Nc in billions, see :func:`sample_posterior`);
    ``divergences`` total over chains; ``runtime_s`` wall time of sampling."""

    model: str
    idata: Any
    families: tuple[str, ...]
    table: pd.DataFrame
    divergences: int
    divergences_per_chain: list[int]
    runtime_s: float
    config: dict
    data: Any = None
    field_: Any = None
    notes: list[str] = field(default_factory=list)

    # ---- summaries
    def family_rows(self) -> pd.DataFrame:
        return self.table[self.table["kind"] == "family"].reset_index(drop=True)

    def row(self, name: str) -> dict:
        """The table row of a family, ``"population"`` or ``"new_family"`` as a dict."""
        t = self.table
        hit = t[(t["family"] == name) | (t["kind"] == name)]
        if hit.empty:
            raise PosteriorError(f"'{name}' is not in this posterior; families: "
                                 f"{', '.join(self.families)}")
        return hit.iloc[0].to_dict()

    def predictive_interval(self, initial_row, params_b, level=0.9, **kwargs) -> pd.DataFrame:
        """Posterior predictive intervals of a new family's scores at ``params_b`` (billions)
        from its smallest model (ODE-level posterior only); see
        :func:`capedyn.inference.posterior_predictive.predictive_interval`."""
        from .posterior_predictive import predictive_interval

        return predictive_interval(self, initial_row, params_b, level, **kwargs)

    def to_dict(self, families: Sequence[str] | None = None) -> dict:
        """JSON-ready result: ``families`` (list of objects), ``population``,
        ``new_family``, ``divergences`` and run settings."""
        fam_rows = self.family_rows()
        if families:
            fam_rows = fam_rows[fam_rows["family"].isin(list(families))]
        out_f = [_row_json(r) for r in fam_rows.to_dict("records")]
        pop = self.table[self.table["kind"] == "population"]
        new = self.table[self.table["kind"] == "new_family"]
        return {
            "model": self.model,
            "families": out_f,
            "population": _row_json(pop.iloc[0].to_dict(), "10^mu: centre of the family "
                                    "distribution of Nc") if len(pop) else None,
            "new_family": _row_json(new.iloc[0].to_dict(), "posterior predictive Nc of an "
                                    "unseen family, 10^(mu + tau*eps)") if len(new) else None,
            "divergences": int(self.divergences),
            "divergences_per_chain": [int(v) for v in self.divergences_per_chain],
            "rhat_max": _defined(self.table["rhat_max"].max()),  # None: one chain
            "ess_bulk_min": float(self.table["ess_bulk_min"].min()),
            "runtime_s": round(float(self.runtime_s), 2),
            "config": self.config,
            "prior_only": bool(self.config.get("prior_only", False)),
            "notes": list(self.notes),
            "paper_reference": {k: (list(v) if isinstance(v, tuple) else v)
                                for k, v in POSTERIOR_PAPER_REFERENCE.items()},
        }

    # ---- output files
    def to_netcdf(self, path: str | Path, *, replace: bool = True) -> Path:
        """Write the InferenceData (plus this run's settings) to netCDF, atomically.
        ``replace=False`` leaves a file already at ``path`` as it is (an
        :class:`~capedyn._errors.OutputError` says so)."""
        idata = self.idata
        idata.posterior.attrs["capedyn"] = json.dumps(
            {"model": self.model, "families": list(self.families), "config": self.config,
             "data": _data_json(self.data), "runtime_s": self.runtime_s, "notes": self.notes})
        return atomic_write(path, lambda p: idata.to_netcdf(str(p)), replace=replace)



def _row_json(r: dict, definition: str | None = None) -> dict:
    out = {"family": r["family"], "nc_median_b": r["nc_median_b"],
           "nc_ci68_b": [r["nc_ci68_lo_b"], r["nc_ci68_hi_b"]],
           "nc_ci95_b": [r["nc_ci95_lo_b"], r["nc_ci95_hi_b"]],
           "log10_nc_median": r["log10_nc_median"],
           "rhat_max": r["rhat_max"], "ess_bulk_min": r["ess_bulk_min"],
           "n_models": int(r["n_models"]), "n_obs": int(r["n_obs"])}
    for k in ("smallest_b", "largest_b", "gamma0_median", *(f"h_{b}" for b in BENCHMARKS)):
        if k in r and r[k] is not None and not (isinstance(r[k], float) and math.isnan(r[k])):
            out[k] = r[k]
    if definition:
        out["definition"] = definition
    return out


def _data_json(data) -> dict | None:
    if data is None:
        return None
    out = {}
    for k, v in vars(data).items():
        out[k] = v.tolist() if isinstance(v, np.ndarray) else list(v) if isinstance(v, tuple) else v
    out["_type"] = type(data).__name__
    return out


def _data_from_json(d: dict | None):
    if not d:
        return None
    kind = d.pop("_type", None)
    cls = {"CouplingData": CouplingData, "TrajectoryData": TrajectoryData}.get(kind)
    if cls is None:
        return None
    kw = {k: (tuple(v) if k in ("families", "n_models", "smallest_b", "largest_b") else np.asarray(v))
          for k, v in d.items()}
    return cls(**kw)


# --------------------------------------------------------------------------- files

def load_posterior(path: str | Path) -> NcPosterior:
    """Read a posterior written by :meth:`NcPosterior.to_netcdf` (the ODE field is not
    stored: :func:`posterior_family` then needs a fresh ODE-level run)."""
    az = _az()
    p = Path(path)
    if not p.is_file():
        raise FitFileError(f"no posterior file at '{p}'; write one with "
                           "`capedyn posterior --out FILE.nc`")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = az.from_netcdf(str(p))
        meta = json.loads(idata.posterior.attrs["capedyn"])
    except Exception as exc:  # any decode failure: the file is not a capedyn posterior
        raise FitFileError(f"{p}: not a readable capedyn posterior ({type(exc).__name__}: "
                           f"{exc}); rewrite it with `capedyn posterior --out`") from None
    data = _data_from_json(meta.get("data"))
    if data is None:
        raise FitFileError(f"{p}: the posterior lacks its data description; rewrite it")
    div = idata.sample_stats["diverging"].values
    per_chain = [int(v) for v in div.sum(axis=1)]
    return NcPosterior(model=meta["model"], idata=idata, families=tuple(meta["families"]),
                       table=_build_table(idata, meta["model"], data),
                       divergences=int(sum(per_chain)), divergences_per_chain=per_chain,
                       runtime_s=float(meta.get("runtime_s", float("nan"))),
                       config=meta.get("config", {}), data=data, notes=meta.get("notes", []))
