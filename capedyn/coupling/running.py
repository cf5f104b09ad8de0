"""Running coupling γ12 between HellaSwag and TruthfulQA and the critical scale Nc of the
population line (definitions: docs/concepts.md); the Nc bootstrap is in
:mod:`capedyn.coupling.nc_bootstrap`, the algebraic classifier in :mod:`capedyn.coupling.phase`.

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

from .._errors import CapedynError, InputError
from .._json import to_jsonable
from .._stats import ols_line
from ..data.tables import (
    CURATED_FAMILIES, WEB_TRAINED_PAPER, DataError, validate_table_columns,
)

__all__ = [
    "PAPER_REFERENCE", "COUPLING_PAPER_REFERENCE", "MIN_DELTA_HS", "CouplingError", "CouplingFit",
    "SignTest", "running_coupling", "usable_pairs", "population_fit", "family_couplings",
    "sign_test", "web_trained_families", "paper_web_trained_families", "resolve_families",
]

MIN_DELTA_HS = 0.5
"""|ΔHS| below this many points makes γ12 ill-conditioned: the pair is skipped."""


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
    """Every family of ``df`` not in :data:`capedyn.data.tables.CURATED_FAMILIES` (table order).

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
