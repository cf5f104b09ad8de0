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

import csv
import io
import math
import numbers
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._errors import PERCENT_HINT, CapedynError, InputError, InputTypeError
from .._text import clean_name, from_csv_cell, is_number_text, name_problem, params_b_problem
from .._units import fraction_among_percent

BENCHMARKS: tuple[str, ...] = ("hellaswag", "truthfulqa", "arc", "winogrande", "mmlu")
"""The five score columns, in the order used for every state vector (percent, 0-100)."""

BASE_REQUIRED: tuple[str, ...] = ("model", "family", "params_b", *BENCHMARKS)
BASE_OPTIONAL: tuple[str, ...] = ("source", "flags")
FRONTIER_SCORES: tuple[str, ...] = ("swe_bench", "gpqa_diamond")
FRONTIER_REQUIRED: tuple[str, ...] = ("model", "lab", *FRONTIER_SCORES)
FRONTIER_OPTIONAL: tuple[str, ...] = ("release", "subset", "source", "flags")

WEB_TRAINED_PAPER: tuple[str, ...] = ("Pythia", "Llama-1", "Llama-2")
"""The paper's 14 web-trained models come from these three families (13 in the default
table: its Pythia is the standard training run, which has no 1B row)."""

CURATED_FAMILIES: tuple[str, ...] = ("Phi", "Qwen2.5", "Qwen3", "Gemma-3", "Gemma-4")
"""Families trained on curated or synthetic-heavy data (not plain web crawls)."""


class DataError(CapedynError, ValueError):
    """A table failed validation. ``file``, ``row`` (1-based data row) and ``column`` say where."""

    def __init__(self, message: str, *, file: str, row: int | None = None,
                 column: str | None = None, hint: str | None = None):
        self.file, self.row, self.column, self.hint = file, row, column, hint
        where = [str(file)]
        in_memory = str(file).startswith("<") and str(file).endswith(">")
        if row is not None:
            where.append(f"row {row}" if in_memory else f"row {row} (line {row + 1})")
        if column is not None:
            where.append(f"column '{column}'")
        text = ", ".join(where) + ": " + message
        if hint:
            text += f". {hint}"
        super().__init__(text)


def _packaged(name: str):
    return resources.files("capedyn.benchmarks_data").joinpath(name)


MAX_TABLE_BYTES = 64 * 2**20
"""Largest CSV read (a table of every released model is well under a megabyte)."""


def _read_text(path: str | Path | None, default: str) -> tuple[str, str]:
    if path is None:
        res = _packaged(default)
        return res.read_text(encoding="utf-8"), f"<capedyn>/benchmarks_data/{default}"
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", file=str(p), hint="Check the path passed as --data")
    if p.is_dir():
        raise DataError("is a folder, not a CSV file", file=str(p),
                        hint="Pass the path of the CSV table")
    if not p.is_file():
        raise DataError("is not a regular file (a device, pipe or socket)", file=str(p),
                        hint="Pass the path of the CSV table")
    if p.stat().st_size > MAX_TABLE_BYTES:
        raise DataError(f"is {p.stat().st_size / 2**20:.0f} MB, far larger than a table of "
                        f"models (at most {MAX_TABLE_BYTES // 2**20} MB read)", file=str(p),
                        hint="Pass the CSV table of models")
    try:
        return p.read_text(encoding="utf-8-sig"), str(p)
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", file=str(p),
                        hint="Save the table as a UTF-8 CSV") from None
    except OSError as exc:
        raise DataError(f"cannot be read ({exc.strerror or exc})", file=str(p),
                        hint="Check the file's permissions") from None


