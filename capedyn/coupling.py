"""Running coupling γ12 between HellaSwag and TruthfulQA, the critical scale Nc, and the
algebraic phase classifier (definitions: docs/concepts.md).

Units used throughout:

* scores (``hellaswag``, ``truthfulqa``) in percent, 0-100;
* sizes ``params_b`` in billions of parameters; ``log10_n`` is log10 of the size in
  *parameters* (so 1B ↦ 9.0);
* γ12 in TQA points per HS point; Nc reported in billions (``nc_b``).

The population fit is γ12 = A·log10 N + B and Nc = 10^(−B/A). Nc is only defined as a
tax→bonus transition when A > 0 (γ12 rises through zero); with A ≤ 0 every function here
returns ``nc_b = NaN`` together with an explicit ``crossing`` string saying why, never a
number that looks meaningful.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ._errors import CapedynError, InputError
from ._json import to_jsonable
from ._stats import ols_line, paired_bootstrap
from .data import (CURATED_FAMILIES, WEB_TRAINED_PAPER, DataError, check_percent_scores,
                   validate_table_columns)
from ._jax import scoped_x64

__all__ = [
    "PAPER_REFERENCE", "COUPLING_PAPER_REFERENCE", "MIN_DELTA_HS", "CouplingError", "CouplingFit", "SignTest",
    "PhaseResult", "NcBootstrap", "running_coupling", "usable_pairs", "population_fit",
    "family_couplings", "sign_test", "phase_classifier", "bootstrap_nc",
    "bench_bootstrap", "web_trained_families", "paper_web_trained_families",
    "resolve_families",
]

MIN_DELTA_HS = 0.5
"""|ΔHS| below this many points makes γ12 ill-conditioned: the pair is skipped."""

CLASSIFIER_CONSTANT = 0.187
"""TQA_c = sqrt(0.187·HS), scores as fractions."""

PAPER_REFERENCE: dict[str, Any] = {
    "_note": "The CAPE papers' own figures, from their own data versions. Shown "
             "beside capedyn's computed values for comparison; never used in a computation.",
    "population_fit": {"A": 0.629, "B": -5.886, "r2": 0.54, "nc_b": 2.3},
    "nc_bootstrap_paper14": {"n_resamples": 10_000, "median_b": 3.5,
                             "ci68_b": (3.2, 4.3), "ci95_b": (2.9, 13.4),
                             "families": WEB_TRAINED_PAPER},
    "sign_test": {"correct": 12, "total": 12, "below_b": 3.0, "above_b": 10.0},
    "pythia_r_hs_tqa": -0.989,
    "olmo_1b_7b": {"gamma12": 0.000, "hs": (62.5, 76.4), "tqa": (36.0, 36.0)},
    "opt": {"2.7B->6.7B": -0.906, "6.7B->30B": 1.24},
    "family_nc_b": {"OPT": 0.12, "Pythia": 3.5, "Falcon": 7.0,
                    "Phi": "below smallest model tested",
                    "Qwen3": "below smallest model tested"},
    "classifier_olmo": {"tqa_critical": 0.3602, "tqa_measured": 0.3600},
}

COUPLING_PAPER_REFERENCE = PAPER_REFERENCE
"""Flat-API name (``capedyn.COUPLING_PAPER_REFERENCE``); ``capedyn.PAPER_REFERENCE`` is the
frontier module's."""

_PAIR_COLUMNS = ["family", "model_from", "model_to", "params_b_from", "params_b_to",
                 "params_b_mid", "log10_n_mid", "delta_hs", "delta_tqa", "gamma12",
                 "skipped", "reason"]

_NO_CROSSING = "none: slope A <= 0, γ12 does not rise through zero (no tax→bonus crossing)"


class CouplingError(CapedynError, ValueError):
    """Too few usable pairs (or a degenerate set of sizes) for the requested fit."""


# --------------------------------------------------------------------------- pairs

