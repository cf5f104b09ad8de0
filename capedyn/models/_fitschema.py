"""The schema of a saved fit's ``meta.json``, checked before anything is built from it.

:func:`read_meta` reads the file (size-capped, strict JSON: no NaN/Infinity, no deep
nesting), validates it against :data:`META_SCHEMA` (JSON Schema, with bounds on every
count, so a file claiming ``n_families: 1e12`` is refused before any array is allocated)
and checks what a schema cannot say (one entry per family, unique names, each start is
the first of its models). Every failure is a :class:`~capedyn._errors.FitFileError` naming
the file and the offending entry.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .._errors import FitFileError, InputError
from .._text import PARAMS_B_RANGE, name_problem
from ..data.tables import BENCHMARKS

__all__ = ["META_SCHEMA", "MAX_FAMILIES", "MAX_META_BYTES", "read_meta", "check_regular_file"]

MAX_FAMILIES = 1000
"""Most families a saved fit may hold (the shipped table has about thirty)."""

MAX_MODELS = 1000
"""Most models recorded for one family."""

MAX_META_BYTES = 16 * 2**20
"""Largest ``meta.json`` read (a fit of every family is a few tens of kilobytes)."""

_NUM = {"type": "number"}
_OPT_NUM = {"type": ["number", "null"]}
_SHA = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 200}
_SCORE = {"type": "number", "minimum": 0, "maximum": 100}

META_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["format", "format_version", "config", "field_config", "n_families",
                 "families", "population", "model_sha256"],
    "properties": {
        "format": {"type": "string"},
        "format_version": {"type": "integer"},
        "config": {"type": "object", "maxProperties": 100},
        "field_config": {"type": "object", "maxProperties": 100},
        "optimizer_run": {"type": ["string", "null"], "maxLength": 20},
        "n_iter": {"type": ["integer", "null"], "minimum": 0},
        "n_families": {"type": "integer", "minimum": 1, "maximum": MAX_FAMILIES},
        "families": {
            "type": "array", "minItems": 1, "maxItems": MAX_FAMILIES,
            "items": {
                "type": "object",
                "required": ["name", "model", "params_b", "scores", "models"],
                "properties": {
                    "name": _NAME, "model": _NAME,
                    "params_b": {"type": "number", "minimum": PARAMS_B_RANGE[0],
                                 "maximum": PARAMS_B_RANGE[1]},
                    "scores": {"type": "array", "items": _SCORE, "minItems": 5, "maxItems": 5},
                    "models": {"type": "array", "items": _NAME, "minItems": 1,
                               "maxItems": MAX_MODELS},
                    "log10_nc": _NUM, "nc_b": _OPT_NUM,
                    "h": {"type": "array", "items": _NUM, "maxItems": 5},
                },
            },
        },
        "population": {"type": "object", "properties": {
            "mu_nc": _NUM, "nc_b": _OPT_NUM, "gamma0": _NUM}},
        "loss": _OPT_NUM, "mse_points2": _OPT_NUM,
        "metrics": {"type": ["object", "null"]},
        "data": {"type": "object", "properties": {
            "source": {"type": "string", "maxLength": 4096},
            "csv_sha256": _SHA,
            "training_rows_sha256": {"anyOf": [_SHA, {"type": "null"}]}}},
        "training_range": {"type": ["object", "null"],
                           "required": ["params_b", "scores", "n_models"], "properties": {
            "params_b": {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2},
            "scores": {"type": "object", "required": list(BENCHMARKS), "additionalProperties": {
                "type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}},
            "n_models": {"type": "integer", "minimum": 1}}},
        "model_sha256": _SHA,
        "versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "created": {"type": "string"},
    },
}
"""What a ``meta.json`` written by :meth:`capedyn.CouplingODE.save` holds, with bounds."""


def check_regular_file(path: Path, folder: Path, what: str) -> None:
    """Refuse a missing file, and a FIFO, device or folder in its place (reading a FIFO
    would block for ever)."""
    if not os.path.lexists(path):
        raise FitFileError(f"{folder}: {path.name} is missing; the fit is incomplete, refit "
                           "it with `capedyn fit --out ...`")
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a pipe, device or socket)"
        raise FitFileError(f"{path}: is {kind}; a fit's {what} is a regular file, refit")


def _no_constant(name: str):
    raise InputError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise InputError(f"{text[:30]} is beyond the range of a number")
    return value


def read_meta(meta_file: Path) -> dict[str, Any]:
    """``meta.json`` parsed and validated (see the module docstring)."""
    size = meta_file.stat().st_size
    if size > MAX_META_BYTES:
        raise FitFileError(f"{meta_file}: {size / 2**20:.0f} MB is far larger than any fit's "
                           f"meta.json (at most {MAX_META_BYTES // 2**20} MB read); refit")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"), parse_constant=_no_constant,
                          parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise FitFileError(f"{meta_file}: not valid JSON ({exc.msg} at line {exc.lineno}, "
                           f"column {exc.colno}); refit") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise FitFileError(f"{meta_file}: not valid JSON ({exc}); refit") from None
    except RecursionError:
        raise FitFileError(f"{meta_file}: nested too deeply to be a fit's meta.json; refit") from None
    except OSError as exc:
        raise FitFileError(f"{meta_file}: cannot be read ({exc.strerror or exc})") from None
    _validate(meta, meta_file)
    return meta


def _validate(meta: Any, meta_file: Path) -> None:
    import jsonschema

    from ._fitfile import FIT_FORMAT, FIT_FORMAT_VERSION

    if not isinstance(meta, dict) or meta.get("format") != FIT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise FitFileError(f"{meta_file}: not a capedyn coupling-ODE fit (format "
                           f"{str(found)[:60]!r})")
    if meta.get("format_version") != FIT_FORMAT_VERSION:
        raise FitFileError(f"{meta_file}: fit format version {str(meta.get('format_version'))[:20]}"
                           f" but this capedyn reads version {FIT_FORMAT_VERSION}; refit")
    validator = jsonschema.Draft202012Validator(META_SCHEMA)
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(meta))
    except RecursionError:
        raise FitFileError(f"{meta_file}: nested too deeply to be a fit's meta.json; refit") from None
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        what = ("is missing" if error.validator == "required" else "")
        message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
        if error.validator == "required":
            message = message.replace(" is a required property", "") + f" {what}"
        hint = ("; a fit without its checksum cannot be trusted" if "model_sha256" in message
                else "")
        raise FitFileError(f"{meta_file}: {where}: {message}{hint}; refit (or restore the "
                           "file the fit wrote)")
    _consistent(meta, meta_file)


def _consistent(meta: dict[str, Any], meta_file: Path) -> None:
    fams = meta["families"]
    if len(fams) != meta["n_families"]:
        raise FitFileError(f"{meta_file}: n_families is {meta['n_families']} but {len(fams)} "
                           "families are listed; refit (or restore the file the fit wrote)")
    seen: set[str] = set()
    for i, f in enumerate(fams):
        for key in ("name", "model"):
            problem = name_problem(f[key])
            if problem:
                raise FitFileError(f"{meta_file}: families/{i}/{key} {problem}; refit")
        if f["name"] in seen:
            raise FitFileError(f"{meta_file}: families/{i}: family '{f['name']}' is listed "
                               "twice; refit")
        seen.add(f["name"])
        if f["models"][0] != f["model"]:
            raise FitFileError(f"{meta_file}: families/{i}: the start '{f['model']}' is not "
                               "the first of its models; refit")
