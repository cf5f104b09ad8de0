"""``capedyn fit`` and ``capedyn predict``: fit the coupling ODE, save it, predict from it."""

from __future__ import annotations

import math
from typing import Any

from .entry import add_data_flag, add_json_flag, format_table, split_list
from .._errors import CapedynError, InputError
from .._text import is_number_text
from ._common import (add_family_option, interval_levels, match_families, match_name,
                      size_value, table_families)

SCORE_ORDER = ("hellaswag", "truthfulqa", "arc", "winogrande", "mmlu")


def register(sub) -> None:
    p = sub.add_parser("fit", help="fit the coupling ODE end to end and save it",
                       description="Fit the coupling ODE (universal field + running coupling + "
                                   "family sources) on every family with ≥ 2 complete models "
                                   "and save it as a folder with model.eqx and meta.json.")
    add_data_flag(p)
    add_family_option(p, dest="families", default=None,
                      help="comma-separated families to fit on (default: all with ≥ 2 "
                           "complete models)")
    p.add_argument("--optimizer", choices=("lm", "adam"), default=None,
                   help="lm: Levenberg–Marquardt with exact Jacobians (default); "
                        "adam: Optax Adam")
    p.add_argument("--steps", type=int, default=None,
                   help="iteration cap of the optimiser (default: the estimator's; LM stops "
                        "earlier at its tolerance)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial coefficient jitter")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder, e.g. fits/NAME; checked before the fit: an existing "
                        "file, an unwritable place or a folder already holding a fit is "
                        "refused at once")
    p.add_argument("--force", action="store_true",
                   help="replace the fit already saved in --out")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    add_json_flag(p)
    p.set_defaults(handler=_fit, human=_fit_human)

    q = sub.add_parser("predict", help="predict a family's scores at larger sizes from one model",
                       description="Integrate a saved coupling ODE from one initial model "
                                   "(a model of the table, or five scores and a size) and "
                                   "print the five scores at the requested sizes.")
    q.add_argument("--fit", required=True, metavar="DIR",
                   help="saved fit folder (or a shipped fit name: all_families, pythia)")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--initial", metavar="MODEL", help="initial model by name (from --data)")
    src.add_argument("--scores", metavar="HS,TQA,ARC,WG,MMLU",
                     help="five initial scores in percent, in this order")
    q.add_argument("--params-b", default=None, metavar="B",
                   help="size of the --scores model in billions of parameters")
    add_family_option(q, dest="family", metavar="F", default=None,
                      help="use this fitted family's field parameters (Nc, h) instead of "
                           "the transfer rule")
    q.add_argument("--sizes", required=True, metavar="B,B",
                   help="comma-separated sizes to predict, billions of parameters (e.g. 13,70)")
    q.add_argument("--interval", metavar="L[,L...]", default=None,
                   help="add conformal bounds at these nominal levels (e.g. 0.9 or 0.5,0.9): "
                        "each fitted family with >= 3 complete models of --data is left out in "
                        "turn and the fit's settings refitted without it (one full coupling-ODE "
                        "fit per family: about 5 minutes for the shipped all_families fit, "
                        "11 families, on two shared cores; progress on stderr); the bounds "
                        "come from those fits' relative errors on the family they did not see")
    add_data_flag(q)
    add_json_flag(q)
    q.set_defaults(handler=_predict, human=_predict_human)


def _fit(args) -> dict[str, Any]:
    from .._publish import destination_lock
    from ..models._fitfile import check_fit_destination

    check_fit_destination(args.out, force=args.force, what="--out")  # before the fit
    with destination_lock(args.out):  # held through the fit: a second run fails at once
        return _fit_locked(args)


def _fit_locked(args) -> dict[str, Any]:
    from ..data.tables import load_base_models, select_families
    from ..models.coupling_ode import CouplingODE

    df = load_base_models(args.data)
    df = select_families(df, match_families(split_list(args.families), table_families(df),
                                            option="--families"))
    config: dict[str, Any] = {"seed": args.seed, "progress": not args.quiet}
    if args.steps is not None:
        if args.steps < 1:
            raise InputError(f"--steps must be a positive integer, got {args.steps}")
        config["steps"] = args.steps
    if getattr(args, "optimizer", None):
        config["optimizer"] = args.optimizer
    est = CouplingODE(**config).fit(df)
    est.metrics_ = est.error_summary(df)
    path = est.save(args.out, data_path=args.data, force=args.force)
    return {"out": str(path), "families": list(est.families_), "loss": est.loss_,
            "mse_points2": est.mse_, "metrics": est.metrics_,
            "population": est.meta_["population"],
            "family_params": [{"family": f["name"], "start": f["model"], "nc_b": f["nc_b"],
                               "h": f["h"]} for f in est.meta_["families"]]}


