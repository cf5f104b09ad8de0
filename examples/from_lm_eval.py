"""From a folder of lm-evaluation-harness result files to a family's critical scale Nc.

1. ``cd.read_lm_eval`` reads every ``results*.json`` below the folder (here three sizes of
   an invented family, "Acme", in the harness's v0.4 layout; point it at your own
   ``--output_path``) into a validated table: percent scores, sizes from the files.
2. ``cd.family_nc`` pools the family with the shipped ones in the running-coupling
   posterior (the shipped families are the population prior, the family's own γ12 pairs
   its data) and gives its Nc median and 68%/95% intervals, with R-hat, ESS and
   divergences checked; then its five scores at the next sizes from the shipped coupling
   ODE with the family's source terms fitted (point predictions).

    python examples/from_lm_eval.py [FOLDER] [--family NAME] [--sizes 6.9,12] [--quick]

The same on the command line:
``capedyn ingest examples/data/acme_lm_eval --family Acme --out acme.csv`` then
``capedyn family acme.csv --sizes 6.9,12``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import capedyn as cd

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
                    help="2 NUTS chains x 500 draws: a smoke run, not a result")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sizes = [float(s) for s in args.sizes.split(",")]
    params = [float(s) for s in args.params_b.split(",")] if args.params_b else None

    # 1. result files -> table (percent, billions)
    table = cd.read_lm_eval(args.folder, family=args.family, params_b=params)
    print(table[["model", "params_b", *cd.BENCHMARKS, "flags"]].to_string(index=False))

    # 2. its Nc (coupling-level posterior, the shipped families as prior) and next sizes
    nuts = dict(chains=2, samples=500, warmup=500) if args.quick else {}
    res = cd.family_nc(table, args.family, sizes=sizes, seed=0, progress=False, **nuts)
    row = res.nc
    print(f"\nNc({args.family}) median {row['nc_median_b']:.3g}B, "
          f"68% [{row['nc_ci68_lo_b']:.3g}, {row['nc_ci68_hi_b']:.3g}]B, "
          f"95% [{row['nc_ci95_lo_b']:.3g}, {row['nc_ci95_hi_b']:.3g}]B "
          f"(R-hat {res.rhat_max:.3f}, {res.divergences} divergences"
          + ("" if res.converged else "; NOT CONVERGED") + ")")
    for w in res.warnings:
        print(w)
    pred, start = res.predictions, res.start
    print(f"\npredicted from {start['model']} ({start['params_b']:.3g}B):")
    print(pred.round(2).to_string(index=False))
    seconds = time.perf_counter() - t0
    print(f"\nwall time {seconds:.1f} s")
    return {"table": table, "posterior": row, "converged": res.converged,
            "predictions": pred, "start": start, "seconds": seconds}


if __name__ == "__main__":
    cd.enable_compilation_cache()  # a script: keep compiled programs for the next run
    cd.enable_fast_compile()  # ... compiled with XLA's quicker CPU emitters
    cd.enable_cpu_devices()  # ... and sample the NUTS chains on two cores
    main()
