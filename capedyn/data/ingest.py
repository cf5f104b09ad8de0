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

import json
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._text import csv_cell
from .._units import is_parameter_count, name_size_mismatch, parameter_count_hint
from .tables import BASE_REQUIRED, BENCHMARKS, DataError, validate_base_models

__all__ = ["read_lm_eval", "read_leaderboard_v1", "read_results", "find_result_files",
           "IngestError", "LEADERBOARD_V1_SHOTS", "MMLU_SUBJECTS", "FORMATS"]

FORMATS: tuple[str, ...] = ("auto", "lm-eval", "leaderboard-v1")

LEADERBOARD_V1_SHOTS: dict[str, int] = {"arc": 25, "hellaswag": 10, "truthfulqa": 0,
                                        "winogrande": 5, "mmlu": 5}
"""Few-shot counts of the Open LLM Leaderboard v1 protocol, per score column."""

MMLU_SUBJECTS: tuple[str, ...] = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science",
    "college_mathematics", "college_medicine", "college_physics", "computer_security",
    "conceptual_physics", "econometrics", "electrical_engineering",
    "elementary_mathematics", "formal_logic", "global_facts", "high_school_biology",
    "high_school_chemistry", "high_school_computer_science",
    "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics",
    "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law",
    "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law",
    "professional_medicine", "professional_psychology", "public_relations",
    "security_studies", "sociology", "us_foreign_policy", "virology", "world_religions",
)
"""The 57 MMLU (hendrycksTest) subjects."""

# score column -> accepted (task, metric) pairs of lm-evaluation-harness, first match wins
_LM_EVAL_TASKS: dict[str, tuple[tuple[str, str], ...]] = {
    "hellaswag": (("hellaswag", "acc_norm"),),
    "truthfulqa": (("truthfulqa_mc2", "acc"), ("truthfulqa_mc", "mc2")),
    "arc": (("arc_challenge", "acc_norm"),),
    "winogrande": (("winogrande", "acc"),),
    "mmlu": (("mmlu", "acc"),),
}

# leaderboard v1 task name -> (score column, metric)
_LB_TASKS: dict[str, tuple[str, str]] = {
    "arc:challenge": ("arc", "acc_norm"),
    "hellaswag": ("hellaswag", "acc_norm"),
    "truthfulqa:mc": ("truthfulqa", "mc2"),
    "winogrande": ("winogrande", "acc"),
}
_LB_MMLU_PREFIX = "hendrycksTest-"

_LM_EVAL_EXPECTED = ("top-level 'results' mapping tasks (hellaswag, truthfulqa_mc2, "
                     "arc_challenge, winogrande, mmlu) to metric keys such as 'acc_norm,none'")
_LB_EXPECTED = ("top-level 'results' with keys such as 'harness|arc:challenge|25', "
                "'harness|hellaswag|10', 'harness|truthfulqa:mc|0', 'harness|winogrande|5', "
                "'harness|hendrycksTest-<subject>|5'")

_AGREE = 1e-9  # two files "agree" on a score when they differ by less than this fraction


class IngestError(DataError):
    """A result file could not be read into the table; the message names the file."""

    def __init__(self, message: str, *, file: str, hint: str | None = None):
        super().__init__(message, file=file, hint=hint)


# --------------------------------------------------------------------------- one file

@dataclass
class _Score:
    value: float          # fraction 0-1
    n_shot: int | None
    file: str
    detail: str = ""      # e.g. "mean of 57 subjects"


@dataclass
class _FileResult:
    file: str
    fmt: str              # "lm-eval" or "leaderboard-v1"
    version: str
    model: str
    n_params: float | None
    scores: dict[str, _Score] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


MAX_RESULT_BYTES = 64 * 2**20
"""Largest result file read (a results JSON is kilobytes; per-sample logs are not read)."""


def _load_json(path: Path) -> Any:
    label = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise IngestError(f"cannot be read ({exc.strerror or exc})", file=label) from None
    if size > MAX_RESULT_BYTES:
        raise IngestError(f"is {size / 2**20:.0f} MB, larger than any result file "
                          f"(at most {MAX_RESULT_BYTES // 2**20} MB read)", file=label,
                          hint="Pass the results*.json file, not a per-sample log")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 text ({exc.reason})", file=label,
                          hint="Pass the JSON result file written by the harness") from None
    except OSError as exc:
        raise IngestError(f"cannot be read ({exc.strerror or exc})", file=label) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        what = exc.msg[:-3] if exc.msg.endswith(" at") else exc.msg  # "... starting at"
        raise IngestError(f"not valid JSON ({what} at line {exc.lineno}, column {exc.colno})",
                          file=label, hint="Pass the JSON result file written by the harness") from None
    except RecursionError:
        raise IngestError("not a result file (JSON nested too deeply)", file=label) from None


def _detect(data: Any) -> str | None:
    """'lm-eval', 'leaderboard-v1' or None (unknown layout)."""
    if not isinstance(data, Mapping):
        return None
    results = data.get("results")
    if not isinstance(results, Mapping) or not results:
        return None
    keys = [str(k) for k in results]
    if any(k.startswith("harness|") for k in keys):
        return "leaderboard-v1"
    known = {t for pairs in _LM_EVAL_TASKS.values() for t, _ in pairs}
    if any(k in known or k.startswith("mmlu_") for k in keys):
        return "lm-eval"
    return None


