"""``capedyn hfield`` and ``capedyn saturation``: the frontier h-field (docs/concepts.md)."""

from __future__ import annotations

from typing import Any

from ._common import score_value
from .entry import add_json_flag, format_table
from .._errors import InputError


def register(sub) -> None:
    p = sub.add_parser(
        "hfield", help="h-field of a frontier model: GPQA minus the SWE->GPQA trend",
        description="Predicted GPQA Diamond from SWE-bench Verified on the population line "
                    "GPQA = a*SWE + b, the field h = GPQA - prediction and its reading "
                    "(h > 0 reasoning-rich, h < 0 coding-rich, |h| > 5 specialist). "
                    "With --table: every model's h and the per-lab summary.")
    p.add_argument("--swe", metavar="PCT", help="SWE-bench Verified score (percent)")
    p.add_argument("--gpqa", metavar="PCT", help="GPQA Diamond score (percent)")
    p.add_argument("--coefficients", choices=("fit", "paper"), default="fit",
                   help="'fit': refit the line on --data (default); 'paper': the paper's "
                        "frozen 0.513*SWE + 46.4")
    p.add_argument("--data", metavar="CSV", default=None,
                   help="frontier CSV (default: the table shipped with capedyn)")
    p.add_argument("--include-post-cutoff", action="store_true",
                   help="fit the line and the per-lab summary on post-cutoff rows too "
                        "(default: the frozen panel only)")
    p.add_argument("--table", action="store_true",
                   help="print every model's h and the per-lab summary")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="with --table: also write the SWE-GPQA figure to this PNG")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                   help="bootstrap resamples for the line's intervals (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    add_json_flag(p)
    p.set_defaults(handler=_hfield, human=_hfield_human)

    s = sub.add_parser(
        "saturation", help="is a benchmark spent? spread of the top models' scores",
        description="Spread (max - min) of the top-N scores of a numeric column; the "
                    "benchmark is spent when the spread is below the threshold "
                    "(default: the top five within 2 points). For a base-model score "
                    "column pass "
                    "the base CSV with --data.")
    s.add_argument("--data", metavar="CSV", default=None,
                   help="any CSV with the column (default: the shipped frontier table)")
    s.add_argument("--column", required=True, help="numeric column, e.g. swe_bench")
    s.add_argument("--top", type=int, default=5, help="number of leading models (default 5)")
    s.add_argument("--threshold", type=float, default=2.0,
                   help="spent when the spread is below this many points (default 2)")
    s.add_argument("--exclude-post-cutoff", action="store_true",
                   help="drop rows whose subset is post_cutoff first")
    add_json_flag(s)
    s.set_defaults(handler=_saturation, human=_saturation_human)


# --------------------------------------------------------------------------- hfield

def _line(args, df):
    from ..coupling import frontier as fr

    if args.coefficients == "paper":
        return fr.PAPER_COEFFICIENTS
    return fr.population_line(df, n_bootstrap=args.bootstrap, seed=args.seed,
                              include_post_cutoff=args.include_post_cutoff)


def _line_dict(line) -> dict[str, Any]:
    from ..coupling import frontier as fr

    if isinstance(line, fr.PopulationLine):
        return {"coefficients": "fit", **line.to_dict()}
    return {"coefficients": "paper", "slope": line["slope"], "intercept": line["intercept"],
            "label": line["label"]}


def _hfield(args) -> dict[str, Any]:
    for option in ("swe", "gpqa"):
        if getattr(args, option) is not None:
            setattr(args, option, score_value(getattr(args, option), f"--{option}"))
    from ..coupling import frontier as fr
    from ..data.tables import load_frontier_models

    if args.table and (args.swe is not None or args.gpqa is not None):
        raise InputError("use either --swe/--gpqa for one model or --table for the whole table")
    if not args.table:
        if args.plot:
            raise InputError("--plot needs --table")
        if args.swe is None or args.gpqa is None:
            missing = [f for f, v in (("--swe", args.swe), ("--gpqa", args.gpqa)) if v is None]
            raise InputError(f"missing {' and '.join(missing)}: give --swe PCT --gpqa PCT, "
                             "or --table for every model in the table")
        from ..data.tables import check_percent_scores

        check_percent_scores({"--swe": args.swe, "--gpqa": args.gpqa})  # refuses fractions
    if args.plot:
        from .._io import check_output_file

        check_output_file(args.plot, "--plot", (".png",), new_folders=False)  # before any work
    if args.bootstrap < 0:
        raise InputError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    needs_data = args.table or args.coefficients == "fit"
    df = load_frontier_models(args.data) if needs_data else None
    line = _line(args, df)
    a, b, _ = fr._coefficients(line)
    if not args.table:
        h = fr.h_field(args.swe, args.gpqa, a, b)
        return {"mode": "model", "swe": args.swe, "gpqa": args.gpqa,
                "predicted_gpqa": a * args.swe + b, "h": h, "slope": a, "intercept": b,
                "reading": fr.reading(h), "direction": fr.h_direction(h),
                "specialist": fr.is_specialist(h), "line": _line_dict(line)}
    result = {"mode": "table", "line": _line_dict(line),
              "models": fr.model_fields(df, line),
              "labs": fr.lab_summary(df, line, include_post_cutoff=args.include_post_cutoff),
              "plot": None}
    if args.plot:
        from ..plotting import new_figure, plot_frontier, save_figure

        fig = new_figure(figsize=(10, 6), dpi=120)
        plot_frontier(df, line, ax=fig.subplots())
        result["plot"] = str(save_figure(fig, args.plot))
    return result


