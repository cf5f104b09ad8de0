"""``capedyn posterior``: NUTS posteriors over the critical scale Nc (see docs/nc.md).

Only stdlib and the CLI helpers are imported at module level; JAX/NumPyro/ArviZ load
inside the handler.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .entry import add_data_flag, add_json_flag, format_table, split_list
from .._json import to_jsonable
from ._common import add_family_option, match_families, table_families


def _defaults(key: str) -> str:
    """One sampler setting's defaults per model, read from the library (no copy to go stale)."""
    from ..inference.sampling import SAMPLER_DEFAULTS

    return ", ".join(f"{d[key]} {model}" for model, d in SAMPLER_DEFAULTS.items())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "posterior", help="Bayesian posterior of Nc per family and for the population (NumPyro)",
        description="Hierarchical posterior over the critical scale Nc (billions of "
                    "parameters) by NUTS. --model coupling (default, under a minute): the "
                    "running-coupling pairs γ12 ~ γ0_f·(log10 N − log10 Nc_f). --model ode "
                    "(minutes): the observed scores given the coupling-ODE solution, with the "
                    "fitted universal field held fixed. Reports the median and 68%/95% "
                    "intervals, R-hat, bulk ESS and divergences.")
    add_data_flag(p)
    add_family_option(p, dest="family", default=None,
                      help="report only these families (the fit still pools every family)")
    p.add_argument("--model", choices=("coupling", "ode"), default="coupling",
                   help="coupling (default) or ode")
    p.add_argument("--chains", type=int, default=None, metavar="N",
                   help=f"NUTS chains (default {_defaults('chains')})")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help=f"kept draws per chain (default {_defaults('samples')})")
    p.add_argument("--warmup", type=int, default=None, metavar="N",
                   help=f"adaptation draws per chain (default {_defaults('warmup')})")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--chain-method", choices=("vectorized", "parallel", "sequential"),
                   default="vectorized",
                   help="how chains share the CPU: vectorized (default: one program for all "
                        "chains), parallel (one XLA host device per chain), sequential")
    p.add_argument("--fit", metavar="DIR", default=None,
                   help="ODE model: saved coupling-ODE fit folder or shipped fit name "
                        "(default: the shipped all_families fit)")
    p.add_argument("--out", metavar="FILE.nc", default=None,
                   help="write the ArviZ InferenceData to this netCDF file")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="write a forest plot of Nc by family to this PNG file")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out or --plot file")
    p.add_argument("--no-progress", action="store_true", help="hide NumPyro's progress bar")
    p.add_argument("--family-gamma", action="store_true",
                   help="--model ode: give each family its own coupling strength gamma0_f "
                        "(log-normal across families) instead of the field's one value; "
                        "several times slower")
    p.add_argument("--exact-start", action="store_true",
                   help="--model ode: treat each family's smallest model as measured without "
                        "noise (default: its scores carry the same noise as the others)")
    p.add_argument("--implied-nc", action="store_true",
                   help="with --model ode: read the ODE-implied Nc (where dTQA/dHS on the "
                        "solved trajectory turns positive) off every posterior draw and set "
                        "it beside the coupling-level posterior (sampled too, unless "
                        "--coupling-posterior is given), with the agreement count")
    p.add_argument("--implied-definition", choices=("crossing", "linear"), default="crossing",
                   help="--implied-nc: crossing (default: first tax->bonus crossing of the "
                        "trajectory) or linear (the coupling-level law gamma12 = "
                        "gamma0*(log10 N - log10 Nc) fitted to the trajectory over the "
                        "family's sizes)")
    p.add_argument("--coupling-posterior", metavar="FILE.nc", default=None,
                   help="--implied-nc: a coupling-level posterior written by `capedyn "
                        "posterior --out` to compare with, instead of sampling one")
    add_json_flag(p)
    p.set_defaults(handler=_posterior, human=_posterior_human)


def _check_output(path: str | None, what: str, force: bool) -> None:
    """Fail before sampling (not after minutes of it) when an output cannot be written,
    or exists and ``force`` is off."""
    if path is None:
        return
    from .._io import check_output_file

    check_output_file(path, what, (".png",) if what == "--plot" else (), force=force,
                      new_folders=what != "--plot")


