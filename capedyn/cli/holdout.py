"""``capedyn holdout`` and ``capedyn crossval``: the held-out benchmark (docs/protocol.md)."""

from __future__ import annotations

import argparse

from .entry import add_data_flag, add_json_flag, format_table, split_list
from ._common import (add_family_option, interval_levels, match_families, match_name,
                      table_families)

_METHOD_NAMES = ("coupling_ode, sindy_ode, linear_ode, poly1..poly4, "
                 "poly1_anchored..poly4_anchored, poly_anchored, sindy_ode_1se, logit_rate, "
                 "pca_capability, latent_skill, shared_ode")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "holdout", help="hold out one family and score every method on it",
        description="Hold out FAMILY: train each method on the other families (or --train), "
                    "give it FAMILY's smallest model only, score its predictions of the "
                    "family's other models. P1 (the paper's split): --family Llama-2 --train Pythia.")
    add_family_option(p, dest="family", required=True, metavar="F", help="family to hold out")
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
    add_family_option(c, dest="families", default=None,
                      help="hold out only these families (training still uses every other "
                           "family)")
    _common(c)
    c.add_argument("--plot", metavar="PNG", default=None,
                   help="write a bar chart of mean and median relative MAE by method")
    c.set_defaults(handler=_crossval, human=_human)


def _common(p: argparse.ArgumentParser) -> None:
    add_data_flag(p)
    p.add_argument("--methods", metavar="M,...", default=None,
                   help=f"methods to run (default: all but ensemble): {_METHOD_NAMES}; "
                        "and ensemble (a weighted combination of the others, weights chosen "
                        "inside the training set; it refits every other method per inner split)")
    p.add_argument("--selection", choices=("nested", "fixed"), default="nested",
                   help="nested (default): every hyper-parameter chosen by leave-one-family-out "
                        "inside each training set; fixed: the methods' default settings")
    p.add_argument("--interval", metavar="L[,L...]", default=None,
                   help="also give every predicted point conformal bounds at these nominal "
                        "levels (e.g. 0.5,0.9) and report per method their coverage, mean "
                        "width (points) and mean interval score. Off by default: it refits "
                        "each method once more per training family (with nested selection, "
                        "its chosen settings), about as many extra fits as training families")
    p.add_argument("--workers", metavar="N", type=_workers, default=None,
                   help="threads the (family, method) fits run on at once (default: every "
                        "core, or $CAPEDYN_WORKERS); the numbers do not depend on it")
    add_json_flag(p)


def _workers(text: str) -> int:
    from .._text import positive_count

    n = positive_count(text)
    if n is None:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads >= 1, got {text!r}")
    return n


def _load(args):
    from ..data.tables import load_base_models

    return load_base_models(args.data)


def _check_plot_path(path: str | None) -> None:
    """Refuse, before any fit, a --plot that is not a .png or cannot be written."""
    if path is not None:
        from .._io import check_output_file

        check_output_file(path, "--plot", (".png",), new_folders=False)


def _holdout(args) -> dict:
    _check_plot_path(args.plot)  # first: before JAX loads and any fit runs
    from ..evaluation.heldout import holdout
    from ..plotting import plot_holdout_trajectories, save_figure

    df = _load(args)
    known = table_families(df)
    family = match_name(args.family, known, option="--family")
    train = match_families(split_list(args.train), known, option="--train")
    result = holdout(df, family, train=train,
                     methods=split_list(args.methods), curves=args.plot is not None,
                     selection=args.selection, interval=interval_levels(args.interval),
                     workers=args.workers)
    out = result.to_dict()
    if args.plot:
        out["plot"] = str(save_figure(plot_holdout_trajectories(result, family), args.plot))
    return out


def _crossval(args) -> dict:
    _check_plot_path(args.plot)  # first: before JAX loads and any fit runs
    from ..evaluation.heldout import crossval
    from ..plotting import plot_method_errors, save_figure

    df = _load(args)
    families = match_families(split_list(args.families), table_families(df),
                              option="--families")
    result = crossval(df, families=families, methods=split_list(args.methods),
                      selection=args.selection, interval=interval_levels(args.interval),
                      workers=args.workers)
    out = result.to_dict()
    if args.plot and len(result.table):
        out["plot"] = str(save_figure(plot_method_errors(result.summary).figure, args.plot))
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
    if result.get("selections"):
        parts += ["", f"selected inside each training set ({result.get('selection', 'nested')}):"]
        parts += [f"  {s['family']} / {s['method']}: {s['best_params']} ({s['cv_kind']})"
                  for s in result["selections"]]
    if result.get("intervals"):
        parts += ["", "conformal intervals over every held-out point (coverage, mean width in "
                      "points, mean interval score)", format_table(result["intervals"], floatfmt=".3g")]
    ref = result["paper_reference"]["P1"]
    parts += ["", f"paper reference ({ref['split']}; their data): " +
              ", ".join(f"{k} {v}%" for k, v in ref["rel_mae_pct"].items())]
    if result.get("plot"):
        parts.append(f"figure: {result['plot']}")
    parts.append(f"time: {result['seconds']:.1f} s")
    return "\n".join(parts)
