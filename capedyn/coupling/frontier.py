"""Frontier models: the SWE -> GPQA population line, the h-field, per-lab dynamics,
benchmark saturation and the paper's cascade of critical scales (see docs/concepts.md).

Units: SWE-bench Verified (``swe_bench``) and GPQA Diamond (``gpqa_diamond``) are percent
(0-100); h is in GPQA points; cascade scales are billions of parameters.

The population line is GPQA = a * SWE + b by ordinary least squares. The field of a model is
its residual h = GPQA - (a * SWE + b): positive means more graduate-level reasoning than its
coding score predicts ("reasoning-rich"), negative the reverse ("coding-rich"), and
|h| > 5 points marks a specialist.

Which rows enter a fit: by default the frozen panel (every row whose ``subset`` is not
``post_cutoff``; a table without a ``subset`` column is used whole). The post-cutoff rows
were released after the paper froze its regression, so they are out-of-sample checks of
the frozen line; pass ``include_post_cutoff=True`` to fit on them as well.

Paper numbers live only in :data:`PAPER_COEFFICIENTS`, :data:`PAPER_REFERENCE` and
:data:`CASCADE`, all labelled as the paper's; everything else is computed from the table.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .._errors import PERCENT_HINT, InputError, InputTypeError
from .._stats import ols_line, paired_bootstrap
from ..data.tables import DataError, check_percent_scores

SWE, GPQA = "swe_bench", "gpqa_diamond"
SPECIALIST_THRESHOLD = 5.0
"""|h| above this many GPQA points marks a specialist."""
ON_TREND_TOLERANCE = 0.05
"""|h| at or below this (points) reads as "on the trend": it rounds to 0.0 at one decimal."""
POST_CUTOFF = "post_cutoff"

PAPER_COEFFICIENTS: dict[str, Any] = {
    "slope": 0.513,
    "intercept": 46.4,
    "label": "paper (frozen 34-model regression GPQA = 0.513*SWE + 46.4)",
}
"""The paper's frozen population line, as published (a reference, not a fit)."""

PAPER_REFERENCE: dict[str, Any] = {
    "label": "paper's reported values (frontier analysis); compare, never copy",
    "slope": 0.513,
    "intercept": 46.4,
    "r": 0.72,
    "n_models": 34,
    "n_labs": 10,
    "lab_mean_h": {"Google": 5.5, "xAI": 5.1, "OpenAI": 3.1, "Meta": 2.4,
                   "DeepSeek": 1.9, "MiniMax": -2.3, "Anthropic": -6.9},
    "lab_mean_h_definition": ("mean h over the lab's 'core' rows where it has any, else over "
                              "all its rows (xAI has no core rows); see lab_summary"),
    "lab_slope_range": (0.23, 1.15),
    "leave_one_lab_out_mae": 9.2,
    "leave_one_lab_out_min_models": 3,
    "worked_example": {"swe": 87.6, "gpqa": 94.2, "predicted_gpqa": 91.3, "h": 2.9},
    "saturation_rule": "spent when the top five models sit within 2 points",
}
"""The paper's reference numbers for the frontier analysis, kept beside computed ones."""


@dataclass(frozen=True)
class CascadeScale:
    """One critical scale of the paper's cascade. ``low_b``/``high_b`` in billions of
    parameters (``high_b`` None: open-ended)."""

    name: str
    low_b: float
    high_b: float | None
    status: str  # "measured" or "predicted"
    flips: str
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CASCADE: tuple[CascadeScale, ...] = (
    CascadeScale("Nc1", 0.1, 7.0, "measured",
                 "HellaSwag <-> TruthfulQA coupling changes sign (tax -> bonus)",
                 "running coupling across base-model families (OPT ~0.12B .. Falcon ~7B)"),
    CascadeScale("Nc2", 30.0, 72.0, "measured",
                 "internal coupling crashes",
                 "OPT internal coupling 0.876 at 13B -> 0.356 at 30B (a 59% drop)"),
    CascadeScale("Nc3", 114.0, 114.0, "predicted",
                 "SWE-bench saturates; the active pair moves on",
                 "extrapolated, not measured"),
    CascadeScale("Nc4", 200.0, None, "predicted",
                 "next benchmark hand-off (IFEval -> HLE in the authors' predictions)",
                 "extrapolated, not measured"),
)
"""The paper's cascade of critical scales, as the paper states them."""