def running_coupling(df: pd.DataFrame, min_delta_hs: float = MIN_DELTA_HS) -> pd.DataFrame:
    """γ12 for each consecutive pair of models within each family.

    ``df`` is a validated base-model table (:func:`capedyn.load_base_models`). Within a
    family sorted by ``params_b``, models lacking HellaSwag or TruthfulQA are left out and
    each remaining consecutive pair i→i+1 gives
    γ12 = (TQA_{i+1} − TQA_i) / (HS_{i+1} − HS_i) in TQA points per HS point, located at
    the geometric mean of the two sizes (``params_b_mid`` in billions, ``log10_n_mid`` =
    log10 of that size in parameters). A pair with |ΔHS| < ``min_delta_hs`` points is
    ill-conditioned: ``skipped`` is True, ``gamma12`` is NaN, ``reason`` says why, and no
    division is made.
    """
    missing = [c for c in ("model", "family", "params_b", "hellaswag", "truthfulqa")
               if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}", file="<table>",
                        hint="Pass a table from capedyn.load_base_models()")
    if not (isinstance(min_delta_hs, (int, float)) and math.isfinite(min_delta_hs)
            and min_delta_hs >= 0):
        raise InputError(f"min_delta_hs must be a finite number >= 0 (points), got {min_delta_hs!r}")
    df = validate_table_columns(df, sizes=("params_b",), scores=("hellaswag", "truthfulqa"),
                               names=("model", "family"))
    rows: list[dict[str, Any]] = []
    scored = df.dropna(subset=["hellaswag", "truthfulqa"])
    for fam in dict.fromkeys(df["family"]):
        g = scored[scored["family"] == fam].sort_values("params_b", kind="stable")
        recs = g[["model", "params_b", "hellaswag", "truthfulqa"]].to_records(index=False)
        for a, b in zip(recs[:-1], recs[1:]):
            rows.append(_pair(fam, a, b, float(min_delta_hs)))
    out = pd.DataFrame(rows, columns=_PAIR_COLUMNS)
    out["skipped"] = out["skipped"].astype(bool)
    for c in _PAIR_COLUMNS[3:10]:
        out[c] = out[c].astype(float)
    return out


def _pair(family: str, a, b, min_delta_hs: float) -> dict[str, Any]:
    n_a, n_b = float(a["params_b"]), float(b["params_b"])
    # geometric mean via logs: no overflow for any positive sizes
    log10_mid_b = 0.5 * (math.log10(n_a) + math.log10(n_b))
    d_hs = float(b["hellaswag"]) - float(a["hellaswag"])
    d_tqa = float(b["truthfulqa"]) - float(a["truthfulqa"])
    skipped = abs(d_hs) < min_delta_hs
    reason = (f"|ΔHS| = {abs(d_hs):.2f} < {min_delta_hs:g} points: ill-conditioned"
              if skipped else "")
    return {
        "family": family, "model_from": str(a["model"]), "model_to": str(b["model"]),
        "params_b_from": n_a, "params_b_to": n_b, "params_b_mid": 10.0 ** log10_mid_b,
        "log10_n_mid": log10_mid_b + 9.0, "delta_hs": d_hs, "delta_tqa": d_tqa,
        "gamma12": math.nan if skipped else d_tqa / d_hs, "skipped": skipped,
        "reason": reason,
    }


def usable_pairs(table: pd.DataFrame, families: Sequence[str] | None = None) -> pd.DataFrame:
    """Non-skipped rows of a :func:`running_coupling` table, optionally for some families."""
    missing = [c for c in ("family", "log10_n_mid", "gamma12", "skipped") if c not in table.columns]
    if missing:
        raise InputError(f"expected the output of running_coupling(); missing column(s) {missing}")
    t = table[~table["skipped"].astype(bool)]
    if families:
        known = list(dict.fromkeys(table["family"]))
        unknown = [f for f in families if f not in known]
        if unknown:
            raise DataError(f"no pairs for family {unknown}", file="<table>", column="family",
                            hint=f"Families with pairs: {', '.join(known) or 'none'}")
        t = t[t["family"].isin(list(families))]
    return t.reset_index(drop=True)


def web_trained_families(df: pd.DataFrame) -> list[str]:
    """Every family of ``df`` not in :data:`capedyn.data.CURATED_FAMILIES` (table order).

    ``df`` is any table with a ``family`` column: pass the :func:`running_coupling` table
    to get only the web-trained families that have pairs (single-model families drop out).
    """
    return [f for f in dict.fromkeys(df["family"]) if f not in CURATED_FAMILIES]


def paper_web_trained_families() -> list[str]:
    """The paper's web-trained set: Pythia, Llama-1, Llama-2 (14 models in the authors'
    table, 13 in the default one, whose Pythia is the standard run without a 1B row)."""
    return list(WEB_TRAINED_PAPER)