def _line_text(line: dict[str, Any]) -> str:
    text = f"line: {line['label']}"
    if line["coefficients"] == "fit" and line["slope_ci"] is None:
        text += f"\n      r = {line['r']:+.4f}, n = {line['n']}; no bootstrap"
    elif line["coefficients"] == "fit":
        q = 100 * line["confidence"]
        text += (f"\n      r = {line['r']:+.4f}, n = {line['n']}; {q:.0f}% bootstrap "
                 f"(n={line['n_bootstrap']}): slope [{line['slope_ci'][0]:.3f}, "
                 f"{line['slope_ci'][1]:.3f}], intercept [{line['intercept_ci'][0]:.2f}, "
                 f"{line['intercept_ci'][1]:.2f}]")
    return text


def _hfield_human(r: dict[str, Any]) -> str:
    if r["mode"] == "model":
        return "\n".join([
            _line_text(r["line"]),
            f"SWE {r['swe']:g}  ->  predicted GPQA {r['predicted_gpqa']:.1f}",
            f"GPQA {r['gpqa']:g}  ->  h = {r['h']:+.1f}",
            f"reading: {r['reading']}",
        ])
    models = [{"model": m["model"], "lab": m["lab"], "release": m["release"],
               "subset": m["subset"], "swe": m["swe_bench"], "gpqa": m["gpqa_diamond"],
               "pred": m["predicted_gpqa"], "h": m["h"],
               "reading": m["direction"] + (" (specialist)" if m["specialist"] else "")}
              for m in r["models"]]
    labs = [{"lab": e["lab"], "n": e["n"], "n_core": e["n_core"], "mean_h": e["mean_h"],
             "mean_h_core": e["mean_h_core"], "std_h": e["std_h"], "slope": e["slope"],
             "intercept": e["intercept"], "note": e["note"]} for e in r["labs"]]
    scope = "all rows" if r["line"].get("include_post_cutoff") else "frozen rows"
    parts = [_line_text(r["line"]), "", "models (h = GPQA - predicted, points):",
             format_table(models, floatfmt=".1f"), "",
             f"per lab ({scope}; slope only for labs with >= 3 models):",
             format_table(labs, floatfmt=".2f")]
    if r["plot"]:
        parts += ["", f"figure: {r['plot']}"]
    return "\n".join(parts)


# --------------------------------------------------------------------------- saturation

def _load_any(path):
    """The shipped frontier table, or any CSV: typed with the base/frontier validator when
    its header matches one, otherwise read as-is (the column is checked by saturation)."""
    from ..data.tables import (
        BASE_REQUIRED, FRONTIER_REQUIRED, _parse_table, _read_text, load_frontier_models, validate_base_models, validate_frontier_models,
    )

    if path is None:
        df = load_frontier_models()
        df.attrs["label"] = "<capedyn>/benchmarks_data/frontier_models.csv"
        return df
    text, label = _read_text(path, "frontier_models.csv")
    raw = _parse_table(text, label)
    if all(c in raw.columns for c in BASE_REQUIRED):
        df = validate_base_models(raw, label)
    elif all(c in raw.columns for c in FRONTIER_REQUIRED):
        df = validate_frontier_models(raw, label)
    else:
        df = raw
    df.attrs["label"] = label
    return df


def _saturation(args) -> dict[str, Any]:
    from ..coupling import frontier as fr

    df = _load_any(args.data)
    if args.exclude_post_cutoff and "subset" in df.columns:
        label = df.attrs.get("label")
        df = df[df["subset"].astype(str).str.strip().str.lower() != fr.POST_CUTOFF]
        df = df.reset_index(drop=True)
        df.attrs["label"] = label
    return fr.saturation(df, args.column, top=args.top, threshold=args.threshold)


def _saturation_human(r: dict[str, Any]) -> str:
    verdict = "SPENT" if r["spent"] else "not spent"
    head = (f"{r['column']}: top {r['top']} of {r['n']} span {r['spread']:.2f} points -> "
            f"{verdict} (threshold {r['threshold']:g})")
    return head + "\n" + format_table(r["leaders"], floatfmt=".1f")
