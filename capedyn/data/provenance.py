"""Provenance scan: does each row of a base-model table carry the scores of the model it names?

A curated table can silently mix training runs or models: a row named after one model
holding another's measurements (the authors' ``Pythia`` family alternated between the
standard and the deduplicated run from one size to the next). :func:`scan_provenance`
compares every row with a collection of reference rows (the leaderboard files the table
was built from) by score distance and reports, per row, the closest reference under the
row's own name and the closest reference under any other name. A row is flagged
``matches_other`` when another model's reference is strictly closer than every reference
of its own name, or when its own name has no reference and another model's lies within
``match_tol`` points.

Distances are the mean absolute difference in percentage points over the scores both rows
have (at least ``min_shared``). Reference files are read by :func:`read_references`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .tables import BENCHMARKS, DataError

__all__ = ["PYTHIA_RENAMES", "model_key", "read_references", "scan_provenance"]

PYTHIA_RENAMES: dict[str, str] = {"pythia-1.3b": "pythia-1.4b", "pythia-2.7b": "pythia-2.8b",
                                  "pythia-6.7b": "pythia-6.9b"}
"""Names the standard Pythia models carried on the leaderboard before the suite was
renamed → their current names."""

# column names of each reference layout → the five benchmarks (BENCHMARKS order)
_LAYOUTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "collected_csv": ("Model", "Source", ("HellaSwag", "TruthfulQA_MC2", "ARC_Challenge",
                                          "WinoGrande", "MMLU")),
    "all_scores_json": ("Model", "Source", ("HS", "TQA", "ARC", "WG", "MMLU")),
    "cape26_json": ("name", "", ("HS", "TQA", "ARC", "WG", "MMLU")),
    "pythia_runs_csv": ("model_id", "", ("hellaswag", "truthfulqa", "arc", "winogrande",
                                         "mmlu")),
}


def model_key(name: str) -> str:
    """A name reduced for matching: lower case, organisation prefix dropped, Pythia's
    pre-rename sizes mapped to the current ones, and ``-``, ``_`` and spaces removed
    (``EleutherAI/pythia-2.7b`` and ``Pythia-2.8B`` give the same key)."""
    key = str(name).strip().lower().rsplit("/", 1)[-1]
    for old, new in PYTHIA_RENAMES.items():
        if key == old or key.startswith(old + "-"):
            key = new + key[len(old):]
    return re.sub(r"[-_\s]", "", key)


def _number(v) -> float:
    if v is None or (isinstance(v, str) and not v.strip()):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _layout_rows(records: Iterable[dict], layout: str, label: str) -> list[dict]:
    name_col, source_col, score_cols = _LAYOUTS[layout]
    rows = []
    for i, rec in enumerate(records):
        if name_col not in rec:
            raise DataError(f"no '{name_col}' field", file=label, row=i + 1, column=name_col,
                            hint=f"Expected the {layout} layout")
        row = {"ref_model": str(rec[name_col]).strip(),
               "ref_source": f"{Path(label).name}" + (f" ({rec[source_col]})"
                                                      if source_col and rec.get(source_col)
                                                      else "")}
        row.update({b: _number(rec.get(c)) for b, c in zip(BENCHMARKS, score_cols)})
        rows.append(row)
    return rows


def read_references(*, collected_csv: str | Path | None = None,
                    all_scores_json: str | Path | None = None,
                    cape26_json: str | Path | None = None,
                    pythia_runs_csv: str | Path | None = None) -> pd.DataFrame:
    """Reference rows from the authors' files (any subset): ``leaderboard_scores_collected.csv``,
    ``leaderboard_all_scores.json``, ``cape_26models_9families.json`` (its ``ranking_by_hD``)
    and a leaderboard results table with a ``model_id`` column (``pythia_both_runs.csv``).

    Returns columns ``ref_model, ref_source`` and the five scores in percent (NaN where
    the file has none)."""
    given = {"collected_csv": collected_csv, "all_scores_json": all_scores_json,
             "cape26_json": cape26_json, "pythia_runs_csv": pythia_runs_csv}
    rows: list[dict] = []
    for layout, path in given.items():
        if path is None:
            continue
        p = Path(path)
        if not p.is_file():
            raise DataError("file not found", file=str(p), hint=f"Pass the {layout} file")
        with open(p, encoding="utf-8", newline="") as fh:
            if p.suffix == ".csv":
                records = list(csv.DictReader(fh))
            else:
                data = json.load(fh)
                records = data["ranking_by_hD"] if layout == "cape26_json" else data
        rows += _layout_rows(records, layout, str(p))
    if not rows:
        raise DataError("no reference rows", file="<references>",
                        hint="Pass at least one reference file")
    return pd.DataFrame(rows)


def _distances(row: np.ndarray, refs: np.ndarray, min_shared: int) -> np.ndarray:
    """Mean |difference| over the scores present in both; NaN below ``min_shared``."""
    diff = np.abs(refs - row[None, :])
    shared = np.sum(~np.isnan(diff), axis=1)
    with np.errstate(invalid="ignore"):
        mean = np.nansum(diff, axis=1) / np.where(shared > 0, shared, 1)
    return np.where(shared >= min_shared, mean, np.nan)


def scan_provenance(table: pd.DataFrame, references: pd.DataFrame, *,
                    match_tol: float = 0.5, min_shared: int = 3) -> pd.DataFrame:
    """One row per row of ``table``: its closest reference under its own name and under
    any other name, and a verdict.

    ``table`` is a base-model table (:func:`capedyn.load_base_models`), ``references``
    the output of :func:`read_references`; ``match_tol`` is in percentage points (mean
    absolute difference over shared scores). Columns: ``model, family, source,
    own_ref, own_distance, other_ref, other_source, other_distance, verdict``, where
    verdict is ``own`` (its own name is the closest reference), ``matches_other``
    (another model's reference is strictly closer, or its own name has none and another
    lies within ``match_tol``), ``far_from_own`` (its own name is the closest reference but
    more than ``match_tol`` away), or ``no_reference`` (nothing within ``match_tol`` and no
    reference of its own name).
    """
    refs = references.reset_index(drop=True)
    ref_scores = refs[list(BENCHMARKS)].to_numpy(float)
    ref_keys = np.array([model_key(m) for m in refs["ref_model"]])
    out = []
    for _, r in table.iterrows():
        d = _distances(r[list(BENCHMARKS)].to_numpy(float), ref_scores, min_shared)
        own = (ref_keys == model_key(r["model"])) & ~np.isnan(d)
        other = (ref_keys != model_key(r["model"])) & ~np.isnan(d)
        i_own = int(np.flatnonzero(own)[np.argmin(d[own])]) if own.any() else None
        i_other = int(np.flatnonzero(other)[np.argmin(d[other])]) if other.any() else None
        d_own = d[i_own] if i_own is not None else math.inf
        d_other = d[i_other] if i_other is not None else math.inf
        if d_other < d_own and (i_own is not None or d_other <= match_tol):
            verdict = "matches_other"
        elif i_own is not None:
            verdict = "own" if d_own <= match_tol else "far_from_own"
        else:
            verdict = "no_reference"
        out.append({
            "model": r["model"], "family": r["family"], "source": r.get("source", ""),
            "own_ref": refs["ref_model"].iloc[i_own] if i_own is not None else "",
            "own_distance": float(d_own) if i_own is not None else math.nan,
            "other_ref": refs["ref_model"].iloc[i_other] if i_other is not None else "",
            "other_source": refs["ref_source"].iloc[i_other] if i_other is not None else "",
            "other_distance": float(d_other) if i_other is not None else math.nan,
            "verdict": verdict})
    return pd.DataFrame(out)


def flagged(scan: pd.DataFrame, verdicts: Sequence[str] = ("matches_other",)) -> pd.DataFrame:
    """The rows of a :func:`scan_provenance` result with one of ``verdicts``."""
    return scan[scan["verdict"].isin(list(verdicts))].reset_index(drop=True)
