"""``capedyn predictions``: the authors' falsifiable predictions and their status now."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from .entry import add_json_flag, format_table, split_list


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predictions", help="the falsifiable predictions and their status, from the data",
        description="Each prediction (id, claim, deadline, test) is checked against the "
                    "base-model and frontier tables: confirmed, refuted, pending (deadline "
                    "not reached, not met yet) or untestable (the data needed are missing; "
                    "the evidence says which). Statuses are computed on every run.")
    p.add_argument("--data", metavar="CSV", default=None,
                   help="base-model CSV (default: the table shipped with capedyn)")
    p.add_argument("--frontier-data", metavar="CSV", default=None,
                   help="frontier CSV (default: the table shipped with capedyn); optional "
                        "numeric columns 'ifeval' and 'hle' enable the IFEval predictions")
    p.add_argument("--today", metavar="YYYY-MM-DD", default=None,
                   help="compare deadlines with this date instead of today's")
    p.add_argument("--id", metavar="ID[,ID...]", default=None,
                   help="only these predictions (default: all)")
    add_json_flag(p)
    p.set_defaults(handler=_predictions, human=_human)


def _predictions(args) -> dict[str, Any]:
    from ..evaluation.predictions import evaluate, today

    on = args.today or today().isoformat()
    rows = evaluate(args.data, args.frontier_data, on=on, ids=split_list(args.id),
                    progress=True)
    return {"today": on,
            "predictions": [{k: r[k] for k in ("id", "claim", "deadline", "status",
                                                "evidence", "rule")} for r in rows]}


def _human(r: dict[str, Any]) -> str:
    rows = [{"id": p["id"], "deadline": p["deadline"] or "-", "status": p["status"]}
            for p in r["predictions"]]
    lines = [f"predictions checked on {r['today']}", format_table(rows), ""]
    for p in r["predictions"]:
        lines.append(f"{p['id']} [{p['status']}]")
        lines += textwrap.wrap(p["claim"], 92, initial_indent="  claim:    ",
                               subsequent_indent="            ")
        lines += textwrap.wrap(p["evidence"], 92, initial_indent="  evidence: ",
                               subsequent_indent="            ")
    return "\n".join(lines)
