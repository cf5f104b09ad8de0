"""``capedyn coupling``, ``capedyn nc`` and ``capedyn phase`` (definitions: docs/concepts.md).

Only stdlib and the CLI helpers are imported here; pandas/scipy/JAX load inside handlers.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from .entry import add_data_flag, add_json_flag, format_table, split_list
from .._json import to_jsonable
from .._errors import InputError
from ._common import (
    add_family_option, match_families, score_value, size_value, table_families,
)

_FAMILY_HELP = ("comma-separated family names; aliases: @web = every web-trained family "
                "(not Phi/Qwen/Gemma), @paper14 = Pythia,Llama-1,Llama-2 (the paper's 14 "
                "web-trained models); default: all families")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("coupling", help="running coupling γ12 per pair, population fit, sign test",
                       description="γ12 = ΔTQA/ΔHS for consecutive models of each family, the "
                                   "fit γ12 = A·log10 N + B with Nc = 10^(-B/A), each "
                                   "family's own least-squares line (γ0 and where it crosses "
                                   "zero, without an interval: a family's Nc with its "
                                   "interval is `capedyn posterior`), and the sign test "
                                   "(pairs below 3B should have γ12 ≤ 0, pairs above 10B "
                                   "γ12 > 0).")
    add_data_flag(p)
    add_family_option(p, dest="family", default=None, help=_FAMILY_HELP)
    p.add_argument("--min-delta-hs", type=float, default=0.5, metavar="POINTS",
                   help="skip pairs with |ΔHS| below this (default 0.5 points)")
    add_json_flag(p)
    p.set_defaults(handler=_coupling, human=_coupling_human)

    p = sub.add_parser("nc", help="bootstrap the critical scale Nc (billions)",
                       description="Bootstrap over usable γ12 pairs (resampled with "
                                   "replacement), weighted OLS per resample, Nc = 10^(-B/A); "
                                   "resamples with A <= 0 are dropped and counted.")
    add_data_flag(p)
    add_family_option(p, dest="families", default=None, help=_FAMILY_HELP)
    p.add_argument("--bootstrap", type=int, default=10_000, metavar="N",
                   help="number of resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--min-delta-hs", type=float, default=0.5, metavar="POINTS",
                   help="skip pairs with |ΔHS| below this (default 0.5 points)")
    add_json_flag(p)
    p.set_defaults(handler=_nc, human=_nc_human)

    p = sub.add_parser("phase", help="algebraic tax/bonus classifier TQA_c = sqrt(0.187·HS)",
                       description="Scores in percent. Bonus phase when TQA > TQA_c, tax "
                                   "otherwise. With --params-b, also the sign of γ12 that the "
                                   "population fit gives at that size.")
    p.add_argument("--hs", required=True, metavar="PCT", help="HellaSwag score, percent (0-100)")
    p.add_argument("--tqa", required=True, metavar="PCT",
                   help="TruthfulQA score, percent (0-100)")
    p.add_argument("--params-b", default=None, metavar="N",
                   help="model size in billions of parameters (optional)")
    add_data_flag(p)
    add_json_flag(p)
    p.set_defaults(handler=_phase, human=_phase_human)


# ----------------------------------------------------------------------------- helpers

def _pairs(args) -> tuple[Any, Any]:
    from ..coupling.running import running_coupling
    from ..data.tables import load_base_models

    df = load_base_models(args.data)
    return df, running_coupling(df, min_delta_hs=args.min_delta_hs)


def _family_names(names, df) -> list[str] | None:
    """Family names as the table spells them (case-insensitive, "did you mean" on a typo);
    the aliases @web and @paper14 pass through for :func:`resolve_families`."""
    return match_families(names, table_families(df), option="--family",
                          passthrough=("@web", "web", "@paper14", "paper14"))


def _records(frame) -> list[dict[str, Any]]:
    return [{k: to_jsonable(v) for k, v in r.items()} for r in frame.to_dict(orient="records")]


# ----------------------------------------------------------------------------- coupling

def _coupling(args) -> dict[str, Any]:
    from ..coupling.running import (
        PAPER_REFERENCE, CouplingError, family_couplings, population_fit, resolve_families, sign_test,
    )

    df, table = _pairs(args)
    fams = resolve_families(table, _family_names(split_list(args.family), df))
    if fams:
        from ..coupling.running import usable_pairs

        usable_pairs(table, fams)  # validates the names
        table = table[table["family"].isin(fams)].reset_index(drop=True)
    result: dict[str, Any] = {"A": None, "B": None, "r2": None, "nc_b": None, "n": 0}
    try:
        result.update(population_fit(table).to_dict())
    except CouplingError as exc:
        result["fit_note"] = str(exc)
    st = sign_test(table)
    result["sign_test"] = st.to_dict()
    result["pairs"] = _records(table)
    result["n_skipped"] = int(table["skipped"].sum())
    result["family_fits"] = _records(family_couplings(table))
    result["paper_reference"] = {k: PAPER_REFERENCE[k] for k in
                                 ("_note", "population_fit", "sign_test", "opt", "olmo_1b_7b")}
    return result


def _fmt(v: Any, spec: str = ".4g") -> str:
    return "n/a" if v is None else format(v, spec) if isinstance(v, float) else str(v)


def _coupling_human(r: dict[str, Any]) -> str:
    cols = ["family", "model_from", "model_to", "params_b_mid", "delta_hs", "delta_tqa",
            "gamma12", "reason"]
    rows = [{c: p[c] for c in cols} for p in r["pairs"]]
    for row in rows:
        row["gamma12"] = "skipped" if row["gamma12"] is None else round(row["gamma12"], 4)
    lines = [format_table(rows, cols), ""]
    if r.get("A") is None:
        lines.append(f"population fit: not available ({r.get('fit_note', '')})")
    else:
        ref = r["paper_reference"]["population_fit"]
        lines += [
            f"population fit (OLS, n={r['n']} pairs): γ12 = {r['A']:.4f}·log10 N "
            f"{r['B']:+.4f}, R² = {r['r2']:.3f}",
            f"  Nc = {_fmt(r['nc_b'])} B ({r['crossing']})",
            f"  robust (Theil–Sen): A = {r['robust_A']:.4f}, B = {r['robust_B']:+.4f}, "
            f"Nc = {_fmt(r['robust_nc_b'])} B",
            f"  paper: A = {ref['A']}, B = {ref['B']}, R² = {ref['r2']}, Nc ≈ {ref['nc_b']} B",
        ]
    st = r["sign_test"]
    lines.append(f"sign test (γ12 ≤ 0 below {st['below_b']:g}B, > 0 above {st['above_b']:g}B, "
                 f"geometric-mean size): {st['correct']}/{st['total']} correct")
    for v in st["violations"]:
        lines.append(f"  violates: {v['family']} {v['model_from']}→{v['model_to']} at "
                     f"{v['params_b_mid']:.3g}B, γ12 = {v['gamma12']:+.3f} (expected {v['expected']})")
    if r["family_fits"]:
        # the line's crossing is not the family's Nc (docs/nc.md #3 against #4): its own name
        rows = [{**f, "ls_crossing_b": f["nc_b"], "crossing_position": f["nc_position"]}
                for f in r["family_fits"]]
        lines += ["", "each family's own least-squares line γ12 = γ0·log10(N / N0); "
                      "ls_crossing_b = N0 in billions, without an interval",
                  format_table(rows, ["family", "n_pairs", "gamma0", "ls_crossing_b",
                                      "crossing_position"]),
                  "(a family's Nc with its 68%/95% interval: `capedyn posterior`, the "
                  "coupling-level posterior)"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- nc

def _nc(args) -> dict[str, Any]:
    from .._progress import Progress
    from ..coupling.running import PAPER_REFERENCE, resolve_families
    from ..coupling.nc_bootstrap import bootstrap_nc

    if args.bootstrap < 1:
        raise InputError(f"--bootstrap must be a positive integer, got {args.bootstrap}")
    df, table = _pairs(args)
    fams = resolve_families(table, _family_names(split_list(args.families), df))
    t0 = time.perf_counter()
    with Progress(args.bootstrap, "bootstrap Nc") as bar:  # shown on a terminal only
        res = bootstrap_nc(table, n_resamples=args.bootstrap, seed=args.seed, families=fams,
                           progress=lambda done, total: bar.update(done))
    out = res.to_dict()
    out["seconds_total"] = round(time.perf_counter() - t0, 3)  # incl. JAX start-up + compile
    out["paper_reference"] = PAPER_REFERENCE["nc_bootstrap_paper14"]
    return out


def _nc_human(r: dict[str, Any]) -> str:
    ref = r["paper_reference"]
    rows = [
        {"": "capedyn", "median_b": r["median_b"], "ci68_b": r["ci68_b"], "ci95_b": r["ci95_b"]},
        {"": "paper (Pythia, Llama-1, Llama-2)", "median_b": ref["median_b"],
         "ci68_b": list(ref["ci68_b"]), "ci95_b": list(ref["ci95_b"])},
    ]
    return "\n".join([
        f"Nc bootstrap over {r['n_pairs']} usable pairs of {', '.join(r['families'])}",
        f"resamples: {r['n_resamples']} (seed {r['seed']}), valid (A > 0): {r['n_valid']}, "
        f"dropped: {r['n_dropped']}; linear fit Nc = {_fmt(r['nc_b'])} B",
        format_table(rows, ["", "median_b", "ci68_b", "ci95_b"], floatfmt=".3g"),
    ])


# ----------------------------------------------------------------------------- phase

def _phase(args) -> dict[str, Any]:
    args.hs, args.tqa = score_value(args.hs, "--hs"), score_value(args.tqa, "--tqa")
    if args.params_b is not None:
        args.params_b = size_value(args.params_b, "--params-b")
    from ..coupling.running import CouplingError, population_fit
    from ..coupling.phase import phase_classifier

    from ..data.tables import check_percent_scores

    check_percent_scores({"--hs": args.hs, "--tqa": args.tqa})  # refuses fractions (0.78)
    res = phase_classifier(args.hs, args.tqa)
    out: dict[str, Any] = {
        "hs": args.hs, "tqa": args.tqa,
        "tqa_critical": res.tqa_critical, "tqa_critical_fraction": res.tqa_critical_fraction,
        "margin": res.margin, "phase": res.phase,
        "units": "scores and tqa_critical in percent; tqa_critical_fraction = tqa_critical/100",
    }
    if args.params_b is not None:
        if not (math.isfinite(args.params_b) and args.params_b > 0):
            raise InputError(f"--params-b {args.params_b:g} must be a positive size in billions")
        _, table = _pairs(argparse.Namespace(data=args.data, min_delta_hs=0.5))
        try:
            fit = population_fit(table)
        except CouplingError as exc:
            raise InputError(f"--params-b needs a population fit: {exc}") from None
        g = float(fit.predict(args.params_b))
        regime = "bonus" if g > 0 else "tax"
        out["population_fit"] = {"params_b": args.params_b, "gamma12": g, "regime": regime,
                                 "A": fit.A, "B": fit.B, "nc_b": to_jsonable(fit.nc_b),
                                 "agrees_with_classifier": regime == res.phase}
    return out


def _phase_human(r: dict[str, Any]) -> str:
    lines = [f"HS = {r['hs']:g}%, TQA = {r['tqa']:g}%: TQA_c = sqrt(0.187·HS) = "
             f"{r['tqa_critical']:.2f}% ({r['tqa_critical_fraction']:.4f}); "
             f"margin {r['margin']:+.2f} points → {r['phase']} phase"]
    pf = r.get("population_fit")
    if pf:
        lines.append(f"population fit at {pf['params_b']:g}B: γ12 = {pf['gamma12']:+.3f} → "
                     f"{pf['regime']} ({'agrees' if pf['agrees_with_classifier'] else 'disagrees'} "
                     f"with the classifier; Nc = {_fmt(pf['nc_b'])} B)")
    return "\n".join(lines)