def _fit_human(r: dict[str, Any]) -> str:
    rows = [{"benchmark": b, "rel_error_%": v["rel_error_pct"], "mae": v["mae"]}
            for b, v in r["metrics"]["per_benchmark"].items()]
    fams = [{"family": f["family"], "start": f["start"], "field_Nc_B": f["nc_b"]}
            for f in r["family_params"]]
    return (f"saved {r['out']} ({len(r['families'])} families)\n"
            f"in-sample mean relative error {r['metrics']['mean_rel_error_pct']:.2f}%, "
            f"relative MAE {r['metrics']['rel_mae_pct']:.2f}%\n\n"
            + format_table(rows) + "\n\n" + format_table(fams)
            + "\nfield_Nc_B: each family's Nc parameter of the ODE's field, shrunk towards the "
              "population value; not a measurement of the family's Nc (that is `capedyn "
              "posterior`)")


def _parse_scores(text: str) -> list[float]:
    parts = [t.strip() for t in text.split(",")]
    if len(parts) != 5 or any(p == "" for p in parts):
        raise InputError(f"--scores needs exactly five comma-separated numbers "
                         f"(HS,TQA,ARC,WG,MMLU in percent); got {len(parts)} in '{text}'")
    values = []
    for name, p in zip(("HS", "TQA", "ARC", "WG", "MMLU"), parts):
        if not is_number_text(p):  # plain decimals only (float() also takes 1_000)
            raise InputError(f"--scores: {name} value '{p}' is not a number")
        v = float(p)
        if not (math.isfinite(v) and 0.0 <= v <= 100.0):
            raise InputError(f"--scores: {name} = {p} is outside 0-100 (scores are percent)")
        values.append(v)
    from ..data import check_percent_scores
    from .._units import fraction_among_percent

    check_percent_scores({"--scores": values})  # all five at most 1: fractions
    k = fraction_among_percent(values)
    if k is not None:
        raise InputError(f"--scores: {('HS', 'TQA', 'ARC', 'WG', 'MMLU')[k]} = {parts[k]} is at "
                         f"most 1 among scores in percent; give it in percent "
                         f"({100 * values[k]:g})")
    return values


def _parse_sizes(text: str) -> list[float]:
    parts = split_list(text) or []
    if not parts:
        raise InputError("--sizes needs at least one size in billions, e.g. 13,70")
    return [size_value(p, "--sizes") for p in parts]


def _initial_model(name: str, data) -> dict[str, Any]:
    from ..data.tables import load_base_models

    df = load_base_models(data)
    model = match_name(name, list(df["model"]), what="model", option="--initial")
    row = df[df["model"] == model].iloc[0]
    missing = [b for b in SCORE_ORDER if math.isnan(row[b])]
    if missing:
        raise CapedynError(f"--initial: {row['model']} lacks {missing}; the ODE needs all five "
                           "scores — pass them with --scores and --params-b")
    return {"model": row["model"], "family": row["family"], "params_b": float(row["params_b"]),
            **{b: float(row[b]) for b in SCORE_ORDER}}