def _posterior(args) -> dict[str, Any]:
    if args.chains is not None and args.chains < 2:
        from .._errors import InputError

        raise InputError(f"--chains {args.chains}: the convergence check (R-hat) compares "
                         "chains, so it needs at least 2; pass --chains 2 or more")
    force = bool(getattr(args, "force", False))
    _check_output(args.out, "--out", force)  # first: before JAX/NumPyro load and sampling
    _check_output(args.plot, "--plot", force)
    from ..data.tables import load_base_models, select_families
    from ..inference.sampling import (
        PosteriorError, coupling_data, sample_posterior, trajectory_data,
    )

    if args.chain_method == "parallel":
        import numpyro

        from ..inference.sampling import SAMPLER_DEFAULTS

        chains = args.chains or SAMPLER_DEFAULTS[args.model]["chains"]
        numpyro.set_host_device_count(max(int(chains), 1))  # before JAX starts its backend
    implied = getattr(args, "implied_nc", False)
    cpost_file = getattr(args, "coupling_posterior", None)
    if implied and args.model != "ode":
        raise PosteriorError("--implied-nc reads the Nc off ODE trajectories: use it with "
                             "--model ode")
    family_gamma = bool(getattr(args, "family_gamma", False))
    exact_start = bool(getattr(args, "exact_start", False))
    ode_only = [f for f, on in (("--family-gamma", family_gamma),
                                ("--exact-start", exact_start)) if on]
    if ode_only and args.model != "ode":
        raise PosteriorError(f"{' and '.join(ode_only)} only apply to --model ode")
    if cpost_file and not implied:
        raise PosteriorError("--coupling-posterior is only used with --implied-nc")
    if cpost_file and not Path(cpost_file).is_file():
        raise PosteriorError(f"no coupling-level posterior file at '{cpost_file}'; write one "
                             "with `capedyn posterior --out FILE.nc`")
    cpost = _coupling_posterior_file(cpost_file) if cpost_file else None
    df = load_base_models(args.data)
    # Everything that can be refused is refused before minutes of sampling.
    data = coupling_data(df) if args.model == "coupling" else trajectory_data(df)
    wanted = match_families(split_list(args.family), table_families(df), option="--family")
    if wanted:
        select_families(df, wanted)  # unknown names: DataError listing the known ones
        missing = [f for f in wanted if f not in data.families]
        if missing:
            need = ("two models with HellaSwag and TruthfulQA whose HellaSwag differs by at "
                    "least 0.5 points" if args.model == "coupling"
                    else "two or more models with all five scores")
            raise PosteriorError(f"family {missing} has no data the {args.model} model can use "
                                 f"(it needs {need}); families it can report: "
                                 f"{', '.join(data.families)}")
    post = sample_posterior(data, model=args.model, chains=args.chains, samples=args.samples,
                            warmup=args.warmup, seed=args.seed, fit=args.fit,
                            chain_method=args.chain_method, progress=not args.no_progress,
                            **({"family_gamma": family_gamma, "noisy_start": not exact_start}
                               if args.model == "ode" else {}))
    result = post.to_dict(families=wanted)
    if implied:
        result["implied_nc"] = _implied(args, post, df, cpost)
    if args.out:
        result["out"] = str(post.to_netcdf(args.out, replace=force))
    if args.plot:
        from ..plotting import plot_nc_forest, save_figure

        figure = plot_nc_forest(post, families=wanted).figure
        result["plot"] = str(save_figure(figure, args.plot, replace=force))
    return to_jsonable(result)


def _coupling_posterior_file(path: str):
    """A coupling-level posterior read back from ``path`` (refused before any sampling)."""
    from ..inference.sampling import PosteriorError, load_posterior

    cpost = load_posterior(path)
    if cpost.model != "coupling":
        raise PosteriorError(f"{path} holds a {cpost.model}-level posterior; "
                             "--coupling-posterior needs one from --model coupling")
    return cpost


