"""Curated benchmark tables and their validation.

Two tables ship with the package (``benchmarks_data/`` in the repository, installed as
``capedyn.benchmarks_data``):

* ``base_models.csv``: one row per base model; ``params_b`` in billions of parameters and
  five Open LLM Leaderboard v1 scores in percent (0-100). A missing score is empty.
* ``frontier_models.csv``: one row per frontier model; SWE-bench Verified and GPQA Diamond
  in percent.

Every loader validates what it reads and raises :class:`DataError` naming the file, the
row (1-based, counting data rows; the header is line 1 so data row *r* is line *r + 1*)
and the column, with what to do about it.
"""

from __future__ import annotations

import io
import math
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ._errors import CapedynError

BENCHMARKS: tuple[str, ...] = ("hellaswag", "truthfulqa", "arc", "winogrande", "mmlu")
"""The five score columns, in the order used for every state vector (percent, 0-100)."""

BASE_REQUIRED: tuple[str, ...] = ("model", "family", "params_b", *BENCHMARKS)
BASE_OPTIONAL: tuple[str, ...] = ("source", "flags")
FRONTIER_SCORES: tuple[str, ...] = ("swe_bench", "gpqa_diamond")
FRONTIER_REQUIRED: tuple[str, ...] = ("model", "lab", *FRONTIER_SCORES)
FRONTIER_OPTIONAL: tuple[str, ...] = ("release", "subset", "source", "flags")

WEB_TRAINED_PAPER: tuple[str, ...] = ("Pythia", "Llama-1", "Llama-2")
"""The paper's 14 web-trained models come from these three families."""

CURATED_FAMILIES: tuple[str, ...] = ("Phi", "Qwen2.5", "Qwen3", "Gemma-3", "Gemma-4")
"""Families trained on curated or synthetic-heavy data (not plain web crawls)."""


class DataError(CapedynError, ValueError):
    """A table failed validation. ``file``, ``row`` (1-based data row) and ``column`` say where."""

    def __init__(self, message: str, *, file: str, row: int | None = None,
                 column: str | None = None, hint: str | None = None):
        self.file, self.row, self.column, self.hint = file, row, column, hint
        where = [str(file)]
        if row is not None:
            where.append(f"row {row} (line {row + 1})")
        if column is not None:
            where.append(f"column '{column}'")
        text = ", ".join(where) + ": " + message
        if hint:
            text += f". {hint}"
        super().__init__(text)


def _packaged(name: str):
    return resources.files("capedyn.benchmarks_data").joinpath(name)


def _read_text(path: str | Path | None, default: str) -> tuple[str, str]:
    if path is None:
        res = _packaged(default)
        return res.read_text(encoding="utf-8"), f"<capedyn>/benchmarks_data/{default}"
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", file=str(p), hint="Check the path passed as --data")
    try:
        return p.read_text(encoding="utf-8"), str(p)
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", file=str(p),
                        hint="Save the table as a UTF-8 CSV") from None


def _parse_table(text: str, label: str) -> pd.DataFrame:
    if not text.strip():
        raise DataError("the file is empty", file=label, hint="Provide a CSV with a header row")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                         skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"not a readable CSV ({exc})", file=label,
                        hint="Check quoting and the number of fields per line") from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise DataError("the table has a header but no data rows", file=label,
                        hint="Add at least one model")
    return df


def _require_columns(df: pd.DataFrame, required: Sequence[str], label: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"missing required column(s) {missing}; found {list(df.columns)}",
                        file=label, hint=f"The header must contain {list(required)}")


def _parse_number(raw: str, *, label: str, row: int, column: str, allow_empty: bool) -> float:
    s = raw.strip()
    if s == "":
        if allow_empty:
            return math.nan
        raise DataError("value is empty", file=label, row=row, column=column,
                        hint="This column is required for every row")
    try:
        value = float(s)
    except ValueError:
        raise DataError(f"'{raw}' is not a number", file=label, row=row, column=column,
                        hint="Use a plain decimal number (percent for scores)") from None
    if not math.isfinite(value):
        raise DataError(f"'{raw}' is not finite", file=label, row=row, column=column,
                        hint="Leave a missing score empty instead of writing nan or inf")
    return value


def _numeric_columns(df: pd.DataFrame, label: str, columns: Iterable[str],
                     allow_empty: Iterable[str]) -> pd.DataFrame:
    allow = set(allow_empty)
    out = df.copy()
    for col in columns:
        out[col] = [
            _parse_number(v, label=label, row=i + 1, column=col, allow_empty=col in allow)
            for i, v in enumerate(df[col].tolist())
        ]
        out[col] = out[col].astype(float)
    return out


def _check_names(df: pd.DataFrame, label: str, columns: Sequence[str]) -> None:
    for col in columns:
        for i, v in enumerate(df[col].tolist()):
            if not str(v).strip():
                raise DataError("value is empty", file=label, row=i + 1, column=col,
                                hint="Every model needs a name and a group")


