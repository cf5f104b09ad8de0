"""From a folder of lm-evaluation-harness result files to a family's critical scale Nc.

1. ``cd.read_lm_eval`` reads every ``results*.json`` below the folder (here three sizes of
   an invented family, "Acme", in the harness's v0.4 layout; point it at your own
   ``--output_path``) into a validated table: percent scores, sizes from the files.
2. ``CouplingODE.fit_family`` fits the family's Nc and source h on the shipped coupling-ODE
   fit (``cd.load_fit("all_families")``; the population field stays fixed).
3. ``posterior_family`` gives the family's Nc a posterior interval: the running-coupling
   posterior of the shipped families is the prior, the family's own γ12 pairs the data.
4. ``CouplingODE.predict`` integrates the ODE from the largest model to the next sizes.

    python examples/from_lm_eval.py [FOLDER] [--family NAME] [--sizes 6.9,12] [--quick]

The same table on the command line:
``capedyn ingest examples/data/acme_lm_eval --family Acme --out acme.csv``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import capedyn as cd
from capedyn.inference.sampling import posterior_family, sample_posterior

DATA = Path(__file__).resolve().parent / "data" / "acme_lm_eval"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(DATA),
                    help="folder of lm-eval result files (default: the bundled Acme family)")
    ap.add_argument("--family", default="Acme", help="name of the family (default Acme)")
    ap.add_argument("--params-b", default=None, metavar="N,N",
                    help="sizes in billions, one per model, if the files record none")
    ap.add_argument("--sizes", default="6.9,12", metavar="B,B",
                    help="next sizes to predict, billions of parameters (default 6.9,12)")
    ap.add_argument("--quick", action="store_true",
                    help="short family fit and 2 NUTS chains x 300 draws")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sizes = [float(s) for s in args.sizes.split(",")]
    params = [float(s) for s in args.params_b.split(",")] if args.params_b else None

    # 1. result files -> table (percent, billions)
    table = cd.read_lm_eval(args.folder, family=args.family, params_b=params)
    print(table[["model", "params_b", *cd.BENCHMARKS, "flags"]].to_string(index=False))

    # 2. the family's Nc and h on the shipped fit
    model = cd.load_fit("all_families")
    fam = model.fit_family(table, args.family, steps=100 if args.quick else 300)
    print(f"\ncoupling ODE (shipped fit, field fixed): Nc({args.family}) = "
          f"{fam.critical_scale_b:.3g}B, population Nc {10 ** (model.mu_nc_ - 9):.3g}B")

    # 3. posterior interval of Nc, the shipped families' posterior as the prior
    nuts = (dict(chains=2, samples=300, warmup=300) if args.quick
            else dict(chains=4, samples=2000, warmup=1000))
    population = sample_posterior(cd.load_base_models(), model="coupling", seed=0,
                                  progress=False, **nuts)
    new = posterior_family(population, table, args.family, seed=1, **nuts)
    row = new.row(args.family)
    print(f"posterior: Nc({args.family}) median {row['nc_median_b']:.3g}B, "
          f"68% [{row['nc_ci68_lo_b']:.3g}, {row['nc_ci68_hi_b']:.3g}]B, "
          f"95% [{row['nc_ci95_lo_b']:.3g}, {row['nc_ci95_hi_b']:.3g}]B "
          f"(R-hat {row['rhat_max']:.3f}, {new.divergences} divergences)")

    # 4. the next sizes, from the largest complete model
    start = cd.complete_models(table).iloc[-1]
    pred = model.predict(start, sizes, family=args.family)
    print(f"\npredicted from {start['model']} ({start['params_b']:.3g}B):")
    print(pred.round(2).to_string(index=False))
    seconds = time.perf_counter() - t0
    print(f"\nwall time {seconds:.1f} s")
    return {"table": table, "nc_fit_b": fam.critical_scale_b, "posterior": row,
            "predictions": pred, "start": start, "seconds": seconds}


if __name__ == "__main__":
    cd.enable_compilation_cache()  # a script: keep compiled programs for the next run
    main()
