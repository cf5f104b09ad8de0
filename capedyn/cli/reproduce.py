"""``capedyn reproduce`` (the whole analysis, report and figures) and ``capedyn bench``."""

from __future__ import annotations

from typing import Any

from .entry import add_json_flag, format_table
from ._common import add_family_option, match_families, table_families


def register(sub) -> None:
    p = sub.add_parser(
        "reproduce", help="run the whole analysis and write a report with figures",
        description="Run every stage (data validation, running coupling and Nc bootstrap, "
                    "coupling-ODE fits, posteriors, SINDy and the held-out benchmark, the "
                    "frontier h-field) on the shipped data and write report.md, report.html "
                    "(self-contained), figures/*.png and summary.json into --out. Progress "
                    "and elapsed time per stage go to stderr.")
    p.add_argument("--out", metavar="DIR", default="reproduce_out",
                   help="output folder (default: reproduce_out). Checked before any work; "
                        "the run is built in a temporary folder beside it and moved into "
                        "place when complete, so it never mixes two runs")
    p.add_argument("--force", action="store_true",
                   help="replace a previous run in --out (without it, a folder that already "
                        "holds a run is refused before any work)")
    p.add_argument("--quick", action="store_true",
                   help="short fits and few samples (a smoke test, well under two minutes); "
                        "the report says so at the top")
    p.add_argument("--seed", type=int, default=0, help="seed of every random step (default 0)")
    p.add_argument("--table", choices=("measured", "paper"), default="measured",
                   help="shipped base-model table every stage uses: measured (default; "
                        "Pythia's two training runs as two families, measured scores only) or "
                        "paper (the authors' table, whose Pythia mixes both runs and two "
                        "partly estimated rows); the report says which")
    add_json_flag(p)
    p.set_defaults(handler=_reproduce, human=_reproduce_human)

    b = sub.add_parser(
        "bench", help="time the JAX fit against SciPy, and NUTS effective samples per second",
        description="On one data set and one model (the coupling ODE on four families by "
                    "default): capedyn's "
                    "JAX/Optax fit and a JAX Levenberg-Marquardt fit against a SciPy "
                    "implementation of the same model (solve_ivp + least_squares; the same "
                    "parameterisation, loss and starting point), then NUTS effective samples "
                    "per second. Prints wall times, final losses and the speed ratio at equal "
                    "loss. Takes several minutes (the SciPy fit dominates).")
    b.add_argument("--quick", action="store_true", help="smaller budgets (a smoke test)")
    add_family_option(b, dest="families", default=None,
                      help="families of the benchmarked fit (default Pythia,OPT,Cerebras-GPT,"
                           "BLOOM; 'all' = every family with two complete models)")
    b.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    b.add_argument("--stages", default="fit", metavar="NAMES",
                   help="stages timed cold (new process, empty compilation cache), warm "
                        "(again in that process) and cached (new process, cache filled): "
                        "compile and run seconds, number of compilations (default: fit, "
                        "the default coupling-ODE fit; nested / nested_batched: coupling_ode's "
                        "nested crossval on a five-family subset, inner fits looped / batched; "
                        "posterior / posterior_ode: the coupling- / ODE-level posterior at "
                        "its defaults, on the devices `capedyn posterior` uses; 'none' skips)")
    b.add_argument("--stages-only", action="store_true",
                   help="only the per-stage timings (skip the SciPy and NUTS benchmarks)")
    add_json_flag(b)
    b.set_defaults(handler=_bench, human=_bench_human)


def _reproduce(args) -> dict[str, Any]:
    from ..report import reproduce

    summary = reproduce(args.out, quick=args.quick, seed=args.seed, progress=True,
                        force=args.force, table=args.table)
    summary["out"] = str(args.out)
    return summary


def _fmt(v: Any) -> Any:
    return round(v, 3) if isinstance(v, float) else v


def _reproduce_human(r: dict[str, Any]) -> str:
    lines = []
    if r.get("quick"):
        lines.append("QUICK RUN: short fits and few samples; numbers are a smoke test only.")
    ci = r.get("nc_ci95_b") or [None, None]
    head = [
        {"quantity": "Nc median (B), Pythia+Llama-1+Llama-2 bootstrap", "value": _fmt(r.get("nc_b"))},
        {"quantity": "Nc 95% interval (B)", "value": f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"},
        {"quantity": "frontier slope a (GPQA per SWE point)", "value": _fmt(r.get("frontier_slope"))},
        {"quantity": "frontier intercept b (GPQA points)", "value": _fmt(r.get("frontier_intercept"))},
    ]
    lines += [f"base-model table: {r.get('table', 'measured')}", format_table(head), ""]
    p1 = r.get("llama2_rel_mae_pct") or {}
    p2 = r.get("lofo_mean_rel_mae_pct") or {}
    rows = [{"method": m, "P1 Llama-2 rel MAE %": _fmt(p1.get(m)),
             "P2 mean rel MAE %": _fmt(p2.get(m))} for m in dict.fromkeys([*p1, *p2])]
    lines += [format_table(rows), ""]
    t = r.get("timings_s", {})
    lines.append("seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    lines.append(f"wrote {r.get('out')}/: " + ", ".join(r.get("files", [])))
    return "\n".join(lines)


def _bench(args) -> dict[str, Any]:
    from ..evaluation.bench import run_bench

    from .entry import split_list
    from ..data.tables import load_base_models, select_families

    names = split_list(args.families)
    if names and [n.lower() for n in names] != ["all"]:
        df = load_base_models()  # unknown names: a clear error before any work
        names = match_families(names, table_families(df), option="--families")
        select_families(df, names)
    stages = [] if (args.stages or "").strip().lower() == "none" else split_list(args.stages)
    if stages:
        from ..evaluation.bench_stages import check_stages

        check_stages(stages)  # an unknown name: a clear error before any work
    out = ({} if args.stages_only else
           run_bench(quick=args.quick, seed=args.seed, progress=True, families=names))
    if stages:
        from ..evaluation.bench_stages import stage_timings

        out["stage_timings"] = stage_timings(stages)
    return out


def _bench_human(r: dict[str, Any]) -> str:
    from ..evaluation.bench import format_bench
    from ..evaluation.bench_stages import format_stage_timings

    parts = [format_bench(r)] if "fit" in r else []
    if "stage_timings" in r:
        parts.append(format_stage_timings(r["stage_timings"]))
    return "\n\n".join(parts)