# --------------------------------------------------------------------------- validation

def _label(df: pd.DataFrame) -> str:
    return str(df.attrs.get("label", "<frontier table>"))


def _numeric(df: pd.DataFrame, column: str, label: str, *, scores: bool) -> np.ndarray:
    """Column as float64; names the row of the first bad value. NaN only if not ``scores``."""
    if column not in df.columns:
        raise DataError(f"missing column '{column}'; found {list(df.columns)}", file=label,
                        column=column, hint="Pass a table that has this column")
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    words = [r for r, v in zip(raw.tolist(), values) if math.isnan(v) and str(r).strip()
             and not (isinstance(r, float) and math.isnan(r))]
    if words and np.isnan(values).all():
        raise DataError(f"the column is not numeric (e.g. '{words[0]}')", file=label,
                        column=column, hint="Pick a numeric score column")
    for i, (r, v) in enumerate(zip(raw.tolist(), values)):
        blank = r is None or (isinstance(r, float) and math.isnan(r)) or str(r).strip() == ""
        if math.isnan(v) and not blank:
            raise DataError(f"'{r}' is not a number", file=label, row=i + 1, column=column,
                            hint="Use plain decimal numbers")
        if math.isinf(v):
            raise DataError(f"'{r}' is not finite", file=label, row=i + 1, column=column,
                            hint="Leave a missing value empty")
        if scores and math.isnan(v):
            raise DataError("value is empty", file=label, row=i + 1, column=column,
                            hint="Every frontier model needs both scores")
        if scores and not 0.0 <= v <= 100.0:
            raise DataError(f"score {v:g} is outside [0, 100]", file=label, row=i + 1,
                            column=column, hint="Scores are percentages from 0 to 100")
    return values


def _frontier_rows(df: pd.DataFrame, include_post_cutoff: bool) -> pd.DataFrame:
    """Validated copy of the rows to use, with float score columns."""
    if not isinstance(df, pd.DataFrame):
        raise InputTypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    label = _label(df)
    if len(df) == 0:
        raise DataError("the table is empty", file=label, hint="Add frontier models")
    for col in ("model", "lab"):
        if col not in df.columns:
            raise DataError(f"missing column '{col}'; found {list(df.columns)}", file=label,
                            column=col, hint="Load the table with load_frontier_models")
    out = df.copy()
    out[SWE] = _numeric(df, SWE, label, scores=True)
    out[GPQA] = _numeric(df, GPQA, label, scores=True)
    both = np.concatenate([out[SWE].to_numpy(float), out[GPQA].to_numpy(float)])
    if both.size >= 2 and both.max() <= 1.0:
        raise DataError(f"every score lies in [0, 1] (largest {both.max():g}); the table "
                        "looks like fractions", file=label, column=SWE, hint=PERCENT_HINT)
    if not include_post_cutoff and "subset" in out.columns:
        out = out[out["subset"].astype(str).str.strip().str.lower() != POST_CUTOFF]
    if len(out) == 0:
        raise DataError("no rows left after dropping the post-cutoff models", file=label,
                        column="subset", hint="Pass include_post_cutoff=True")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- the line

def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    slope, intercept, _ = ols_line(
        x, y, degenerate="every model has the same SWE score; the slope is undefined")
    return slope, intercept


