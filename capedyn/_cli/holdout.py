"""``capedyn holdout`` and ``capedyn crossval``: the held-out family benchmark (SPEC §5)."""

from __future__ import annotations

import argparse

from ..cli import add_data_flag, add_json_flag, format_table, split_list

_METHOD_NAMES = ("coupling_ode, sindy_ode, linear_ode, poly1..poly4, "
                 "poly1_anchored..poly4_anchored")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "holdout", help="hold out one family and score every method on it (SPEC §5)",
        description="Hold out FAMILY: train each method on the other families (or --train), "
                    "give it FAMILY's smallest model only, score its predictions of the "
                    "family's other models. P1 (the paper's split): --family Llama-2 --train Pythia.")
    p.add_argument("--family", required=True, metavar="F", help="family to hold out")
    p.add_argument("--train", metavar="A,B,...", default=None,
                   help="training families (default: every other family in the table)")
    _common(p)
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="write predicted vs actual trajectories (one panel per benchmark)")
    p.set_defaults(handler=_holdout, human=_human)

    c = sub.add_parser(
        "crossval", help="leave one family out for every family with >= 3 complete models (P2)",
        description="P2: hold out each family in turn (those with at least 3 complete models; "
                    "others are skipped with a reason), training on every other family of the "
                    "table. Progress on stderr.")
    c.add_argument("--families", metavar="A,B,...", default=None,
                   help="hold out only these families (training still uses every other family)")
    _common(c)
    c.add_argument("--plot", metavar="PNG", default=None,
                   help="write a bar chart of mean and median relative MAE by method")
    c.set_defaults(handler=_crossval, human=_human)


def _common(p: argparse.ArgumentParser) -> None:
    add_data_flag(p)
    p.add_argument("--methods", metavar="M,...", default=None,
                   help=f"methods to run (default: all): {_METHOD_NAMES}")
    add_json_flag(p)


def _load(args):
    from ..data import load_base_models

    return load_base_models(args.data)


def _check_plot_path(path: str | None) -> None:
    if path is not None and not path.lower().endswith(".png"):
        raise ValueError(f"--plot {path!r}: the figure is written as PNG; give a path ending in .png")


def _holdout(args) -> dict:
    from ..heldout import holdout, plot_holdout_trajectories

    _check_plot_path(args.plot)
    df = _load(args)
    result = holdout(df, args.family, train=split_list(args.train),
                     methods=split_list(args.methods), curves=args.plot is not None)
    out = result.to_dict()
    if args.plot:
        out["plot"] = str(plot_holdout_trajectories(result, args.family, args.plot))
    return out


def _crossval(args) -> dict:
    from ..heldout import crossval, plot_method_errors

    _check_plot_path(args.plot)
    df = _load(args)
    result = crossval(df, families=split_list(args.families), methods=split_list(args.methods))
    out = result.to_dict()
    if args.plot and len(result.table):
        out["plot"] = str(plot_method_errors(result.summary, args.plot))
    return out


def _human(result: dict) -> str:
    rows = [{k: r[k] for k in ("family", "method", "status", "n_points", "mae_pp", "rel_mae_pct",
                               "n_out_of_range")} for r in result["rows"]]
    parts = [format_table(rows, floatfmt=".3g"), "", "summary over held-out families (rel MAE %)",
             format_table(result["summary"], floatfmt=".3g")]
    failed = [r for r in result["rows"] if r["status"] != "ok"]
    if failed:
        parts += ["", "failed:"] + [f"  {r['family']} / {r['method']}: {r['message']}" for r in failed]
    if result["skipped"]:
        parts += ["", "skipped:"] + [f"  {s['family']}: {s['reason']}" for s in result["skipped"]]
    ref = result["paper_reference"]["P1"]
    parts += ["", f"paper reference ({ref['split']}; their data): " +
              ", ".join(f"{k} {v}%" for k, v in ref["rel_mae_pct"].items())]
    if result.get("plot"):
        parts.append(f"figure: {result['plot']}")
    parts.append(f"time: {result['seconds']:.1f} s")
    return "\n".join(parts)