def _parse_table(text: str, label: str) -> pd.DataFrame:
    """CSV text → DataFrame of strings. Every data row must have as many fields as the
    header: a short row (a forgotten score) or a long one (a stray comma) is rejected with
    its row number instead of being padded with empty values."""
    if not text.strip():
        raise DataError("the file is empty", file=label, hint="Provide a CSV with a header row")
    if "\x00" in text:
        raise DataError("contains NUL bytes: not a text CSV", file=label,
                        hint="Save the table as a UTF-8 CSV")
    try:
        records = [r for r in csv.reader(io.StringIO(text), skipinitialspace=True)
                   if any(c.strip() for c in r)]  # blank lines are skipped
    except csv.Error as exc:
        raise DataError(f"not a readable CSV ({exc})", file=label,
                        hint="Check quoting and the number of fields per line") from None
    header = [c.strip() for c in records[0]]
    header = [c or f"unnamed_{j + 1}" for j, c in enumerate(header)]
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise DataError(f"the header repeats column name(s) {dup}", file=label,
                        hint="Give every column a distinct name")
    body = records[1:]
    if not body:
        raise DataError("the table has a header but no data rows", file=label,
                        hint="Add at least one model")
    for i, rec in enumerate(body):
        if len(rec) != len(header):
            few = len(rec) < len(header)
            missing = header[len(rec):] if few else []
            what = (f"has {len(rec)} fields but the header has {len(header)}"
                    + (f" (no value for {missing})" if few else ""))
            hint = ("Give every column a value; leave a missing score empty (two commas "
                    "in a row), do not drop it" if few else
                    "Remove the stray comma, or quote a value that contains a comma")
            raise DataError(what, file=label, row=i + 1, hint=hint)
    body = [[from_csv_cell(c) for c in rec] for rec in body]  # undo the formula guard
    return pd.DataFrame(body, columns=header, dtype=object)


def _require_columns(df: pd.DataFrame, required: Sequence[str], label: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"missing required column(s) {missing}; found {list(df.columns)}",
                        file=label, hint=f"The header must contain {list(required)}")


def _is_blank(raw: Any) -> bool:
    if raw is None:
        return True
    if isinstance(raw, str):
        return raw.strip() == ""
    try:
        return bool(pd.isna(raw))
    except (TypeError, ValueError):
        return False


def _parse_number(raw: Any, *, label: str, row: int, column: str, allow_empty: bool) -> float:
    """A cell (text from a CSV, or a number from an in-memory table) as a float.

    Empty text, None and NaN mean "missing": NaN when ``allow_empty``, an error otherwise.
    """
    if _is_blank(raw):
        if allow_empty:
            return math.nan
        raise DataError("value is empty", file=label, row=row, column=column,
                        hint="This column is required for every row")
    if isinstance(raw, (bool, np.bool_)):
        raise DataError(f"{raw!r} is not a number", file=label, row=row, column=column,
                        hint="Use a plain decimal number (percent for scores)")
    if isinstance(raw, numbers.Real):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip()) if is_number_text(raw) else None
        except ValueError:
            value = None
        if value is None:
            raise DataError(f"'{raw}' is not a number", file=label, row=row, column=column,
                            hint="Use a plain decimal number (percent for scores)") from None
    else:
        raise DataError(f"{type(raw).__name__} value {raw!r:.40} is not a number", file=label,
                        row=row, column=column,
                        hint="Use a plain decimal number (percent for scores)")
    if not math.isfinite(value):
        raise DataError(f"'{raw}' is not finite", file=label, row=row, column=column,
                        hint="Leave a missing score empty instead of writing nan or inf")
    return value


def _numeric_columns(df: pd.DataFrame, label: str, columns: Iterable[str],
                     allow_empty: Iterable[str]) -> pd.DataFrame:
    allow = set(allow_empty)
    out = df.copy()
    for col in columns:
        out[col] = np.asarray([
            _parse_number(v, label=label, row=i + 1, column=col, allow_empty=col in allow)
            for i, v in enumerate(df[col].tolist())
        ], dtype=float)
    return out


def _check_names(df: pd.DataFrame, label: str, columns: Sequence[str]) -> None:
    for col in columns:
        for i, v in enumerate(df[col].tolist()):
            if _is_blank(v) or not str(v).strip():
                raise DataError("value is empty", file=label, row=i + 1, column=col,
                                hint="Every model needs a name and a group")
            _check_text(v, label, i, col)


def _check_text(v: Any, label: str, i: int, col: str) -> None:
    """Names and notes are printable text on one line (see :mod:`capedyn._text`)."""
    problem = name_problem(str(v))
    if problem:
        raise DataError(f"{str(v)[:40]!r} {problem}", file=label, row=i + 1, column=col,
                        hint="Names must be printable text on one line; retype the name")