def _unknown_layout(label: str, data: Any, fmt: str) -> IngestError:
    if isinstance(data, Mapping):
        found = f"top-level keys {sorted(map(str, data))[:8]}"
        results = data.get("results")
        if isinstance(results, Mapping):
            found += f", 'results' keys {sorted(map(str, results))[:6]}"
    else:
        found = f"a JSON {type(data).__name__}, not an object"
    expected = {"lm-eval": _LM_EVAL_EXPECTED, "leaderboard-v1": _LB_EXPECTED}.get(fmt)
    if expected is None:
        expected = (f"an lm-evaluation-harness file ({_LM_EVAL_EXPECTED}) or an Open LLM "
                    f"Leaderboard v1 file ({_LB_EXPECTED})")
    return IngestError(f"unknown layout ({found}); expected {expected}", file=label)


def _fraction(raw: Any, label: str, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        raise IngestError(f"{where} is {raw!r:.40}, not a number", file=label,
                          hint="The harness stores scores as fractions between 0 and 1")
    try:
        v = float(raw)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise IngestError(f"{where} = {raw!r:.40} is not a fraction in [0, 1]", file=label,
                          hint="The harness stores scores as fractions between 0 and 1; "
                               "is this a result file written by the harness?")
    return v


def _shot(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, numbers.Integral):
        return int(raw)
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    return None


def _count(raw: Any) -> float | None:
    """A parameter count (a positive finite number) or None."""
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        return None
    try:
        v = float(raw)
    except OverflowError:
        return None
    return v if math.isfinite(v) and v > 0 else None


def _display_name(raw: str) -> str:
    """A model name for the table: a local checkpoint path becomes its last part."""
    name = raw.strip().strip("/")
    if raw.strip().startswith(("/", "./", "../", "~")) or "\\" in name:
        name = re.split(r"[\\/]", name)[-1]
    return name


def _model_args_name(model_args: Any) -> str | None:
    if isinstance(model_args, Mapping):
        for key in ("pretrained", "model", "path", "model_name"):
            v = model_args.get(key)
            if isinstance(v, str) and v.strip():
                return v
        return None
    if isinstance(model_args, str):
        for part in model_args.split(","):
            key, sep, value = part.partition("=")
            if sep and key.strip() in ("pretrained", "model", "path") and value.strip():
                return value.strip()
    return None


def _lm_eval_metric(entry: Any, metric: str, label: str, task: str) -> float | None:
    """The value of ``metric`` in one task entry: ``metric,none`` first, then the
    filter-less ``metric`` (older files), then a single ``metric,<filter>``."""
    if not isinstance(entry, Mapping):
        raise IngestError(f"results['{task}'] is a {type(entry).__name__}, not a mapping of "
                          "metrics", file=label, hint=_LM_EVAL_EXPECTED)
    for key in (f"{metric},none", metric):
        if key in entry:
            return _fraction(entry[key], label, f"results['{task}']['{key}']")
    filtered = sorted(k for k in map(str, entry) if k.startswith(metric + ",")
                      and not k.startswith(metric + "_stderr"))
    if len(filtered) == 1:
        return _fraction(entry[filtered[0]], label, f"results['{task}']['{filtered[0]}']")
    if len(filtered) > 1:
        raise IngestError(f"results['{task}'] has {metric} under several filters {filtered}",
                          file=label, hint="Keep one filter per task in the file")
    return None


def _lm_eval_file(path: Path, data: Mapping[str, Any]) -> _FileResult:
    label = str(path)
    results = data["results"]
    config = data.get("config") if isinstance(data.get("config"), Mapping) else {}
    groups = data.get("groups") if isinstance(data.get("groups"), Mapping) else {}
    n_shot = data.get("n-shot") if isinstance(data.get("n-shot"), Mapping) else {}
    configs = data.get("configs") if isinstance(data.get("configs"), Mapping) else {}

    name = data.get("model_name")
    if not (isinstance(name, str) and name.strip()):
        name = _model_args_name(config.get("model_args"))
    if not name:
        raise IngestError("no model name: expected a top-level 'model_name' or "
                          "'pretrained=...' in config.model_args", file=label,
                          hint="Add \"model_name\": \"org/model\" to the file")
    n_params = _count(config.get("model_num_parameters"))
    version = data.get("lm_eval_version")
    if not isinstance(version, str) or not version.strip():
        v04 = ("n-shot" in data or "configs" in data or
               any("," in str(k) for e in results.values() if isinstance(e, Mapping) for k in e))
        version = "0.4.x" if v04 else "pre-0.4"
    default_shot = _shot(config.get("num_fewshot"))

    def shots_of(task: str) -> int | None:
        s = _shot(n_shot.get(task))
        if s is None and isinstance(configs.get(task), Mapping):
            s = _shot(configs[task].get("num_fewshot"))
        if s is None and task == "mmlu":  # group: the subjects' common count
            subj = {_shot(v) for k, v in n_shot.items() if str(k).startswith("mmlu_")}
            subj.discard(None)
            if len(subj) == 1:
                s = subj.pop()
        return s if s is not None else default_shot

    out = _FileResult(label, "lm-eval", version, _display_name(name), n_params)
    for col, pairs in _LM_EVAL_TASKS.items():
        for task, metric in pairs:
            entry = results.get(task)
            if entry is None and task == "mmlu":
                entry = groups.get(task)
            if entry is None:
                continue
            value = _lm_eval_metric(entry, metric, label, task)
            if value is None:
                raise IngestError(f"results['{task}'] has no '{metric}' score (keys "
                                  f"{sorted(map(str, entry))[:6]})", file=label,
                                  hint=f"Expected '{metric},none' (v0.4) or '{metric}'")
            out.scores[col] = _Score(value, shots_of(task), label,
                                     f"{task} {metric}")
            break
    if not out.scores:
        raise _unknown_layout(label, data, "lm-eval")
    return out


def _leaderboard_file(path: Path, data: Mapping[str, Any]) -> _FileResult:
    label = str(path)
    results = data["results"]
    general = data.get("config_general") if isinstance(data.get("config_general"), Mapping) else None
    config = data.get("config") if isinstance(data.get("config"), Mapping) else None
    name = None
    sha = None
    for block in (general, config):
        if block is not None and isinstance(block.get("model_name"), str) and block["model_name"].strip():
            name = block["model_name"]
            sha = block.get("lighteval_sha")
            break
    if not name:
        raise IngestError("no model name: expected config_general.model_name (newer files) "
                          "or config.model_name (older files)", file=label)
    version = f"lighteval_sha {str(sha)[:10]}" if isinstance(sha, str) and sha else "harness"

    out = _FileResult(label, "leaderboard-v1", version, _display_name(name), None)
    mmlu: dict[str, tuple[float, int | None]] = {}
    unknown_subjects = []
    for key, entry in results.items():
        parts = str(key).split("|")
        if len(parts) != 3 or parts[0] != "harness":
            continue
        task, shot = parts[1], _shot(parts[2])
        if task.startswith(_LB_MMLU_PREFIX):
            subject = task[len(_LB_MMLU_PREFIX):]
            if subject not in MMLU_SUBJECTS:
                unknown_subjects.append(subject)
                continue
            if not isinstance(entry, Mapping) or "acc" not in entry:
                raise IngestError(f"results['{key}'] has no 'acc'", file=label, hint=_LB_EXPECTED)
            if subject in mmlu:
                raise IngestError(f"MMLU subject '{subject}' appears twice", file=label)
            mmlu[subject] = (_fraction(entry["acc"], label, f"results['{key}']['acc']"), shot)
            continue
        if task not in _LB_TASKS:
            continue
        col, metric = _LB_TASKS[task]
        if not isinstance(entry, Mapping) or metric not in entry:
            keys = sorted(map(str, entry))[:6] if isinstance(entry, Mapping) else type(entry).__name__
            raise IngestError(f"results['{key}'] has no '{metric}' (found {keys})",
                              file=label, hint=_LB_EXPECTED)
        if col in out.scores:
            raise IngestError(f"two entries for {task} (different few-shot counts)", file=label,
                              hint="Keep one entry per task")
        out.scores[col] = _Score(_fraction(entry[metric], label, f"results['{key}']['{metric}']"),
                                 shot, label, f"{task} {metric}")
    if unknown_subjects:
        raise IngestError(f"unknown MMLU subject(s) {sorted(unknown_subjects)[:5]}", file=label,
                          hint="Expected the 57 hendrycksTest subjects")
    if mmlu:
        missing = [s for s in MMLU_SUBJECTS if s not in mmlu]
        if missing:
            shown = ", ".join(missing[:12]) + (f" and {len(missing) - 12} more"
                                               if len(missing) > 12 else "")
            raise IngestError(f"MMLU has {len(mmlu)} of the 57 subjects; missing: {shown}",
                              file=label, hint="MMLU is the mean over all 57 subjects; "
                                               "pass a file with every subject")
        shots = {s for _, s in mmlu.values()}
        value = float(np.mean([mmlu[s][0] for s in MMLU_SUBJECTS]))
        out.scores["mmlu"] = _Score(value, shots.pop() if len(shots) == 1 else None, label,
                                    "unweighted mean of 57 hendrycksTest acc")
    if not out.scores:
        raise _unknown_layout(label, data, "leaderboard-v1")
    return out


def _read_file(path: Path, fmt: str) -> _FileResult:
    data = _load_json(path)
    kind = _detect(data)
    if kind is None or (fmt != "auto" and kind != fmt):
        if kind is not None:
            raise IngestError(f"this is a {kind} file, not {fmt}", file=str(path),
                              hint=f"Pass --format {kind} or --format auto")
        raise _unknown_layout(str(path), data, fmt)
    return _lm_eval_file(path, data) if kind == "lm-eval" else _leaderboard_file(path, data)


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