def _predict(args) -> dict[str, Any]:
    from ..models.persistence import load_fit

    sizes = _parse_sizes(args.sizes)
    if args.initial is not None:
        if args.params_b is not None:
            raise InputError("--params-b goes with --scores; --initial takes the size from the table")
        initial = _initial_model(args.initial, args.data)
    else:
        scores = _parse_scores(args.scores)
        if args.params_b is None:
            raise InputError("--scores needs --params-b (the model's size in billions)")
        initial = {"model": "(given scores)", "params_b": size_value(args.params_b, "--params-b"),
                   **dict(zip(SCORE_ORDER, scores))}
    levels = interval_levels(args.interval) or ()
    if levels and args.family is not None:
        raise InputError("--interval bounds a prediction for a family the fit did not see; "
                         "it does not apply with --family (a fitted family's parameters)")
    est = load_fit(args.fit)
    family = None
    if args.family is not None:
        family = match_name(args.family, list(est.families_), what="fitted family",
                            option="--family")
    notes = _calibrate(est, args.data, initial, levels) if levels else []
    pred = est.predict(initial, sizes, family=family, interval=levels or None)
    from ..models._extrapolation import check_prediction

    checks = check_prediction(getattr(est, "training_range_", None),
                              [initial[b] for b in SCORE_ORDER], initial["params_b"], sizes)
    rows = [{k: float(v) for k, v in row.items()} for row in pred.to_dict("records")]
    far = set(checks["sizes_outside"])
    for row in rows:  # every row is an extrapolation when the start already is one
        row["extrapolated"] = bool(checks["start_outside"]) or row["params_b"] in far
    return {"fit": str(args.fit), "initial": initial,
            "family_params": "fitted:" + family if family else "transfer rule",
            "predictions": rows, "clipped": checks["clipped"],
            "start_outside_training": checks["start_outside"],
            "training_range": checks["training_range"], "notes": checks["notes"] + notes,
            "interval_levels": list(levels), **_calibration_record(est)}


def _calibrate(est, data, initial: dict, levels: tuple[float, ...]) -> list[str]:
    """Calibrate the saved fit's conformal intervals on its training families of ``data``."""
    from ..data.tables import load_base_models
    from ..evaluation.conformal import conformalize

    df = load_base_models(data)
    fams = list(est.families_)
    missing = [f for f in fams if f not in set(df["family"])]
    if missing:
        raise InputError(f"--interval: the fit's families {missing} are not in the data table; "
                         "pass the table it was fitted on with --data")
    if "progress" in est.get_params(deep=False):
        est.set_params(progress=False)  # one bar for the calibration, none per refit
    conformalize(est, df[df["family"].isin(fams)].reset_index(drop=True), fit=False,
                 progress=True)
    from .._conformal import extreme_level

    notes = []
    k, mode = est.conformal_.n_folds, est.conformal_.finite_sample
    capped = [lv for lv in levels if lv >= extreme_level(k, mode) - 1e-12]
    if capped:
        notes.append(f"with {k} training families to calibrate on, the intervals at "
                     f"{', '.join(f'{100 * lv:g}%' for lv in capped)} can span the extreme fold "
                     f"predictions (levels from {100 * extreme_level(k, mode):.0f}% up reach the "
                     "last family's residuals); more families give sharper intervals")
    fam = initial.get("family")
    if fam in fams:
        notes.append(f"{fam} is one of the fit's training families: the interval is calibrated "
                     "for a family the fit has not seen, so it is wider than this family's "
                     "in-sample error")
    return notes


def _calibration_record(est) -> dict[str, Any]:
    cal = getattr(est, "conformal_", None)
    if cal is None:
        return {}
    return {"calibration": {"folds": [f.family for f in cal.folds], "scale": cal.scale,
                            "finite_sample": cal.finite_sample, "seconds": float(cal.seconds)}}


def _predict_human(r: dict[str, Any]) -> str:
    init = r["initial"]
    head = (f"from {init['model']} ({init['params_b']:g}B) with {r['fit']} "
            f"(family parameters: {r['family_params']})")
    levels = r.get("interval_levels") or []
    rows = [{**(_with_bounds(row, levels) if levels else row),
             "extrapolated": "yes" if row["extrapolated"] else ""} for row in r["predictions"]]
    notes = [f"note: {n}" for n in r.get("notes", [])]
    if levels:
        cal = r["calibration"]
        notes.insert(0, f"[lo, hi]: conformal interval{'s' if len(levels) > 1 else ''} at "
                        f"{', '.join(f'{100 * lv:g}%' for lv in levels)} from leave-one-family-out "
                        f"residuals over {len(cal['folds'])} training families "
                        f"(calibration {cal['seconds']:.0f} s)")
    return "\n".join([head, format_table(rows, floatfmt=".2f"), *notes])


def _with_bounds(row: dict[str, Any], levels: list[float]) -> dict[str, Any]:
    """A prediction row with each score shown as "point [lo, hi]" per level (points)."""
    from .._conformal import level_tag

    out = {"params_b": row["params_b"]}
    for b in SCORE_ORDER:
        spans = " ".join(f"[{row[f'{b}_lo_{level_tag(lv)}']:.1f}, {row[f'{b}_hi_{level_tag(lv)}']:.1f}]"
                         for lv in levels)
        out[b] = f"{row[b]:.2f} {spans}"
    return out