def _check_sizes(df: pd.DataFrame, label: str, col: str) -> None:
    for i, v in enumerate(df[col].tolist()):
        problem = "must be positive" if v <= 0 else params_b_problem(v)
        if problem:
            raise DataError(f"parameter count {v:g} {problem}" if v <= 0 else problem,
                            file=label, row=i + 1, column=col,
                            hint="params_b is in billions, e.g. 0.07 for 70M")


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
    for i in range(len(df)):  # one row written as fractions among rows in percent
        row = values[i][~np.isnan(values[i])]
        if row.size >= 2 and row.max() <= 1.0:
            j = int(np.flatnonzero(~np.isnan(values[i]))[0])
            raise DataError(f"every score of this row lies in [0, 1] (largest {row.max():g}); "
                            "the row looks like fractions", file=label, row=i + 1,
                            column=columns[j], hint="Multiply its scores by 100 to give percentages")


def _check_no_fraction_among_percent(df: pd.DataFrame, label: str, columns: Sequence[str]) -> None:
    """One score written as a fraction (0.62) in a table of percentages: refused by row and
    column (a single one turns a γ12 into nonsense)."""
    values = df[list(columns)].to_numpy(dtype=float)
    k = fraction_among_percent(values.ravel())
    if k is not None:
        i, j = divmod(k, len(columns))
        raise DataError(f"score {values[i, j]:g} is at most 1 among scores in percent; it "
                        "looks like a fraction", file=label, row=i + 1, column=columns[j],
                        hint=f"Write it in percent ({100 * values[i, j]:g})")


def check_percent_scores(scores: Mapping[str, Any], where: str = "") -> dict[str, np.ndarray]:
    """Check scores given in the API or on the command line; return them as float arrays.

    ``scores`` maps a name (used in messages, e.g. ``"hs"`` or ``"--hs"``) to a number or
    an array of percentages. Raises :class:`~capedyn._errors.InputError` when a value is
    not finite or outside [0, 100], and when two or more values are given and every one
    of them is at most 1: the caller almost surely passed fractions (0.78 for 78%).
    """
    out: dict[str, np.ndarray] = {}
    prefix = f"{where}: " if where else ""
    for name, v in scores.items():
        try:
            arr = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"{prefix}{name} must be a number in percent, got {v!r:.60}") from None
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{prefix}{name} must be a finite percentage, got "
                             f"{arr[~np.isfinite(arr)].ravel()[0]}")
        bad = (arr < 0.0) | (arr > 100.0)
        if np.any(bad):
            raise InputError(f"{prefix}{name} = {arr[bad].ravel()[0]:g} is outside [0, 100]; "
                             + PERCENT_HINT)
        out[name] = arr
    flat = np.concatenate([a.ravel() for a in out.values()]) if out else np.zeros(0)
    if flat.size >= 2 and flat.max() <= 1.0:
        given = ", ".join(f"{k} = {np.array2string(a, precision=4, threshold=4)}"
                          if a.ndim else f"{k} = {float(a):g}" for k, a in out.items())
        raise InputError(f"{prefix}every score is at most 1 ({given}): these look like "
                         f"fractions; {PERCENT_HINT}")
    return out


def check_params_b(values: Any, name: str = "params_b", where: str = "") -> np.ndarray:
    """Sizes in billions of parameters as a float array; raises
    :class:`~capedyn._errors.InputError` unless every value is finite and positive."""
    prefix = f"{where}: " if where else ""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{prefix}{name} must be numbers (billions of parameters), "
                         f"got {values!r:.60}") from None
    bad = ~np.isfinite(arr) | (arr <= 0.0)
    if np.any(bad):
        raise InputError(f"{prefix}{name} = {arr[bad].ravel()[0]:g} must be a finite positive "
                         "size in billions of parameters (e.g. 0.07 for 70M)")
    return arr


def _check_unique(df: pd.DataFrame, label: str, keys: Sequence[str], what: str) -> None:
    seen: dict[tuple, int] = {}
    for i, key in enumerate(zip(*(df[k].tolist() for k in keys))):
        norm = tuple(k.strip().lower() if isinstance(k, str) else k for k in key)
        if norm in seen:
            raise DataError(f"{what} {key} repeats row {seen[norm]}", file=label, row=i + 1,
                            column=keys[-1], hint="Keep one row per model; record the "
                            "alternative source in DATA.md or a flags column")
        seen[norm] = i + 1


