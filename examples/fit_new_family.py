"""Fit a new model family from a CSV of your own and predict its next size.

Writes a small CSV in a temporary folder — here OPT's five smallest models (125M–6.7B)
renamed "MyLab", standing in for your own measurements — loads it with the same
validation as the shipped table, fits the family's field parameters (its Nc parameter and
source h) with the population field held fixed (``CouplingODE.fit_family``; the Nc
parameter serves the prediction and is not a measurement of the family's Nc, for which
see ``family_nc_interval.py``), and predicts the next size
(13B) from the largest measured model with ``CouplingODE.predict``. OPT-13B's measured
scores are printed beside the prediction for comparison.

The population field must not have seen the new family: it is fitted here on every
shipped family except OPT (with ``--quick``: on Pythia alone, with a short fit).

    python examples/fit_new_family.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import capedyn as cd

NEXT_B = 13.0


def my_family_csv(folder: Path) -> tuple[Path, dict]:
    """Write the stand-in CSV; return its path and the held-back 13B row (for comparison)."""
    df = cd.load_base_models()
    opt = df[df["family"] == "OPT"].copy()
    opt["family"] = "MyLab"
    opt["model"] = opt["model"].str.replace("OPT", "MyLab", regex=False)
    opt["source"] = "my own evaluation"
    columns = ["model", "family", "params_b", *cd.BENCHMARKS, "source"]
    path = folder / "my_family.csv"
    opt[opt["params_b"] < NEXT_B][columns].to_csv(path, index=False)
    truth = opt[opt["params_b"] == NEXT_B].iloc[0]
    return path, {b: float(truth[b]) for b in cd.BENCHMARKS}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="population fitted on Pythia only with a short fit")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path, truth = my_family_csv(Path(tmp))
        mine = cd.load_base_models(path)  # validated like the shipped table
    print(f"my family: {len(mine)} models, {mine['params_b'].min():g}B–{mine['params_b'].max():g}B")

    base = cd.load_base_models()
    if args.quick:
        population = cd.CouplingODE(steps=150, progress=False).fit(base[base["family"] == "Pythia"])
    else:
        population = cd.CouplingODE().fit(base[base["family"] != "OPT"])
    fam = population.fit_family(mine, steps=100 if args.quick else 300)
    print(f"fitted: ODE field parameter Nc(MyLab) = {fam.critical_scale_b:.3g}B "
          f"(population value {10 ** (population.mu_nc_ - 9):.3g}B; a parameter of the "
          "ODE, not a measurement of the family's Nc)")

    last = mine.sort_values("params_b").iloc[-1]
    pred = population.predict(last, [NEXT_B], family="MyLab").iloc[0]
    print(f"prediction for {NEXT_B:g}B from {last['model']} ({last['params_b']:g}B):")
    for b in cd.BENCHMARKS:
        print(f"  {b:11s} predicted {pred[b]:5.1f}   measured (OPT-13B) {truth[b]:5.1f}")
    return {"nc_b": fam.critical_scale_b, "prediction": {b: float(pred[b]) for b in cd.BENCHMARKS}}


if __name__ == "__main__":
    cd.enable_compilation_cache()  # a script: keep compiled programs for the next run
    cd.enable_fast_compile()  # ... compiled with XLA's quicker CPU emitters
    main()
