"""A family's critical scale Nc with its posterior interval (NumPyro NUTS).

Samples the hierarchical running-coupling posterior (``capedyn.inference.sampling``) over every
shipped family and prints the chosen family's Nc: posterior median with 68% and 95%
intervals in billions of parameters, R-hat and bulk ESS. Without ``--quick`` it then
treats the family as new — refits the population without it and gives it an Nc from its
own pairs with the population as prior (``posterior_family``), as one would for a family
of one's own.

    python examples/family_nc_interval.py --family Falcon [--quick]
"""

from __future__ import annotations

import argparse

import capedyn as cd
from capedyn.inference.sampling import POSTERIOR_PAPER_REFERENCE, posterior_family, sample_posterior


def _line(label: str, row: dict) -> str:
    return (f"{label:34s} Nc = {row['nc_median_b']:7.3g}B   68% [{row['nc_ci68_lo_b']:.3g}, "
            f"{row['nc_ci68_hi_b']:.3g}]   95% [{row['nc_ci95_lo_b']:.3g}, "
            f"{row['nc_ci95_hi_b']:.3g}]   R-hat {row['rhat_max']:.3f}   ESS {row['ess_bulk_min']:.0f}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="Falcon", help="family to report (default Falcon)")
    ap.add_argument("--quick", action="store_true",
                    help="2 chains × 200 draws, and skip the new-family refit")
    args = ap.parse_args(argv)
    nuts = dict(chains=2, samples=200) if args.quick else dict(chains=4, samples=1000)

    df = cd.load_base_models()
    post = sample_posterior(df, model="coupling", seed=0, progress=False, **nuts)
    row = post.row(args.family)
    print(_line(f"{args.family} (in the population fit)", row))
    print(_line("population centre 10^mu", post.row("population")))
    ref = POSTERIOR_PAPER_REFERENCE["family_nc_b"].get(args.family)
    if ref is not None:
        print(f"{'paper':34s} Nc ≈ {ref:g}B")

    if args.quick:
        return {"in_population": row}
    others = df[df["family"] != args.family]
    population = sample_posterior(others, model="coupling", seed=0, progress=False, **nuts)
    new = posterior_family(population, df[df["family"] == args.family], seed=1, **nuts)
    print(_line(f"{args.family} as a new family", new.row(args.family)))
    print(f"divergences: {post.divergences} (population), {new.divergences} (new family)")
    return {"in_population": row, "as_new_family": new.row(args.family)}


if __name__ == "__main__":
    cd.enable_compilation_cache()  # a script: keep compiled programs for the next run
    cd.enable_fast_compile()  # ... compiled with XLA's quicker CPU emitters
    main()