def _check_scores(df: pd.DataFrame, label: str, columns: Sequence[str]) -> None:
    values = df[list(columns)].to_numpy(dtype=float)
    for j, col in enumerate(columns):
        for i in range(len(df)):
            v = values[i, j]
            if not math.isnan(v) and not 0.0 <= v <= 100.0:
                raise DataError(f"score {v:g} is outside [0, 100]", file=label, row=i + 1,
                                column=col, hint="Scores are percentages from 0 to 100")
    finite = values[~np.isnan(values)]
    if finite.size >= 2 and finite.max() <= 1.0:
        raise DataError(f"every score lies in [0, 1] (largest {finite.max():g}); "
                        "the table looks like fractions", file=label, column=columns[0],
                        hint="Multiply the score columns by 100 to give percentages")


def _check_unique(df: pd.DataFrame, label: str, keys: Sequence[str], what: str) -> None:
    seen: dict[tuple, int] = {}
    for i, key in enumerate(zip(*(df[k].tolist() for k in keys))):
        norm = tuple(k.strip().lower() if isinstance(k, str) else k for k in key)
        if norm in seen:
            raise DataError(f"{what} {key} repeats row {seen[norm]}", file=label, row=i + 1,
                            column=keys[-1], hint="Keep one row per model; record the "
                            "alternative source in DATA.md or a flags column")
        seen[norm] = i + 1


def validate_base_models(df: pd.DataFrame, label: str = "<table>") -> pd.DataFrame:
    """Validate and type a base-model table given as strings (as read from CSV).

    Returns a new DataFrame with float columns ``params_b`` (billions) and the five
    scores (percent; NaN where missing), sorted by family then size.
    """
    _require_columns(df, BASE_REQUIRED, label)
    df = df.copy()
    for col in BASE_OPTIONAL:
        if col not in df.columns:
            df[col] = ""
    _check_names(df, label, ("model", "family"))
    df["model"] = df["model"].str.strip()
    df["family"] = df["family"].str.strip()
    df = _numeric_columns(df, label, ("params_b", *BENCHMARKS), allow_empty=BENCHMARKS)
    for i, v in enumerate(df["params_b"].tolist()):
        if v <= 0:
            raise DataError(f"parameter count {v:g} must be positive", file=label, row=i + 1,
                            column="params_b", hint="params_b is in billions, e.g. 0.07 for 70M")
    _check_scores(df, label, BENCHMARKS)
    _check_unique(df, label, ("model",), "model name")
    _check_unique(df, label, ("family", "params_b"), "family and size")
    cols = [*BASE_REQUIRED, *BASE_OPTIONAL]
    extra = [c for c in df.columns if c not in cols]
    out = df[cols + extra].sort_values(["family", "params_b"], key=_sort_key, kind="stable")
    return out.reset_index(drop=True)


def validate_frontier_models(df: pd.DataFrame, label: str = "<table>") -> pd.DataFrame:
    """Validate and type a frontier table given as strings (as read from CSV)."""
    _require_columns(df, FRONTIER_REQUIRED, label)
    df = df.copy()
    for col in FRONTIER_OPTIONAL:
        if col not in df.columns:
            df[col] = ""
    _check_names(df, label, ("model", "lab"))
    df["model"] = df["model"].str.strip()
    df["lab"] = df["lab"].str.strip()
    df = _numeric_columns(df, label, FRONTIER_SCORES, allow_empty=())
    _check_scores(df, label, FRONTIER_SCORES)
    _check_unique(df, label, ("model",), "model name")
    return df.reset_index(drop=True)


def _sort_key(col: pd.Series) -> pd.Series:
    return col.str.lower() if col.dtype == object else col


def load_base_models(path: str | Path | None = None) -> pd.DataFrame:
    """Load and validate a base-model CSV (default: the shipped ``base_models.csv``).

    Columns: ``model, family, params_b`` (billions), ``hellaswag, truthfulqa, arc,
    winogrande, mmlu`` (percent; NaN where missing), ``source, flags``.
    """
    text, label = _read_text(path, "base_models.csv")
    return validate_base_models(_parse_table(text, label), label)


def load_frontier_models(path: str | Path | None = None) -> pd.DataFrame:
    """Load and validate a frontier CSV (default: the shipped ``frontier_models.csv``).

    Columns: ``model, lab, swe_bench, gpqa_diamond`` (percent), ``release, subset, source``.
    """
    text, label = _read_text(path, "frontier_models.csv")
    return validate_frontier_models(_parse_table(text, label), label)


def log10_params(params_b) -> np.ndarray:
    """x = log10 N with N in parameters, from ``params_b`` in billions."""
    return np.log10(np.asarray(params_b, dtype=float)) + 9.0


def complete_models(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with all five scores present."""
    return df.dropna(subset=list(BENCHMARKS)).reset_index(drop=True)


def families(df: pd.DataFrame, min_models: int = 1, complete: bool = False) -> list[str]:
    """Family names (in table order) with at least ``min_models`` rows (complete rows only
    when ``complete``)."""
    table = complete_models(df) if complete else df
    counts = table.groupby("family", sort=False).size()
    return [f for f, n in counts.items() if n >= min_models]


def select_families(df: pd.DataFrame, names: Sequence[str] | None) -> pd.DataFrame:
    """Rows of the named families; an unknown name raises :class:`DataError` listing the known ones."""
    if not names:
        return df
    known = list(dict.fromkeys(df["family"]))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(f"unknown family {unknown}", file="<table>", column="family",
                        hint=f"Known families: {', '.join(known)}")
    return df[df["family"].isin(list(names))].reset_index(drop=True)
