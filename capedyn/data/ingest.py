"""Read your own scores: lm-evaluation-harness and Open LLM Leaderboard v1 result files.

Both readers return a table in the schema of ``base_models.csv`` (see
:func:`capedyn.data.tables.validate_base_models`), already validated, so every function and
command of capedyn accepts it:

``model, family, params_b`` (billions), ``hellaswag, truthfulqa, arc, winogrande, mmlu``
(percent, NaN where the files have no such task), ``source`` (the file(s), the format and
the harness version), ``flags`` (``;``-separated notes) and ``n_shot`` (the few-shot count
of each score, e.g. ``arc=25;hellaswag=10;truthfulqa=0;winogrande=5;mmlu=5``).

**lm-evaluation-harness** (:func:`read_lm_eval`): v0.4.x ``results_<datetime>.json`` and
the older single ``results.json``. The top-level ``results`` maps a task to keys
``"<metric>,<filter>"`` (v0.4) or ``"<metric>"`` (older). Used: ``hellaswag`` acc_norm,
``truthfulqa_mc2`` acc (older: ``truthfulqa_mc`` mc2), ``arc_challenge`` acc_norm,
``winogrande`` acc, ``mmlu`` acc. The ``mmlu`` entry is the harness's group aggregate,
which v0.4 weights each subject by its number of questions (the leaderboard v1 figure is
the unweighted mean of the 57 subjects); rows that use it carry the flag
``mmlu_size_weighted``. The model name is the top-level ``model_name``, else
``pretrained=`` of ``config.model_args`` (a string ``"pretrained=X,dtype=..."`` or a
dict); the size is ``config.model_num_parameters`` (v0.4.3+) when present. The few-shot
counts come from ``n-shot`` (older files: ``config.num_fewshot``); a row whose counts differ
from the leaderboard v1 protocol (ARC 25, HellaSwag 10, TruthfulQA 0, WinoGrande 5, MMLU 5)
carries the flag ``n_shot_differs(...)``. Several files for one model (tasks run
separately) are merged; two files that give one task different values are an error
naming both.

**Open LLM Leaderboard v1** (:func:`read_leaderboard_v1`): the per-model result JSONs.
``results`` keys ``harness|arc:challenge|25`` (acc_norm), ``harness|hellaswag|10``
(acc_norm), ``harness|truthfulqa:mc|0`` (mc2), ``harness|winogrande|5`` (acc), and MMLU as
the unweighted mean of the 57 ``harness|hendrycksTest-<subject>|5`` acc (a file with only
some subjects is rejected, naming the missing ones). The model name is
``config_general.model_name`` (newer files) or ``config.model_name`` (older). These files
carry no parameter count: pass ``params_b``.

Scores are stored as fractions in both formats and become percent here. Every problem is
a :class:`IngestError` (a :class:`~capedyn.data.tables.DataError`, hence a ``ValueError``)
naming the file.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .._text import csv_cell
from .._units import is_parameter_count, name_size_mismatch, parameter_count_hint
from .tables import BASE_REQUIRED, BENCHMARKS, DataError, validate_base_models

from .result_files import (  # noqa: F401  (IngestError & co. are part of this module's API)
    _AGREE, FORMATS, LEADERBOARD_V1_SHOTS, MMLU_SUBJECTS, IngestError, _FileResult, _read_file,
)

__all__ = ["read_lm_eval", "read_leaderboard_v1", "read_results", "find_result_files",
           "IngestError", "LEADERBOARD_V1_SHOTS", "MMLU_SUBJECTS", "FORMATS"]


# --------------------------------------------------------------------------- files → table

def find_result_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Result files under ``paths``: a file is taken as is; a folder is searched
    recursively for ``results*.json`` (sorted). Raises :class:`IngestError` for a path
    that does not exist or a folder with no result file."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            found = _walk_results(p)
            if not found:
                raise IngestError("no result files (results*.json) in this folder or below",
                                  file=str(raw), hint="Pass the harness's output folder or "
                                                      "the result files themselves")
            files += found
        elif os.path.lexists(p) and not p.exists():
            raise IngestError("is a broken symbolic link", file=str(raw))
        elif os.path.lexists(p):
            raise IngestError("is not a regular file (a device, pipe or socket)", file=str(raw),
                              hint="Pass a JSON result file or a folder of them")
        else:
            raise IngestError("no such file or folder", file=str(raw))
    if not files:
        raise IngestError("no result files given", file="<paths>")
    return list(dict.fromkeys(files))


def _walk_results(folder: Path) -> list[Path]:
    """``results*.json`` files under ``folder``, sorted, following symbolic links to
    folders (each real folder once, so a link loop ends)."""
    seen: set[str] = set()
    found: list[Path] = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        found += [Path(root) / n for n in names
                  if n.startswith("results") and n.endswith(".json")
                  and (Path(root) / n).is_file()]
    return sorted(found)


def _guess_family(model: str) -> str:
    """'EleutherAI/pythia-160m' → 'pythia'; 'Llama-2-7b-hf' → 'Llama-2'; else the name."""
    base = model.split("/")[-1]
    m = re.match(r"^(.+?)[-_.]\d+(?:\.\d+)?[mMbB](?:[-_.].*)?$", base)
    return m.group(1) if m else base


def _merge(results: Sequence[_FileResult]) -> dict[str, dict[str, Any]]:
    """Group by model (order of first appearance); merge scores, refusing disagreements."""
    models: dict[str, dict[str, Any]] = {}
    for r in results:
        m = models.setdefault(r.model, {"files": [], "formats": [], "scores": {},
                                        "n_params": [], "flags": []})
        m["files"].append(r.file)
        m["formats"].append(f"{r.fmt} {r.version}")
        if r.n_params is not None:
            m["n_params"].append((r.n_params, r.file))
        m["flags"] += [f for f in r.flags if f not in m["flags"]]
        for col, sc in r.scores.items():
            prev = m["scores"].get(col)
            if prev is None:
                m["scores"][col] = sc
                continue
            if abs(prev.value - sc.value) > _AGREE or prev.n_shot != sc.n_shot:
                raise IngestError(
                    f"{col} of {r.model} is {100 * sc.value:.4g}% ({sc.n_shot}-shot) here but "
                    f"{100 * prev.value:.4g}% ({prev.n_shot}-shot) in {prev.file}",
                    file=sc.file, hint="Two result files disagree on one task; pass only "
                                       "the run you want")
    for name, m in models.items():
        sizes = {round(v) for v, _ in m["n_params"]}
        if len(sizes) > 1:
            (a, fa), (b, fb) = m["n_params"][0], m["n_params"][-1]
            raise IngestError(f"{name} has {a:.0f} parameters here but {b:.0f} in {fa}",
                              file=fb, hint="Pass the files of one model only")
    return models


def _sizes_for(models: dict[str, dict[str, Any]], params_b: Any) -> dict[str, Any]:
    """Given sizes per model name (None: take the file's count). A sequence holds one
    size per model in order, or one per model whose files record no count."""
    names = list(models)
    if params_b is None:
        return {m: None for m in names}
    if isinstance(params_b, Mapping):
        unknown = [k for k in params_b if k not in names]
        if unknown:
            raise IngestError(f"params_b names model(s) {unknown} that the files do not "
                              f"contain; models found: {', '.join(names)}", file="<params_b>")
        return {m: params_b.get(m) for m in names}
    if isinstance(params_b, (numbers.Real, str)):
        params_b = [params_b]
    values = list(params_b)
    unsized = [m for m in names if not models[m]["n_params"]]
    if len(values) == len(names):
        return dict(zip(names, values))
    if unsized and len(values) == len(unsized):
        return {m: (values[unsized.index(m)] if m in unsized else None) for m in names}
    raise IngestError(f"{len(values)} size(s) given for {len(names)} model(s); give one per "
                      f"model in this order: {', '.join(names)}"
                      + (f" (or one per model without a size in its file: {', '.join(unsized)})"
                         if unsized and len(unsized) < len(names) else ""),
                      file="<params_b>", hint="CLI: --params-b N[,N...]")


def _check_size(value: Any, model: str, file: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise IngestError(f"size {value!r} of {model} is not a number", file=file,
                          hint="params_b is in billions of parameters, e.g. 6.9") from None
    if not (math.isfinite(v) and v > 0):
        raise IngestError(f"size {value!r} of {model} must be a positive number of billions",
                          file=file, hint="params_b is in billions of parameters, e.g. 6.9")
    if is_parameter_count(v):
        raise IngestError(f"size of {model}: {parameter_count_hint(v)}", file=file,
                          hint="params_b is in billions of parameters, e.g. 6.9")
    mismatch = name_size_mismatch(model, v)
    if mismatch:
        raise IngestError(f"{mismatch}", file=file,
                          hint="--params-b takes one size per model in the order the models "
                               "are listed; check the order")
    return v


def _rows(models: dict[str, dict[str, Any]], family: str | None,
          params_b: Any) -> list[dict[str, Any]]:
    sizes = _sizes_for(models, params_b)
    unsized = [m for m in models if sizes[m] is None and not models[m]["n_params"]]
    rows = []
    for name, m in models.items():
        files = m["files"]
        given = sizes[name]
        from_file = m["n_params"][0][0] / 1e9 if m["n_params"] else None
        flags = list(m["flags"])
        if given is not None:
            size = _check_size(given, name, files[0])
            if from_file is not None and abs(size - from_file) > 0.1 * from_file:
                flags.append(f"params_b_differs_from_file({from_file:.4g})")
        elif from_file is not None:
            size = from_file
        else:
            raise IngestError(f"no parameter count for {name}: the file does not record "
                              "one", file=files[0],
                              hint="Pass the size in billions with --params-b N[,N...] (one "
                                   "per model in this order: " + ", ".join(models) + "; or one "
                                   "per model without a size: " + ", ".join(unsized) + "), or "
                                   "params_b=... in Python")
        scores = m["scores"]
        shots = {c: scores[c].n_shot for c in BENCHMARKS if c in scores}
        differs = [f"{c} {s if s is not None else '?'} vs {LEADERBOARD_V1_SHOTS[c]}"
                   for c, s in shots.items() if s != LEADERBOARD_V1_SHOTS[c]]
        if differs:
            flags.append(f"n_shot_differs({', '.join(differs)})")
        if "mmlu" in scores and scores["mmlu"].detail.startswith("mmlu "):
            flags.append("mmlu_size_weighted")
        missing = [c for c in BENCHMARKS if c not in scores]
        if missing:
            flags.append("incomplete")
        formats = ", ".join(dict.fromkeys(m["formats"]))
        rows.append({
            "model": name, "family": family or _guess_family(name), "params_b": size,
            **{c: 100.0 * scores[c].value if c in scores else math.nan for c in BENCHMARKS},
            "source": f"{formats}: {' + '.join(files)}",
            "flags": ";".join(dict.fromkeys(flags)),
            "n_shot": ";".join(f"{c}={s if s is not None else '?'}" for c, s in shots.items()),
        })
    return rows


def read_results(paths: str | Path | Iterable[str | Path], *, format: str = "auto",
                 family: str | None = None, params_b: Any = None) -> pd.DataFrame:
    """Result files (or folders of them, searched recursively) → a validated base-model table.

    ``format``: ``"auto"`` (decided per file from its keys), ``"lm-eval"`` or
    ``"leaderboard-v1"``. ``family``: the family of every row (default: the model name
    without its size, e.g. ``pythia`` for ``EleutherAI/pythia-160m``). ``params_b``: sizes
    in billions — one number, a sequence with one value per model in the order the models
    are first met (paths in the order given, files sorted within a folder), or a mapping
    model → size; a model without a size here or in its file is an error.

    Returns the table validated by :func:`capedyn.data.tables.validate_base_models` (sorted by
    family then size) with the extra column ``n_shot``.
    """
    if format not in FORMATS:
        raise IngestError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}",
                          file="<format>")
    if family is not None and not str(family).strip():
        raise IngestError("the family name is empty", file="<family>")
    files = find_result_files(paths)
    models = _merge([_read_file(f, format) for f in files])
    rows = _rows(models, None if family is None else str(family).strip(), params_b)
    label = files[0].as_posix() if len(files) == 1 else f"{files[0].as_posix()} (+{len(files) - 1} files)"
    table = pd.DataFrame(rows, columns=[*BASE_REQUIRED, "source", "flags", "n_shot"])
    try:
        return validate_base_models(table, label)
    except DataError as exc:  # name the model and its file(s), not a row of a table
        if exc.row is None or not 1 <= exc.row <= len(rows):
            raise
        row = rows[exc.row - 1]
        text = str(exc).split(": ", 1)[-1]
        where = f"{row['model']}" + (f", {exc.column}" if exc.column else "")
        raise IngestError(f"{where}: {text}", file=" + ".join(
            models[row["model"]]["files"])) from None


def read_lm_eval(path: str | Path | Iterable[str | Path], *, family: str | None = None,
                 params_b: Any = None) -> pd.DataFrame:
    """lm-evaluation-harness result files (a file, a folder searched recursively, or a
    list of them) → a validated base-model table (percent scores). See the module
    docstring for the tasks and metrics used and :func:`read_results` for ``family`` and
    ``params_b``."""
    return read_results(path, format="lm-eval", family=family, params_b=params_b)


def read_leaderboard_v1(path: str | Path | Iterable[str | Path], *, family: str | None = None,
                        params_b: Any = None) -> pd.DataFrame:
    """Open LLM Leaderboard v1 per-model result JSONs → a validated base-model table
    (percent scores; MMLU the unweighted mean of the 57 subjects). The files carry no
    parameter count, so ``params_b`` is required (see :func:`read_results`)."""
    return read_results(path, format="leaderboard-v1", family=family, params_b=params_b)


def to_csv_text(table: pd.DataFrame) -> str:
    """The table as CSV text in the ``base_models.csv`` layout (plus ``n_shot``); scores
    with 8 significant digits, missing scores empty."""
    cols = [*BASE_REQUIRED, "source", "flags"] + [c for c in ("n_shot",) if c in table.columns]
    out = table[cols].copy()
    for c in ("model", "family", "source", "flags"):  # no cell a spreadsheet would run
        out[c] = [csv_cell(str(v)) if isinstance(v, str) else v for v in out[c].tolist()]
    return out.to_csv(index=False, float_format="%.8g", lineterminator="\n")
