"""One result file → its scores: the lm-evaluation-harness and Open LLM Leaderboard v1
layouts, told apart by their keys, each task's metric read and turned into percent, the
model name, size and few-shot counts the file carries. :mod:`capedyn.data.ingest` merges
the files into a table; its docstring describes both formats."""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .tables import DataError


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
