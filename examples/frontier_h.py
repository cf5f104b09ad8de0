"""The h-field of a new frontier model from two public scores.

Fits the population line GPQA = a·SWE + b on the shipped frontier table (the frozen
34-model panel), then reads off h = GPQA − (a·SWE + b) for a model you name by its
SWE-bench Verified and GPQA Diamond scores (percent). Positive h: reasoning-rich;
negative: coding-rich; |h| > 5: a specialist. The default scores are the paper's worked
example (SWE 87.6, GPQA 94.2 → h ≈ +2.9).

    python examples/frontier_h.py --swe 80.9 --gpqa 87.0 [--quick]
"""

from __future__ import annotations

import argparse

import capedyn as cd


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--swe", type=float, default=87.6, help="SWE-bench Verified, percent")
    ap.add_argument("--gpqa", type=float, default=94.2, help="GPQA Diamond, percent")
    ap.add_argument("--quick", action="store_true", help="fewer bootstrap resamples")
    args = ap.parse_args(argv)

    frontier = cd.load_frontier_models()
    line = cd.population_line(frontier, n_bootstrap=200 if args.quick else 2000, seed=0)
    h = cd.h_field(args.swe, args.gpqa, line.slope, line.intercept)
    predicted = float(line.predict(args.swe))
    lo, hi = line.band([args.swe])
    print(f"population line ({line.n} models): GPQA = {line.slope:.3f}·SWE + {line.intercept:.2f}"
          f"  (paper: {cd.PAPER_COEFFICIENTS['slope']}·SWE + {cd.PAPER_COEFFICIENTS['intercept']})")
    print(f"SWE {args.swe:g} → predicted GPQA {predicted:.1f} "
          f"(95% band of the line {lo[0]:.1f}–{hi[0]:.1f}); actual {args.gpqa:g}")
    print(f"h = {h:+.1f}: {cd.reading(h)}")
    return {"slope": line.slope, "intercept": line.intercept, "predicted_gpqa": predicted, "h": h}


if __name__ == "__main__":
    cd.enable_compilation_cache()  # a script: keep compiled programs for the next run
    cd.enable_fast_compile()  # ... compiled with XLA's quicker CPU emitters
    main()
