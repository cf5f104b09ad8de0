"""``capedyn family``: a family of your own → its coupling-level posterior Nc interval (the
shipped families as the population prior) and its scores at the next sizes."""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import InputError
from .entry import add_json_flag, format_table, split_list
from ._common import add_family_option, size_value


def _default(key: str):
    from ..inference.new_family import FAMILY_SAMPLER

    return FAMILY_SAMPLER[key]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "family", help="a family of your own: its posterior Nc interval and next sizes",
        description="Read a base-model table of one new family (e.g. written by `capedyn "
                    "ingest --out`; extra columns are ignored), pool it with the shipped "
                    "families in the hierarchical running-coupling posterior (NumPyro NUTS) "
                    "and print the family's critical scale Nc in billions of parameters: "
                    "median, 68% and 95% intervals, R-hat, bulk ESS and divergences, flagged "
                    "NOT CONVERGED when an R-hat exceeds 1.01 or any transition diverged. "
                    "Then the family's five scores at the next sizes from the shipped "
                    "coupling ODE (point predictions). With the default sampler the command took "
                    "2 min 48 s on 2 cores (7.5 min when they were heavily shared); --quick "
                    "for a short check.")
    p.add_argument("data", metavar="CSV", help="the family's base-model table (percent "
                   "scores, params_b in billions)")
    add_family_option(p, dest="family", metavar="NAME", default=None,
                      help="the family to analyse when the table holds several")
    p.add_argument("--sizes", metavar="B,B", default=None,
                   help="next sizes to predict, billions (default 2x and 4x the largest model)")
    p.add_argument("--chains", type=int, default=None, metavar="N",
                   help=f"NUTS chains (default {_default('chains')})")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help=f"kept draws per chain (default {_default('samples')})")
    p.add_argument("--warmup", type=int, default=None, metavar="N",
                   help=f"adaptation draws per chain (default {_default('warmup')})")
    p.add_argument("--target-accept", type=float, default=None, metavar="P",
                   help=f"NUTS target acceptance (default {_default('target_accept')})")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--quick", action="store_true",
                   help="2 chains x 500 draws (+500 warm-up): a smoke test, not a result")
    p.add_argument("--no-predict", action="store_true", help="skip the next-size predictions")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_json_flag(p)
    p.set_defaults(handler=_family, human=_family_human)


def _sizes(text: str | None) -> list[float] | None:
    parts = split_list(text)
    if text is not None and not parts:
        raise InputError("--sizes needs at least one size in billions, e.g. 6.9,12")
    if parts is None:
        return None
    return [size_value(t, "--sizes") for t in parts]


def _family(args) -> dict[str, Any]:
    sizes = _sizes(args.sizes)
    from ..inference.new_family import family_nc

    nuts: dict[str, Any] = {"chains": args.chains, "samples": args.samples,
                            "warmup": args.warmup, "target_accept": args.target_accept}
    if args.quick:
        nuts = {k: (v if v is not None else q) for (k, v), q in
                zip(nuts.items(), (2, 500, 500, None))}
    res = family_nc(args.data, args.family, sizes=sizes, seed=args.seed,
                    predict=not args.no_predict, progress=not args.no_progress, **nuts)
    out = res.to_dict()
    out["quick"] = bool(args.quick)
    return out


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _family_human(r: dict[str, Any]) -> str:
    nc = r["nc_b"]
    lines = []
    if r["quick"]:
        lines.append("QUICK RUN (--quick): short chains, a smoke test; rerun without it")
    lines += [
        f"family {r['family']}: {r['n_models']} models, {r['n_pairs']} usable γ12 pair(s); "
        f"population prior from the {len(r['prior_families'])} shipped families with a "
        "usable pair",
        f"Nc (coupling-level posterior) median {_fmt(nc['median'])}B, "
        f"68% [{_fmt(nc['ci68'][0])}, {_fmt(nc['ci68'][1])}]B, "
        f"95% [{_fmt(nc['ci95'][0])}, {_fmt(nc['ci95'][1])}]B",
        f"convergence: R-hat {r['family_rhat_max']:.3f} ({r['family']}), "
        f"{r['rhat_max']:.3f} (largest in the run); bulk ESS {r['family_ess_bulk_min']:.0f} "
        f"({r['family']}); {r['divergences']} divergences — "
        + ("converged" if r["converged"] else "NOT CONVERGED"),
    ]
    lines += r["warnings"]
    pairs = [{"pair": f"{p['model_from']} → {p['model_to']}",
              "N_mid_B": p.get("params_b_mid"), "gamma12": p.get("gamma12"),
              "note": p.get("reason") or ""} for p in r["pairs"]]
    lines += ["", format_table(pairs, floatfmt=".3g")]
    if r["predictions"]:
        s = r["start"]
        lines += ["", f"predicted from {s['model']} ({s['params_b']:.3g}B), shipped coupling "
                      "ODE with the family's fitted sources (point predictions, no interval):",
                  format_table([{"params_b": p["params_b"], **{k: v for k, v in p.items()
                                                                 if k != "params_b"}}
                                for p in r["predictions"]], floatfmt=".2f")]
    lines += [f"note: {n}" for n in r["notes"]]
    lines.append(f"({r['runtime_s']:.0f} s)")
    return "\n".join(lines)