def resolve_families(df: pd.DataFrame, names: Sequence[str] | None) -> list[str] | None:
    """Expand the aliases ``@web`` (all web-trained families of ``df``) and ``@paper14``
    (Pythia, Llama-1, Llama-2) in a list of family names; None stays None (= all)."""
    if not names:
        return None
    out: list[str] = []
    for n in names:
        key = n.lower()
        if key in ("@web", "web"):
            out += web_trained_families(df)
        elif key in ("@paper14", "paper14"):
            out += paper_web_trained_families()
        else:
            out.append(n)
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------- fits

def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Slope, intercept and R² of γ12 = A·x + B (:func:`capedyn._stats.ols_line`)."""
    return ols_line(x, y, error=CouplingError,
                    degenerate="all usable pairs sit at the same size; the slope is undefined")

def _crossing(a: float, b: float) -> tuple[float, float, str]:
    """(nc_b, log10_nc, crossing) for γ12 = a·log10 N + b."""
    if not (a > 0.0):
        return math.nan, math.nan, _NO_CROSSING
    log10_nc = -b / a
    with np.errstate(over="ignore", under="ignore"):
        nc_b = float(np.power(10.0, log10_nc - 9.0))
    return nc_b, float(log10_nc), "upward"


@dataclass(frozen=True)
class CouplingFit:
    """γ12 = A·log10 N + B (N in parameters) by OLS, with a Theil–Sen fit beside it.

    ``nc_b`` = 10^(−B/A) in billions when A > 0, else NaN with ``crossing`` explaining.
    """

    A: float
    B: float
    r2: float
    n: int
    nc_b: float
    log10_nc: float
    crossing: str
    robust_A: float
    robust_B: float
    robust_nc_b: float
    robust_crossing: str
    families: tuple[str, ...] = field(default=())

    def predict(self, params_b) -> np.ndarray:
        """γ12 predicted by the OLS line at sizes in billions."""
        return self.A * (np.log10(np.asarray(params_b, dtype=float)) + 9.0) + self.B

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["families"] = list(self.families)
        return {k: to_jsonable(v) for k, v in d.items()}


def population_fit(table: pd.DataFrame, families: Sequence[str] | None = None) -> CouplingFit:
    """OLS γ12 = A·log10 N + B over the usable pairs of a :func:`running_coupling` table
    (x = log10 of the pair's geometric-mean size in parameters), plus a Theil–Sen robust
    fit (``scipy.stats.theilslopes``). Needs at least two usable pairs at distinct sizes,
    else raises :class:`CouplingError`.
    """
    from scipy.stats import theilslopes

    t = usable_pairs(table, families)
    if len(t) < 2:
        raise CouplingError(f"population fit needs at least 2 usable pairs, found {len(t)}; "
                            "add models or families (skipped pairs do not count)")
    x = t["log10_n_mid"].to_numpy(float)
    y = t["gamma12"].to_numpy(float)
    a, b, r2 = _ols(x, y)
    nc_b, log10_nc, crossing = _crossing(a, b)
    ra, rb = (float(v) for v in theilslopes(y, x)[:2])
    rnc_b, _, rcrossing = _crossing(ra, rb)
    return CouplingFit(A=a, B=b, r2=r2, n=len(t), nc_b=nc_b, log10_nc=log10_nc,
                       crossing=crossing, robust_A=ra, robust_B=rb, robust_nc_b=rnc_b,
                       robust_crossing=rcrossing,
                       families=tuple(dict.fromkeys(t["family"])))


def family_couplings(table: pd.DataFrame, min_pairs: int = 2) -> pd.DataFrame:
    """Per-family γ12(N, D) = γ0(D)·log10(N / Nc(D)) for families with ≥ ``min_pairs``
    usable pairs: ``gamma0`` (slope per decade of N), ``nc_b`` (zero crossing, billions;
    NaN when γ0 ≤ 0), ``nc_position`` relative to the family's tested sizes.
    """
    rows = []
    t = usable_pairs(table)
    for fam, g in t.groupby("family", sort=False):
        if len(g) < min_pairs:
            continue
        x, y = g["log10_n_mid"].to_numpy(float), g["gamma12"].to_numpy(float)
        try:
            a, b, r2 = _ols(x, y)
        except CouplingError:
            continue
        nc_b, log10_nc, crossing = _crossing(a, b)
        fam_rows = table[table["family"] == fam]
        lo = float(fam_rows["params_b_from"].min())
        hi = float(fam_rows["params_b_to"].max())
        if math.isnan(nc_b):
            pos = "no crossing"
        else:
            pos = ("below smallest model" if nc_b < lo else
                   "above largest model" if nc_b > hi else "within tested range")
        rows.append({"family": fam, "n_pairs": len(g), "gamma0": a, "intercept": b,
                     "r2": r2, "nc_b": nc_b, "log10_nc": log10_nc, "crossing": crossing,
                     "smallest_b": lo, "largest_b": hi, "nc_position": pos})
    cols = ["family", "n_pairs", "gamma0", "intercept", "r2", "nc_b", "log10_nc",
            "crossing", "smallest_b", "largest_b", "nc_position"]
    return pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True)
class SignTest:
    """Pairs below ``below_b`` expected γ12 ≤ 0 (tax), above ``above_b`` γ12 > 0 (bonus)."""

    correct: int
    total: int
    below_b: float
    above_b: float
    violations: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"correct": self.correct, "total": self.total, "below_b": self.below_b,
                "above_b": self.above_b, "violations": [dict(v) for v in self.violations]}


def sign_test(table: pd.DataFrame, below_b: float = 3.0, above_b: float = 10.0,
              families: Sequence[str] | None = None) -> SignTest:
    """The sign test over the usable pairs of a :func:`running_coupling` table.

    A pair is "below 3B" when its *geometric-mean* size (where γ12 is located) is below
    ``below_b`` billions, and "above 10B" when it is above ``above_b``; pairs in between
    are not tested. Expected: γ12 ≤ 0 below, γ12 > 0 above.
    """
    if not below_b <= above_b:
        raise InputError(f"below_b ({below_b}) must not exceed above_b ({above_b})")
    t = usable_pairs(table, families)
    correct, total, bad = 0, 0, []
    for r in t.itertuples(index=False):
        if r.params_b_mid < below_b:
            ok, expect = r.gamma12 <= 0, "γ12 <= 0"
        elif r.params_b_mid > above_b:
            ok, expect = r.gamma12 > 0, "γ12 > 0"
        else:
            continue
        total += 1
        correct += int(ok)
        if not ok:
            bad.append({"family": r.family, "model_from": r.model_from,
                        "model_to": r.model_to, "params_b_mid": float(r.params_b_mid),
                        "gamma12": float(r.gamma12), "expected": expect})
    return SignTest(correct, total, float(below_b), float(above_b), tuple(bad))


# --------------------------------------------------------------------------- classifier

@dataclass(frozen=True)
class PhaseResult:
    """Algebraic classifier output; arrays when the inputs were arrays.

    ``tqa_critical`` in percent, ``tqa_critical_fraction`` as a fraction, ``margin`` =
    TQA − TQA_c in points, ``phase`` "bonus" (TQA > TQA_c) or "tax".
    """

    tqa_critical: Any
    tqa_critical_fraction: Any
    margin: Any
    phase: Any


def phase_classifier(hs, tqa) -> PhaseResult:
    """TQA_c = sqrt(0.187·HS) with scores as fractions; inputs in percent.

    Scalars give scalar fields (``phase`` a str); arrays broadcast and give arrays.
    Raises :class:`~capedyn._errors.InputError` (a ValueError) for scores outside
    [0, 100] or non-finite, and when every score given is at most 1: fractions such as
    ``hs=0.78, tqa=0.357`` would otherwise be read as 0.78% and 0.357% and classified.
    """
    checked = check_percent_scores({"hs": hs, "tqa": tqa})
    h, q = checked["hs"], checked["tqa"]
    try:
        np.broadcast_shapes(h.shape, q.shape)
    except ValueError:
        raise InputError(f"hs and tqa have shapes {h.shape} and {q.shape}, which do not "
                         "broadcast") from None
    crit_frac = np.sqrt(CLASSIFIER_CONSTANT * h / 100.0)
    crit_pct = 100.0 * crit_frac
    margin = q - crit_pct
    phase = np.where(q / 100.0 > crit_frac, "bonus", "tax")
    if np.ndim(margin) == 0:
        return PhaseResult(float(crit_pct), float(crit_frac), float(margin), str(phase))
    return PhaseResult(crit_pct, crit_frac, margin, phase)


# --------------------------------------------------------------------------- bootstrap

@dataclass(frozen=True)
class NcBootstrap:
    """Bootstrap distribution of Nc (billions) from resampled usable pairs.

    ``n_valid`` resamples had an upward crossing (A > 0); the other ``n_dropped`` (A ≤ 0
    or every draw at one size) are excluded from the percentiles.
    """

    median_b: float
    ci68_b: tuple[float, float]
    ci95_b: tuple[float, float]
    n_resamples: int
    n_valid: int
    n_dropped: int
    n_pairs: int
    seed: int
    nc_b: float
    families: tuple[str, ...]
    unit: str = "pairs"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci68_b"], d["ci95_b"] = list(self.ci68_b), list(self.ci95_b)
        d["families"] = list(self.families)
        return {k: to_jsonable(v) for k, v in d.items()}


@scoped_x64
def bootstrap_nc(table, n_resamples: int = 10_000, seed: int = 0,
                 families: Sequence[str] | None = None, progress=None) -> NcBootstrap:
    """Bootstrap the critical scale Nc = 10^(−B/A) of the population fit (JAX, float64).

    ``table`` is a :func:`running_coupling` table (restricted to ``families`` if given) or
    a pair of arrays ``(log10_n_mid, gamma12)`` of usable pairs.

    Unit of resampling: the usable *pairs* (γ12 values), drawn with replacement; each
    resample is a weighted OLS with the draw counts as weights, all resamples vectorised
    with ``jax.vmap`` under one ``jax.jit`` (:func:`capedyn._stats.paired_bootstrap`, the
    bootstrap the frontier line uses too). (Resampling *models* within families and
    recomputing the pairs is the alternative; it respects that adjacent pairs share a
    model, but with 2-3 models per family it often leaves no pair at all.) Resamples with
    A ≤ 0 (no upward crossing) or with every draw at a single size are dropped and
    counted. Percentiles are taken on log10 Nc and reported in billions. Reproducible:
    the key is ``jax.random.PRNGKey(seed)`` and resample i does not depend on
    ``n_resamples``.
    """

    if not (isinstance(n_resamples, (int, np.integer)) and n_resamples >= 1):
        raise InputError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if isinstance(table, pd.DataFrame):
        t = usable_pairs(table, families)
        x, y = t["log10_n_mid"].to_numpy(float), t["gamma12"].to_numpy(float)
        fams = tuple(dict.fromkeys(t["family"]))
    else:
        x, y = (np.asarray(v, dtype=float).ravel() for v in table)
        fams = tuple(families or ())
        if x.shape != y.shape or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise InputError("bootstrap_nc needs two finite arrays of equal length "
                             "(log10_n_mid, gamma12)")
    if len(x) < 3 or np.ptp(x) == 0.0:
        raise CouplingError(f"the Nc bootstrap needs at least 3 usable pairs at distinct "
                            f"sizes, found {len(x)}")
    lines = paired_bootstrap(x, y, int(n_resamples), int(seed), progress)
    a, b = lines.slopes, lines.intercepts
    ok = lines.valid & (a > 0)
    n_valid = int(ok.sum())
    if n_valid == 0:
        raise CouplingError(f"none of {n_resamples} resamples has an upward crossing "
                            "(A > 0); Nc is not defined for these pairs")
    log10_nc_b = -b[ok] / a[ok] - 9.0
    q = np.percentile(log10_nc_b, [2.5, 16.0, 50.0, 84.0, 97.5])
    with np.errstate(over="ignore", under="ignore"):
        lo95, lo68, med, hi68, hi95 = (float(v) for v in np.power(10.0, q))
    a0, b0, _ = _ols(x, y)
    return NcBootstrap(median_b=med, ci68_b=(lo68, hi68), ci95_b=(lo95, hi95),
                       n_resamples=int(n_resamples), n_valid=n_valid,
                       n_dropped=int(n_resamples) - n_valid, n_pairs=len(x), seed=int(seed),
                       nc_b=_crossing(a0, b0)[0], families=fams)


@scoped_x64
def bench_bootstrap(n: int = 10_000, table: pd.DataFrame | None = None,
                    families: Sequence[str] | None = WEB_TRAINED_PAPER) -> float:
    """Seconds for ``n`` bootstrap resamples after compilation (default: the shipped table,
    the paper's web-trained families). Best of three timed runs."""
    import time

    from .data import load_base_models

    t = running_coupling(load_base_models() if table is None else table)
    bootstrap_nc(t, n_resamples=n, families=families)  # compile
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        bootstrap_nc(t, n_resamples=n, families=families)
        best = min(best, time.perf_counter() - t0)
    return best


