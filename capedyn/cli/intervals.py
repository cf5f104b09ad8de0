"""``capedyn intervals``: held-out predictions with conformal intervals, scored as forecasts."""

from __future__ import annotations

import argparse

from ._common import add_family_option, interval_levels, match_families, table_families
from .entry import add_data_flag, add_json_flag, format_table, split_list


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "intervals", help="leave each family out; every method's predictions with conformal "
                          "intervals, scored by coverage, width and interval score",
        description="Leave each family out in turn (as crossval does) and give each method's "
                    "predictions of the family's models a conformal interval built only from "
                    "the training families (leave one training family out, relative "
                    "residuals by benchmark and size ratio, each family weighing one). "
                    "Reports per method the coverage and mean width (points) of each level's "
                    "intervals and the mean interval score. Methods run at their fixed "
                    "settings; the ensemble is included by default. Progress on stderr.")
    add_data_flag(p)
    add_family_option(p, dest="families", default=None,
                      help="hold out only these families (training uses every other family)")
    p.add_argument("--methods", metavar="M,...", default=None,
                   help="methods (default: every registered method, the ensemble included)")
    p.add_argument("--levels", metavar="L,...", default="0.5,0.9",
                   help="nominal coverage levels strictly between 0 and 1 (default 0.5,0.9)")
    p.add_argument("--finite-sample", choices=("calibrated", "guaranteed"), default="calibrated",
                   help="tail quantiles: 'calibrated' (default) aims at the nominal coverage; "
                        "'guaranteed' adds CV+'s (K+1)/K inflation for K training families, "
                        "which guarantees at least the nominal coverage and is wider")
    add_json_flag(p)
    p.set_defaults(handler=_intervals, human=_human)


def _intervals(args) -> dict:
    from ..data.tables import load_base_models
    from ..evaluation.intervals import interval_benchmark

    levels = interval_levels(args.levels, "--levels")
    df = load_base_models(args.data)
    families = match_families(split_list(args.families), table_families(df), option="--families")
    res = interval_benchmark(df, methods=split_list(args.methods), families=families,
                             levels=levels, finite_sample=args.finite_sample, progress=True)
    return res.to_dict()


def _human(result: dict) -> str:
    parts = [f"tail quantiles: {result['finite_sample']}",
             format_table(result["table"], floatfmt=".3g")]
    if result["weights"]:
        parts += ["", "ensemble weights per held-out family:",
                  format_table(result["weights"], floatfmt=".2f")]
    if result["failed"]:
        parts += ["", "failed:"] + [f"  {r['family']} / {r['method']}: {r['message']}"
                                    for r in result["failed"]]
    parts.append(f"time: {result['seconds']:.1f} s")
    return "\n".join(parts)
