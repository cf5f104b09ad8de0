"""Held-out comparison for one family (the protocol of docs/protocol.md).

The named family is removed from training; every method is trained on the other
families, sees only the held-out family's smallest complete model (five scores and its
size), and predicts every larger model's five scores from its size. Printed: relative MAE
(%) and MAE (points) per method — the learned coupling ODE, the SINDy ODE, the paper's
linear ODE and pooled polynomials (as fitted and anchored at the initial model).

    python examples/holdout_one_family.py --family OPT [--quick]
"""

from __future__ import annotations

import argparse
import functools

import capedyn as cd


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="OPT", help="family to hold out (default OPT)")
    ap.add_argument("--quick", action="store_true",
                    help="a short coupling-ODE fit and four methods only")
    args = ap.parse_args(argv)

    df = cd.load_base_models()
    if args.quick:
        methods = {"coupling_ode": functools.partial(cd.CouplingODE, steps=100, progress=False),
                   "linear_ode": cd.LinearODE,
                   "poly2": functools.partial(cd.PolynomialBaseline, 2),
                   "poly2_anchored": functools.partial(cd.PolynomialBaseline, 2, anchored=True)}
    else:
        methods = None  # every method of capedyn.HOLDOUT_METHODS, default settings
    result = cd.holdout(df, args.family, methods=methods, curves=False)
    split = result.splits.iloc[0]
    print(f"held out {args.family}: start {split['initial_model']} "
          f"({split['initial_params_b']:g}B), {split['n_targets']} models to predict; "
          f"trained on {len(split['train_families'])} other families")
    table = result.table.sort_values("rel_mae_pct")
    for r in table.itertuples(index=False):
        value = f"{r.rel_mae_pct:6.2f}%  MAE {r.mae_pp:5.2f} points" if r.status == "ok" \
            else f"failed: {r.message}"
        print(f"  {r.method:16s} {value}")
    return {r.method: r.rel_mae_pct for r in table.itertuples(index=False)}


if __name__ == "__main__":
    cd.enable_compilation_cache()  # a script: keep compiled programs for the next run
    cd.enable_fast_compile()  # ... compiled with XLA's quicker CPU emitters
    main()
