"""``capedyn ingest``: lm-evaluation-harness / Open LLM Leaderboard v1 result files → a table."""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import InputError
from ._common import size_value
from .entry import add_json_flag, format_table
from .._json import to_jsonable

_COLUMNS = ("model", "family", "params_b", "hellaswag", "truthfulqa", "arc", "winogrande",
            "mmlu", "source")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest", help="turn lm-evaluation-harness / Open LLM Leaderboard v1 result files "
                       "into a base-model table",
        description="Read result files and print (or write with --out) a table in the "
                    "base-model schema that every other command accepts with --data: "
                    "model, family, params_b (billions), hellaswag, truthfulqa, arc, "
                    "winogrande, mmlu (percent), source, flags, n_shot. lm-evaluation-"
                    "harness: results_<datetime>.json (v0.4) or results.json (older); "
                    "several files of one model are merged. Open LLM Leaderboard v1: the "
                    "per-model result JSONs (MMLU = unweighted mean of the 57 subjects). "
                    "Rows whose few-shot counts differ from the leaderboard v1 protocol "
                    "(ARC 25, HellaSwag 10, TruthfulQA 0, WinoGrande 5, MMLU 5) are flagged.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="result file, or folder searched recursively for results*.json")
    p.add_argument("--format", choices=("auto", "lm-eval", "leaderboard-v1"), default="auto",
                   help="file format (default auto: decided per file from its keys)")
    p.add_argument("--family", metavar="NAME", default=None,
                   help="family of every model (default: the model name without its size, "
                        "e.g. 'pythia' for EleutherAI/pythia-160m)")
    p.add_argument("--params-b", metavar="N[,N...]", default=None,
                   help="sizes in billions of parameters, one per model in the order the "
                        "models are listed (paths in the order given, files sorted within a "
                        "folder); needed when a file records no parameter count (leaderboard "
                        "v1 files never do)")
    p.add_argument("--out", metavar="FILE.csv", default=None,
                   help="write the table here (atomically; checked before reading); an "
                        "existing file is refused unless --force")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    add_json_flag(p)
    p.set_defaults(handler=_ingest, human=_ingest_human)


def _sizes(text: str | None) -> list[float] | None:
    if text is None:
        return None
    parts = [t.strip() for t in text.split(",")]
    if not parts or any(t == "" for t in parts):
        raise InputError(f"--params-b '{text}': give comma-separated sizes in billions, e.g. 1.1,6.9")
    return [size_value(t, "--params-b") for t in parts]


def _ingest(args) -> dict[str, Any]:
    from .._io import atomic_write_text, check_output_file

    if args.out is not None:
        check_output_file(args.out, "--out", (".csv",), force=args.force)  # before reading
    sizes = _sizes(args.params_b)

    from ..data.ingest import read_results, to_csv_text

    table = read_results(args.paths, format=args.format, family=args.family, params_b=sizes)
    rows = [{k: to_jsonable(v) for k, v in r.items()} for r in table.to_dict(orient="records")]
    result: dict[str, Any] = {"rows": rows, "out": None}
    if args.out is not None:
        result["out"] = str(atomic_write_text(args.out, to_csv_text(table), replace=args.force))
    return result


def _ingest_human(r: dict[str, Any]) -> str:
    cols = [c for c in _COLUMNS if c != "source"] + ["flags"]
    lines = [format_table(r["rows"], cols, floatfmt=".4g"), ""]
    lines += [f"{row['model']}: {row['source']}" for row in r["rows"]]
    if r["out"]:
        lines += ["", f"wrote {r['out']} (scores in percent; load it with --data {r['out']})"]
    return "\n".join(lines)