def _as_table(df: Any, label: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise InputTypeError(f"{label}: expected a pandas DataFrame, got {type(df).__name__}")
    out = df.copy()
    out.columns = [str(c).strip() for c in out.columns]
    dup = sorted({c for c in out.columns if list(out.columns).count(c) > 1})
    if dup:
        raise DataError(f"repeated column name(s) {dup}", file=label,
                        hint="Give every column a distinct name")
    if len(out) == 0:
        raise DataError("the table has no rows", file=label, hint="Add at least one model")
    return out.reset_index(drop=True)


def _text_columns(df: Any, label: str, required: Sequence[str], optional: Sequence[str],
                  names: Sequence[str]) -> pd.DataFrame:
    """The table with its required columns checked, its optional text columns filled and
    checked, and its name columns checked and normalised (NFC)."""
    df = _as_table(df, label)
    _require_columns(df, required, label)
    for col in optional:
        if col not in df.columns:
            df[col] = ""
        df[col] = ["" if _is_blank(v) else str(v) for v in df[col].tolist()]
        for i, v in enumerate(df[col].tolist()):
            _check_text(v, label, i, col)
    _check_names(df, label, names)
    for col in names:
        df[col] = [clean_name(v) for v in df[col].tolist()]
    return df


def validate_base_models(df: pd.DataFrame, label: str = "<table>") -> pd.DataFrame:
    """Validate and type a base-model table: text as read from a CSV, or an in-memory
    table with numbers (None/NaN for a missing score).

    Required columns: ``model``, ``family`` (text), ``params_b`` (billions of parameters,
    finite and > 0), ``hellaswag, truthfulqa, arc, winogrande, mmlu`` (percent 0-100; a
    missing score is empty/NaN). Optional: ``source``, ``flags`` (text). Further columns
    are kept after these. Rejections raise :class:`DataError` naming ``label``, the row and
    the column: a non-number, a non-finite value, a size ≤ 0, a score outside [0, 100], a
    table or row whose scores all lie in [0, 1] (fractions, not percent), a repeated model
    name, a repeated (family, size).

    Returns a new DataFrame with float columns ``params_b`` and the five scores (NaN where
    missing), sorted by family then size.
    """
    df = _text_columns(df, label, BASE_REQUIRED, BASE_OPTIONAL, ("model", "family"))
    df = _numeric_columns(df, label, ("params_b", *BENCHMARKS), allow_empty=BENCHMARKS)
    _check_sizes(df, label, "params_b")
    _check_scores(df, label, BENCHMARKS)
    _check_no_fraction_among_percent(df, label, BENCHMARKS)
    _check_unique(df, label, ("model",), "model name")
    _check_unique(df, label, ("family", "params_b"), "family and size")
    cols = [*BASE_REQUIRED, *BASE_OPTIONAL]
    extra = [c for c in df.columns if c not in cols]
    out = df[cols + extra].sort_values(["family", "params_b"], key=_sort_key, kind="stable")
    return out.reset_index(drop=True)


def validate_table_columns(df: pd.DataFrame, *, sizes: Sequence[str] = ("params_b",),
                           scores: Sequence[str] = BENCHMARKS, names: Sequence[str] = (),
                           label: str | None = None) -> pd.DataFrame:
    """Check the named columns of an in-memory table (for functions that need only a few
    columns, e.g. the running coupling); return a copy with those columns as floats.

    ``sizes`` must be finite and > 0 (billions of parameters); ``scores`` are percent in
    [0, 100] with NaN allowed (when all five scores are checked, a row or table whose
    scores all lie in [0, 1] is refused as fractions; two scores alone are too few to
    tell); ``names`` must be non-empty. Raises :class:`DataError` naming the row and
    the column (the label is ``df.attrs["label"]`` or ``"<table>"``).
    """
    label = label or str(getattr(df, "attrs", {}).get("label", "<table>"))
    df = _as_table(df, label)
    _require_columns(df, [*names, *sizes, *scores], label)
    _check_names(df, label, tuple(names))
    df = _numeric_columns(df, label, (*sizes, *scores), allow_empty=scores)
    for col in sizes:
        _check_sizes(df, label, col)
    for col in scores:
        for i, v in enumerate(df[col].tolist()):
            if not math.isnan(v) and not 0.0 <= v <= 100.0:
                raise DataError(f"score {v:g} is outside [0, 100]", file=label, row=i + 1,
                                column=col, hint="Scores are percentages from 0 to 100")
    if set(BENCHMARKS) <= set(scores):
        _check_scores(df, label, tuple(scores))
    return df


def validate_frontier_models(df: pd.DataFrame, label: str = "<table>") -> pd.DataFrame:
    """Validate and type a frontier table given as strings (as read from CSV)."""
    df = _text_columns(df, label, FRONTIER_REQUIRED, FRONTIER_OPTIONAL, ("model", "lab"))
    df = _numeric_columns(df, label, FRONTIER_SCORES, allow_empty=())
    _check_scores(df, label, FRONTIER_SCORES)
    _check_unique(df, label, ("model",), "model name")
    return df.reset_index(drop=True)


def _sort_key(col: pd.Series) -> pd.Series:
    return col.str.lower() if col.dtype == object else col


BASE_TABLES: dict[str, str] = {"measured": "base_models.csv", "paper": "base_models_paper.csv"}
"""The shipped base-model tables, by variant name. ``measured`` (the default): every row a
measurement, Pythia as two families (``Pythia``, the standard run, and ``Pythia-deduped``)
from the Open LLM Leaderboard v1 results table. ``paper``: the authors' table as they
used it, whose ``Pythia`` rows mix the two runs and include two partly estimated rows."""

ESTIMATED_FLAGS: frozenset[str] = frozenset({"estimated", "partly_estimated"})
"""``flags`` tokens marking a row whose scores are not (all) measured."""


def estimated_rows(df: pd.DataFrame) -> pd.Series:
    """Boolean mask of the rows whose ``flags`` carry a token of :data:`ESTIMATED_FLAGS`."""
    if "flags" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["flags"].map(lambda f: bool(ESTIMATED_FLAGS & {t.strip() for t in
                                                             str(f).split(";")}))


def load_base_models(path: str | Path | None = None, *, variant: str = "measured",
                     include_estimated: bool | None = None) -> pd.DataFrame:
    """Load and validate a base-model CSV (default: the shipped table ``variant``).

    Columns: ``model, family, params_b`` (billions), ``hellaswag, truthfulqa, arc,
    winogrande, mmlu`` (percent; NaN where missing), ``source, flags``.

    ``variant`` names a shipped table (:data:`BASE_TABLES`): ``"measured"`` (default) or
    ``"paper"``, the authors' table with their mixed Pythia rows, to reproduce their
    numbers; it cannot be combined with ``path``. A ``path`` written ``"@paper"`` or
    ``"@measured"`` names a shipped table too (the command line's ``--data @paper``). Rows flagged as estimated
    (:data:`ESTIMATED_FLAGS`) are dropped unless ``include_estimated`` is True; the default
    (None) keeps them only in the ``paper`` table, which is the authors' table as published.
    The dropped model names are in ``df.attrs["excluded_estimated"]``.
    """
    if isinstance(path, str) and path.startswith("@") and variant == "measured":
        path, variant = None, path[1:]
    if variant not in BASE_TABLES:
        raise InputError(f"no shipped base-model table named {variant!r}; the shipped tables "
                         f"are {', '.join('@' + k for k in BASE_TABLES)}")
    if path is not None and variant != "measured":
        raise InputError(f"variant={variant!r} names a shipped table; it cannot be combined "
                         f"with a path ({path})")
    text, label = _read_text(path, BASE_TABLES[variant])
    df = validate_base_models(_parse_table(text, label), label)
    keep = include_estimated if include_estimated is not None else (
        path is None and variant == "paper")
    estimated = estimated_rows(df)
    excluded = [] if keep else df.loc[estimated, "model"].tolist()
    if excluded and len(excluded) == len(df):
        raise DataError("every row is flagged as estimated (flags " + ", ".join(
            sorted(ESTIMATED_FLAGS)) + ")", file=label, column="flags",
            hint="Pass include_estimated=True to use estimated rows")
    if excluded:
        df = df[~estimated].reset_index(drop=True)
    df.attrs["variant"] = "file" if path is not None else variant
    df.attrs["excluded_estimated"] = excluded
    return df


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
