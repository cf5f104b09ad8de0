"""Does capedyn leave a notebook's global state alone?

Records three things a notebook user relies on — matplotlib's backend, JAX's
``jax_enable_x64`` flag and the dtype of ``jnp.ones(1)`` — then works the way one would in
a notebook: a short coupling-ODE fit on two families, a short coupling-level posterior,
a held-out comparison with a polynomial method, and every plot function the library has.
After each step the three are read again. Prints one line per step and, at the end,
whether anything changed (exit status 1 if it did).

    MPLBACKEND=svg python examples/notebook_state.py [--quick] [--json]

(Any backend will do; a non-default one such as svg makes a silent switch to Agg visible.)
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

PLOT_MODULES = ("plotting", "heldout", "posterior", "report", "frontier")
"""Modules searched for ``plot_*`` functions."""


def global_state() -> dict[str, Any]:
    """The backend, the x64 flag and the default float dtype, as a user would read them."""
    import jax
    import jax.numpy as jnp
    import matplotlib

    return {"backend": matplotlib.get_backend(),
            "jax_enable_x64": bool(jax.config.jax_enable_x64),
            "ones_dtype": str(jnp.ones(1).dtype)}


def plot_functions() -> list[tuple[str, Callable]]:
    """Every public ``plot_*`` function defined in capedyn's modules, as ``module.name``."""
    found = []
    for short in PLOT_MODULES:
        try:
            module = importlib.import_module(f"capedyn.{short}")
        except ModuleNotFoundError:
            continue
        for name, fn in vars(module).items():
            if name.startswith("plot_") and inspect.isfunction(fn) \
                    and fn.__module__ == module.__name__:
                found.append((f"{short}.{name}", fn))
    return found


def _bind(fn: Callable, pool: dict[str, Any], folder: Path) -> dict[str, Any] | str:
    """Keyword arguments for ``fn`` from ``pool`` by parameter name (``path`` gets a file in
    ``folder``; ``ax``/``fig`` stay None); a string saying what is missing otherwise."""
    kwargs, missing = {}, []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("ax", "fig"):
            continue
        if p.name == "path":
            kwargs["path"] = folder / f"{fn.__name__}.png"
        elif p.name in pool:
            kwargs[p.name] = pool[p.name]
        elif p.default is p.empty:
            missing.append(p.name)
    return f"needs {', '.join(missing)}" if missing else kwargs


def _close(result: Any) -> str:
    """Close a returned figure; say what kind of result it was."""
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    many = isinstance(result, (list, tuple)) or type(result).__name__ == "ndarray"
    figs = {a.figure for a in (list(result) if many else [result]) if isinstance(a, Axes)}
    if isinstance(result, Figure):
        figs.add(result)
    for fig in figs:
        plt.close(fig)
    if figs:
        return "Axes/Figure"
    return "path" if isinstance(result, (str, Path)) else type(result).__name__


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="accepted for uniformity; every step is already short")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    before = global_state()
    import capedyn as cd
    from capedyn.inference.sampling import sample_posterior

    steps: list[dict[str, Any]] = []
    last = dict(before)

    def record(step: str, kind: str = "") -> None:
        """What this step changed (compared with the state just before it)."""
        now = global_state()
        steps.append({"step": step, "kind": kind,
                      "changed": {k: [last[k], v] for k, v in now.items() if v != last[k]}})
        last.update(now)

    record("import capedyn")
    df = cd.load_base_models()
    two = df[df["family"].isin(["Pythia", "OPT"])]
    model = cd.CouplingODE(steps=50).fit(two)
    record("CouplingODE(steps=50).fit (Pythia, OPT)")
    post = sample_posterior(df, model="coupling", chains=1, samples=50, warmup=50,
                            progress=False)
    record("sample_posterior(model='coupling', 1 chain x 50)")
    result = cd.holdout(df, "OPT", methods=["poly2"])
    record("holdout(OPT, poly2)")
    pairs = cd.running_coupling(df)
    boot = cd.bootstrap_nc(pairs, n_resamples=200, seed=0)
    frontier = cd.load_frontier_models()
    line = cd.population_line(frontier, n_bootstrap=100)
    record("running_coupling, bootstrap_nc, population_line")

    pool = {"df": df, "table": pairs, "pairs": pairs, "fit": cd.population_fit(pairs), "boot": boot,
            "model": model, "result": result, "family": "OPT", "summary": result.summary,
            "post": post, "line": line, "p1_table": result.table,
            "p2_summary": result.summary}
    overrides = {"plot_frontier": {"df": frontier},
                 "plot_internal_coupling": {"df": cd.load_internal_coupling()}}
    not_called = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, fn in plot_functions():
            kwargs = _bind(fn, {**pool, **overrides.get(fn.__name__, {})}, Path(tmp))
            if isinstance(kwargs, str):
                not_called.append(f"{label}: {kwargs}")
                continue
            kind = _close(fn(**kwargs))
            record(label, kind)

    after = global_state()
    unchanged = after == before and all(not s["changed"] for s in steps)
    out = {"before": before, "after": after, "steps": steps,
           "not_called": not_called, "unchanged": unchanged}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print("before: " + ", ".join(f"{k} = {v}" for k, v in before.items()))
        for s in steps:
            what = "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in s["changed"].items())
            kind = f" [{s['kind']}]" if s["kind"] else ""
            print(f"  {s['step']}{kind}: {what or 'unchanged'}")
        for n in not_called:
            print(f"  not called ({n})")
        print("after:  " + ", ".join(f"{k} = {v}" for k, v in after.items()))
        print("global state unchanged" if unchanged else "GLOBAL STATE CHANGED")
    return out


if __name__ == "__main__":
    sys.exit(0 if main()["unchanged"] else 1)