def _implied(args, post, df, cpost) -> dict[str, Any]:
    """The ODE-implied Nc of every draw of ``post`` beside the coupling-level posterior
    (``cpost``, or one sampled here with the default settings)."""
    from ..inference.implied_nc_agreement import implied_nc_agreement
    from ..inference.sampling import sample_posterior

    if cpost is None:
        cpost = sample_posterior(df, model="coupling", seed=args.seed,
                                 chain_method=args.chain_method,
                                 progress=not args.no_progress)
    agreement = implied_nc_agreement(post, cpost, definition=args.implied_definition)
    return agreement.to_dict()


def _interval(v) -> str:
    return "-" if not v else f"[{v[0]:.3g}, {v[1]:.3g}]"


def _posterior_human(r: dict[str, Any]) -> str:
    rows = []
    # the ODE-level model's Nc_f is a parameter of the ODE's field (docs/nc.md #5)
    median = "Nc_median_B" if r["model"] == "coupling" else "field_Nc_median_B"
    for f in r["families"] + [x for x in (r.get("population"), r.get("new_family")) if x]:
        rows.append({"family": f["family"], "n_obs": f["n_obs"], median: f["nc_median_b"],
                     "68%_B": _interval(f["nc_ci68_b"]), "95%_B": _interval(f["nc_ci95_b"]),
                     "rhat_max": f["rhat_max"], "ess_bulk_min": f["ess_bulk_min"]})
    cfg = r["config"]
    ref = r["paper_reference"]
    lines = [(f"Nc posterior ({r['model']} model; n_obs = usable γ12 pairs)"
              if r["model"] == "coupling" else
              f"posterior of the ODE's field parameter Nc_f ({r['model']} model; n_obs = "
              "scored models): a diagnostic of the ODE, not a measurement of a family's Nc "
              "(that is the default --model coupling)"),
             format_table(rows, floatfmt=".3g"), "",
             f"divergences: {r['divergences']} (per chain {r['divergences_per_chain']}); "
             + ("R-hat undefined (one chain)" if r["rhat_max"] is None else
              f"max R-hat {r['rhat_max']:.4f}") + f"; min bulk ESS {r['ess_bulk_min']:.0f}",
             f"NUTS: {cfg['chains']} chains x {cfg['samples']} draws after {cfg['warmup']} "
             f"warm-up, seed {cfg['seed']}, {r['runtime_s']:.1f} s",
             *([f"paper reference (bootstrap, Pythia + Llama-1/2): median "
                f"{ref['nc_median_b']}B, 68% {_interval(ref['nc_ci68_b'])}, 95% "
                f"{_interval(ref['nc_ci95_b'])}"] if r["model"] == "coupling" else [])]
    if r.get("implied_nc"):
        lines += ["", *_implied_human(r["implied_nc"])]
    lines += [f"note: {n}" for n in r.get("notes", [])]
    for key in ("out", "plot"):
        if r.get(key):
            lines.append(f"wrote {r[key]}")
    return "\n".join(lines)


def _bound(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def _implied_human(a: dict[str, Any]) -> list[str]:
    rows = [{"family": f["family"], "turns_in_data": "yes" if f["observed_turn"] else "",
             "coupling_B": _bound(f["coupling_median_b"]),
             "coupling_68%_B": f"[{_bound(f['coupling_ci68_lo_b'])}, {_bound(f['coupling_ci68_hi_b'])}]",
             "ODE_implied_B": _bound(f["implied_median_b"]),
             "implied_68%_B": f"[{_bound(f['implied_ci68_lo_b'])}, {_bound(f['implied_ci68_hi_b'])}]",
             "frac_cross": f["frac_cross"], "agree68": "yes" if f["agree68"] else "no"}
            for f in a["families"]]
    return [f"ODE-implied Nc ({a['definition']}) beside the coupling-level posterior "
            "(billions; 0 = below the scan, '-' = above it)",
            format_table(rows, floatfmt=".3g"),
            f"families whose running coupling turns inside their data: {a['n_agree']} of "
            f"{a['n_inside']} have the ODE-implied median inside the coupling 68% interval, "
            f"{a['n_agree95']} of {a['n_inside']} inside its 95% interval "
            f"(coupling median inside the data: {a['n_coupling_agree']} of "
            f"{a['n_coupling_inside']}; all families: {a['n_agree_all']} of {a['n_families']})"]