@dataclass(frozen=True)
class PopulationLine:
    """GPQA = slope * SWE + intercept fitted by least squares (percent -> percent).

    ``slope_ci``/``intercept_ci`` are bootstrap percentile intervals at ``confidence``
    (cases resampled with replacement); ``n_degenerate`` resamples with a single SWE value
    were dropped. ``boot_slopes``/``boot_intercepts`` keep the resamples for bands.
    """

    slope: float
    intercept: float
    r: float
    n: int
    slope_ci: tuple[float, float]
    intercept_ci: tuple[float, float]
    confidence: float
    n_bootstrap: int
    n_degenerate: int
    seed: int
    include_post_cutoff: bool
    swe_range: tuple[float, float]
    boot_slopes: np.ndarray = field(repr=False, compare=False)
    boot_intercepts: np.ndarray = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        rows = "rows (post-cutoff included)" if self.include_post_cutoff else "frozen rows"
        return f"fit on {self.n} {rows}: GPQA = {self.slope:.4f}*SWE + {self.intercept:.3f}"

    def predict(self, swe):
        """Predicted GPQA (percent) at SWE (percent)."""
        return self.slope * np.asarray(swe, dtype=float) + self.intercept

    def band(self, swe, confidence: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap percentile band of the fitted GPQA at each SWE."""
        q = self.confidence if confidence is None else confidence
        x = np.atleast_1d(np.asarray(swe, dtype=float))
        preds = self.boot_slopes[:, None] * x[None, :] + self.boot_intercepts[:, None]
        lo, hi = np.percentile(preds, [50 * (1 - q), 50 * (1 + q)], axis=0)
        return lo, hi

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in (
            "slope", "intercept", "r", "n", "slope_ci", "intercept_ci", "confidence",
            "n_bootstrap", "n_degenerate", "seed", "include_post_cutoff", "swe_range")}
        # JSON has no NaN: intervals are None when no bootstrap was drawn
        d["slope_ci"] = None if math.isnan(self.slope_ci[0]) else list(self.slope_ci)
        d["intercept_ci"] = None if math.isnan(self.intercept_ci[0]) else list(self.intercept_ci)
        d["swe_range"] = list(self.swe_range)
        d["label"] = self.label
        return d


def population_line(df: pd.DataFrame, n_bootstrap: int = 2000, seed: int = 0, *,
                    include_post_cutoff: bool = False,
                    confidence: float = 0.95) -> PopulationLine:
    """Fit the population line GPQA = a * SWE + b over the frontier table.

    By default on the frozen panel (rows whose ``subset`` is not ``post_cutoff``: the 34
    models of the shipped table), as the paper froze it; ``include_post_cutoff=True``
    fits on every row. Returns a :class:`PopulationLine` with Pearson r, n and bootstrap
    percentile intervals for a and b (``n_bootstrap`` resamples of the models drawn with
    replacement by :func:`capedyn._stats.paired_bootstrap` from ``seed``, the bootstrap the
    Nc of the running coupling uses too; ``n_bootstrap=0`` skips them).
    """
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must lie in (0, 1), got {confidence}")
    if n_bootstrap < 0:
        raise InputError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    rows = _frontier_rows(df, include_post_cutoff)
    if len(rows) < 3:
        raise DataError(f"{len(rows)} model(s): the line needs at least 3", file=_label(df),
                        hint="Add models to the table")
    x, y = rows[SWE].to_numpy(), rows[GPQA].to_numpy()
    slope, intercept = _least_squares(x, y)
    sy = y.std()
    r = float(np.corrcoef(x, y)[0, 1]) if sy > 0 else 0.0

    boot = paired_bootstrap(x, y, n_bootstrap, seed)
    slopes, intercepts = boot.slopes[boot.valid], boot.intercepts[boot.valid]
    n_degenerate = boot.n_degenerate
    if slopes.size:
        tails = [50 * (1 - confidence), 50 * (1 + confidence)]
        slope_ci = tuple(float(v) for v in np.percentile(slopes, tails))
        intercept_ci = tuple(float(v) for v in np.percentile(intercepts, tails))
    else:
        slope_ci = intercept_ci = (math.nan, math.nan)
    return PopulationLine(slope, intercept, r, len(rows), slope_ci, intercept_ci, confidence,
                          n_bootstrap, n_degenerate, seed, include_post_cutoff,
                          (float(x.min()), float(x.max())), slopes, intercepts)


def _coefficients(line) -> tuple[float, float, str]:
    """(slope, intercept, label) from a PopulationLine, a mapping or a (slope, intercept) pair."""
    if isinstance(line, PopulationLine):
        return line.slope, line.intercept, line.label
    if isinstance(line, Mapping):
        try:
            a, b = float(line["slope"]), float(line["intercept"])
        except KeyError as exc:
            raise InputError(f"line mapping lacks {exc}; give 'slope' and 'intercept'") from None
        return a, b, str(line.get("label", f"GPQA = {a:g}*SWE + {b:g}"))
    try:
        a, b = (float(v) for v in line)
    except (TypeError, ValueError):
        raise InputTypeError("line must be a PopulationLine, a mapping with 'slope' and "
                        "'intercept', or a (slope, intercept) pair") from None
    return a, b, f"GPQA = {a:g}*SWE + {b:g}"


# --------------------------------------------------------------------------- the field

def h_field(swe, gpqa, slope: float, intercept: float):
    """h = GPQA - (slope * SWE + intercept), in GPQA points (vectorised).

    ``swe`` and ``gpqa`` are percentages in [0, 100] (scalars or arrays of one shape);
    anything else raises :class:`~capedyn._errors.InputError` (a ValueError) naming the
    argument, as do two fractions (``swe=0.876, gpqa=0.942``: give 87.6 and 94.2).
    Returns a float for scalar input.
    """
    checked = check_percent_scores({"swe": swe, "gpqa": gpqa})  # refuses fractions too
    x, y = checked["swe"], checked["gpqa"]
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        raise InputError(f"slope and intercept must be finite, got {slope}, {intercept}")
    h = y - (slope * x + intercept)
    return float(h) if np.ndim(h) == 0 else h


def h_direction(h: float, tolerance: float = ON_TREND_TOLERANCE) -> str:
    """'reasoning-rich' (h > 0), 'coding-rich' (h < 0) or 'on the trend' (|h| <= tolerance)."""
    h = float(h)
    if not math.isfinite(h):
        raise InputError(f"h must be finite, got {h}")
    if abs(h) <= tolerance:
        return "on the trend"
    return "reasoning-rich" if h > 0 else "coding-rich"


def is_specialist(h: float, threshold: float = SPECIALIST_THRESHOLD) -> bool:
    """True when |h| exceeds ``threshold`` GPQA points (5 by default)."""
    return abs(float(h)) > threshold


def reading(h: float, tolerance: float = ON_TREND_TOLERANCE) -> str:
    """One-line human reading of a field value h (GPQA points)."""
    direction = h_direction(h, tolerance)
    if direction == "on the trend":
        return f"on the trend (h = {h:+.1f}): GPQA is what the SWE-bench score predicts"
    side = "above" if h > 0 else "below"
    tag = f"{direction} specialist" if is_specialist(h) else direction
    flag = f", |h| > {SPECIALIST_THRESHOLD:g}" if is_specialist(h) else ""
    return (f"{tag} (h = {h:+.1f}{flag}): GPQA {abs(h):.1f} points {side} "
            "what the SWE-bench score predicts")


# --------------------------------------------------------------------------- per lab

_RELEASE = re.compile(r"^\s*(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?\s*$")


def release_key(text) -> tuple[int, int, int, int]:
    """Sort key for release dates 'YYYY', 'YYYY-MM', 'YYYY-MM-DD'; unknown sorts last.

    A year-only date sorts at the start of its year (its month and day count as 0).
    """
    m = _RELEASE.match(str(text)) if text is not None else None
    if m is None:
        return (1, 0, 0, 0)
    y, mo, d = (int(g) if g else 0 for g in m.groups())
    if mo > 12 or d > 31:
        return (1, 0, 0, 0)
    return (0, y, mo, d)


def _is_core(rows: pd.DataFrame) -> np.ndarray:
    if "subset" not in rows.columns:
        return np.zeros(len(rows), dtype=bool)
    return (rows["subset"].astype(str).str.strip().str.lower() == "core").to_numpy()


def lab_summary(df: pd.DataFrame, line, *, include_post_cutoff: bool = False,
                min_models: int = 3) -> list[dict[str, Any]]:
    """Per-lab field statistics against ``line`` (a PopulationLine, PAPER_COEFFICIENTS, or
    a (slope, intercept) pair), sorted by mean h (largest first).

    Each entry: ``lab``, ``n``, ``n_core``, ``mean_h`` (all the lab's rows used),
    ``mean_h_core`` (its ``subset == core`` rows; None without any), ``std_h`` (sample,
    ddof=1; None for one model), the lab's own least-squares ``slope``/``intercept`` when it
    has at least ``min_models`` models with distinct SWE (else None, and ``note`` says why),
    and ``trajectory``: the lab's models in release order (unknown dates last) with h.
    The paper's per-lab means equal ``mean_h_core`` where a lab has core rows and
    ``mean_h`` otherwise.
    """
    a, b, _ = _coefficients(line)
    rows = _frontier_rows(df, include_post_cutoff)
    rows["h"] = h_field(rows[SWE].to_numpy(), rows[GPQA].to_numpy(), a, b)
    rows["_core"] = _is_core(rows)
    rows["_order"] = np.arange(len(rows))
    out = []
    for lab, g in rows.groupby("lab", sort=False):
        h = g["h"].to_numpy()
        core = g.loc[g["_core"], "h"].to_numpy()
        slope = intercept = None
        note = ""
        if len(g) < min_models:
            note = f"{len(g)} model{'s' if len(g) > 1 else ''}: no slope (needs >= {min_models})"
        else:
            try:
                slope, intercept = _least_squares(g[SWE].to_numpy(), g[GPQA].to_numpy())
            except ValueError:
                note = "every model has the same SWE score: no slope"
        releases = g["release"] if "release" in g.columns else pd.Series([""] * len(g),
                                                                          index=g.index)
        keys = [(release_key(r), o) for r, o in zip(releases, g["_order"])]
        traj = []
        for _, i in sorted(zip(keys, g.index)):
            row = g.loc[i]
            traj.append({"model": str(row["model"]), "release": str(releases.loc[i]),
                         "subset": str(row.get("subset", "")), "swe_bench": float(row[SWE]),
                         "gpqa_diamond": float(row[GPQA]), "h": float(row["h"])})
        out.append({
            "lab": str(lab), "n": int(len(g)), "n_core": int(core.size),
            "mean_h": float(h.mean()),
            "mean_h_core": float(core.mean()) if core.size else None,
            "std_h": float(h.std(ddof=1)) if h.size > 1 else None,
            "slope": slope, "intercept": intercept, "note": note, "trajectory": traj,
        })
    out.sort(key=lambda e: -e["mean_h"])
    return out


def model_fields(df: pd.DataFrame, line) -> list[dict[str, Any]]:
    """Every row of ``df`` (post-cutoff included) with predicted GPQA, h and its reading."""
    a, b, _ = _coefficients(line)
    rows = _frontier_rows(df, include_post_cutoff=True)
    pred = a * rows[SWE].to_numpy() + b
    h = h_field(rows[SWE].to_numpy(), rows[GPQA].to_numpy(), a, b)
    out = []
    for i, row in rows.iterrows():
        out.append({"model": str(row["model"]), "lab": str(row["lab"]),
                    "release": str(row.get("release", "")), "subset": str(row.get("subset", "")),
                    "swe_bench": float(row[SWE]), "gpqa_diamond": float(row[GPQA]),
                    "predicted_gpqa": float(pred[i]), "h": float(h[i]),
                    "direction": h_direction(h[i]), "specialist": is_specialist(h[i])})
    return out


# --------------------------------------------------------------------------- validation of the line

def leave_one_lab_out(df: pd.DataFrame, min_models: int = 3, *,
                      include_post_cutoff: bool = False) -> dict[str, Any]:
    """Hold out each lab in turn: refit the line on the other labs, predict the held-out
    lab's GPQA from its SWE, and score the MAE (GPQA points).

    Returns ``per_lab`` (lab, n_test, mae, the refit slope/intercept), ``mean_mae`` and
    ``std_mae`` over labs with at least ``min_models`` models (population std, ddof=0),
    the same over all labs (``mean_mae_all``, ``std_mae_all``), and ``pooled_mae`` over
    every held-out model. Rows as in :func:`population_line`.
    """
    rows = _frontier_rows(df, include_post_cutoff)
    labs = list(dict.fromkeys(rows["lab"]))
    if len(labs) < 2:
        raise DataError(f"{len(labs)} lab(s): leaving one out needs at least 2",
                        file=_label(df), column="lab", hint="Add models from other labs")
    x, y, lab = rows[SWE].to_numpy(), rows[GPQA].to_numpy(), rows["lab"].to_numpy()
    per_lab, errors = [], []
    for name in labs:
        test = lab == name
        if (~test).sum() < 3:
            raise DataError(f"without '{name}' only {(~test).sum()} model(s) remain; the line "
                            "needs at least 3", file=_label(df), column="lab")
        a, b = _least_squares(x[~test], y[~test])
        err = np.abs(a * x[test] + b - y[test])
        errors.append(err)
        per_lab.append({"lab": str(name), "n_test": int(test.sum()), "mae": float(err.mean()),
                        "slope": a, "intercept": b})
    big = [e["mae"] for e in per_lab if e["n_test"] >= min_models]
    every = [e["mae"] for e in per_lab]
    return {
        "min_models": min_models, "n_models": int(len(rows)),
        "include_post_cutoff": include_post_cutoff, "per_lab": per_lab,
        "n_labs": len(big),
        "mean_mae": float(np.mean(big)) if big else None,
        "std_mae": float(np.std(big)) if big else None,
        "n_labs_all": len(every),
        "mean_mae_all": float(np.mean(every)), "std_mae_all": float(np.std(every)),
        "pooled_mae": float(np.concatenate(errors).mean()),
    }


def extrapolation_check(df: pd.DataFrame, fraction: float = 0.5, *,
                        include_post_cutoff: bool = False) -> dict[str, Any]:
    """Fit on the lowest-SWE ``fraction`` of the models, predict the rest, report MAE.

    Models are ordered by SWE (ties in table order); the first floor(fraction * n) train.
    ``mae_full_fit`` is the in-sample MAE of the line fitted on all rows over the same test
    models, for scale: the gap is the cost of extrapolating up the SWE axis.
    """
    if not 0.0 < fraction < 1.0:
        raise InputError(f"fraction must lie in (0, 1), got {fraction}")
    rows = _frontier_rows(df, include_post_cutoff)
    order = np.argsort(rows[SWE].to_numpy(), kind="stable")
    k = int(math.floor(fraction * len(rows)))
    if k < 3 or k >= len(rows):
        raise DataError(f"fraction {fraction} of {len(rows)} models gives {k} to train and "
                        f"{len(rows) - k} to test; need >= 3 and >= 1", file=_label(df),
                        hint="Use a larger table or another fraction")
    x, y = rows[SWE].to_numpy()[order], rows[GPQA].to_numpy()[order]
    a, b = _least_squares(x[:k], y[:k])
    resid = a * x[k:] + b - y[k:]
    fa, fb = _least_squares(x, y)
    return {
        "fraction": fraction, "n_train": k, "n_test": int(len(x) - k),
        "swe_max_train": float(x[k - 1]), "swe_min_test": float(x[k]),
        "slope": a, "intercept": b, "mae": float(np.abs(resid).mean()),
        "bias": float(resid.mean()),
        "mae_full_fit": float(np.abs(fa * x[k:] + fb - y[k:]).mean()),
    }


# --------------------------------------------------------------------------- saturation

def saturation(df: pd.DataFrame, column: str, top: int = 5,
               threshold: float = 2.0) -> dict[str, Any]:
    """Spread (max - min, in the column's units) of the ``top`` highest values of a numeric
    column; the benchmark is "spent" when the spread is below ``threshold`` (the paper's rule:
    the top five within 2 points). Works on any table; empty cells are skipped.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputTypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    label = _label(df)
    if len(df) == 0:
        raise DataError("the table is empty", file=label, hint="Add models")
    if int(top) != top or top < 2:
        raise InputError(f"top must be an integer >= 2, got {top}")
    if not (math.isfinite(threshold) and threshold > 0):
        raise InputError(f"threshold must be a positive number of points, got {threshold}")
    values = _numeric(df, column, label, scores=False)
    keep = ~np.isnan(values)
    if not keep.any():
        raise DataError("the column has no numeric values", file=label, column=column,
                        hint="Pick a score column")
    if keep.sum() < top:
        raise DataError(f"only {int(keep.sum())} model(s) have a value; top={top} needs more",
                        file=label, column=column, hint="Lower --top or add models")
    names = (df["model"].astype(str).to_numpy() if "model" in df.columns
             else np.array([f"row {i + 1}" for i in range(len(df))]))
    idx = np.flatnonzero(keep)
    best = idx[np.argsort(-values[idx], kind="stable")[: int(top)]]
    spread = float(values[best].max() - values[best].min())
    return {
        "column": column, "top": int(top), "threshold": float(threshold),
        "n": int(keep.sum()), "spread": spread, "spent": spread < threshold,
        "leaders": [{"model": str(names[i]), "value": float(values[i])} for i in best],
    }
