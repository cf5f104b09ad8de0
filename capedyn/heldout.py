"""The held-out family benchmark (SPEC §5).

Protocol (fixed): the held-out family F is removed from training entirely; a method sees
the training families and F's smallest model only (its five scores and N); it predicts all
five scores of every other model of F from their N; it is scored over every (model,
benchmark) pair except the initial model with

* MAE in points: mean |pred − actual|,
* relative MAE % = 100 · mean |pred − actual| / mean(actual).

:func:`make_split` is the one place where a split is built: methods receive
``split.train`` (F removed) and ``split.initial`` (one row) and nothing else; the other
models of F (``split.targets``) are used only to score.

Which rows count. F's models are its *complete* rows (all five scores): the initial model
is the smallest complete one, the targets are the others. A training table may hold
incomplete rows (Gemma-3, Gemma-4, Qwen3 have only HS and TQA) and one-model families
(Mistral, Yi, ...): every method gets the same table and uses what it can — the ODE-type
methods (``coupling_ode``, ``sindy_ode``, ``linear_ode``) integrate five-dimensional
trajectories and so use families with at least two complete models; the polynomial
baselines fit each benchmark on every row where that score is present.

* P1 (the paper's split, :func:`p1`): train on Pythia only, predict Llama-2.
* P2 (:func:`crossval`): leave one family out, for every family with at least
  ``min_models`` (3) complete models, training on all other families of the table;
  families with fewer are skipped with the reason recorded.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ._errors import CapedynError
from ._progress import Progress
from .baselines import LinearODE, PolynomialBaseline
from .data import BENCHMARKS, DataError, complete_models
from ._jax import scoped_x64

__all__ = ["METHODS", "PAPER_REFERENCE", "HOLDOUT_METHODS", "HOLDOUT_PAPER_REFERENCE", "Split", "HoldoutResult", "make_split", "holdout",
           "crossval", "p1", "mae_points", "relative_mae_pct", "summarize",
           "plot_holdout_trajectories", "plot_method_errors"]

PAPER_REFERENCE = {
    "P1": {"split": "train Pythia, predict Llama-2",
           "rel_mae_pct": {"paper linear ODE (dy/dx = C·y + c)": 5.6,
                           "paper degree-2 polynomial": 10.2},
           "note": "the paper's own data version; polynomials of degree 1-4 all worse than the ODE"},
}
"""The paper's held-out figures, for side-by-side display only (never used in a computation)."""


def _coupling_ode():
    from .fit import CouplingODE

    return CouplingODE(progress=False)


def _sindy_ode():
    from .sindy import SparseCouplingODE

    return SparseCouplingODE()


METHODS: dict[str, Callable[[], Any]] = {
    "coupling_ode": _coupling_ode,
    "sindy_ode": _sindy_ode,
    "linear_ode": LinearODE,
    **{f"poly{d}": functools.partial(PolynomialBaseline, d) for d in range(1, 5)},
    **{f"poly{d}_anchored": functools.partial(PolynomialBaseline, d, anchored=True)
       for d in range(1, 5)},
}
"""Method name → factory of a fresh, unfitted estimator with ``fit(train_df)`` and
``predict(initial_row, params_b) -> DataFrame`` (params_b + five score columns)."""

HOLDOUT_METHODS = METHODS
HOLDOUT_PAPER_REFERENCE = PAPER_REFERENCE

_FAILURES = (CapedynError, ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError)


# ---------------------------------------------------------------------------------------
# metrics

def mae_points(pred, actual) -> float:
    """Mean absolute error in score points over every (model, benchmark) pair."""
    pred, actual = np.asarray(pred, float), np.asarray(actual, float)
    return float(np.mean(np.abs(pred - actual)))


def relative_mae_pct(pred, actual) -> float:
    """100 · mean|pred − actual| / mean(actual) over every (model, benchmark) pair (SPEC §5)."""
    pred, actual = np.asarray(pred, float), np.asarray(actual, float)
    return float(100.0 * np.mean(np.abs(pred - actual)) / np.mean(actual))


# ---------------------------------------------------------------------------------------
# splits

@dataclass(frozen=True)
class Split:
    """One held-out split. Methods see ``train`` and ``initial`` only; ``targets`` scores them."""

    family: str
    train: pd.DataFrame
    initial: pd.Series
    targets: pd.DataFrame

    @property
    def train_families(self) -> list[str]:
        return list(dict.fromkeys(self.train["family"]))


def make_split(df: pd.DataFrame, family: str, train: Sequence[str] | None = None) -> Split:
    """Build the split holding out ``family`` (SPEC §5).

    ``train``: training families (default: every other family in ``df``). The training
    table never contains ``family``; the initial row is the family's smallest complete
    model; targets are its other complete models. Raises for unknown names, a training
    list containing the held-out family, or a family with fewer than two complete models.
    """
    known = list(dict.fromkeys(df["family"]))
    if family not in known:
        raise DataError(f"unknown family {family!r}", file="<table>", column="family",
                        hint=f"Known families: {', '.join(known)}")
    if train is not None:
        train = list(train)
        unknown = [f for f in train if f not in known]
        if unknown:
            raise DataError(f"unknown training family {unknown}", file="<table>", column="family",
                            hint=f"Known families: {', '.join(known)}")
        if family in train:
            raise ValueError(f"the held-out family {family!r} cannot also be a training family")
        if not train:
            raise ValueError("the training family list is empty")
    train_df = df[df["family"] != family] if train is None else df[df["family"].isin(train)]
    own = complete_models(df[df["family"] == family]).sort_values("params_b", kind="stable")
    if len(own) < 2:
        raise ValueError(f"family {family!r} has {len(own)} complete model(s); holding it out "
                         "needs an initial model and at least one more to predict")
    return Split(family=family, train=train_df.reset_index(drop=True).copy(),
                 initial=own.iloc[0].copy(), targets=own.iloc[1:].reset_index(drop=True).copy())


# ---------------------------------------------------------------------------------------
# running methods

def _resolve_methods(methods) -> dict[str, Callable[[], Any]]:
    if methods is None:
        return dict(METHODS)
    if isinstance(methods, Mapping):
        return dict(methods)
    if isinstance(methods, str):
        methods = [methods]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid methods: {', '.join(METHODS)}")
    if not methods:
        raise ValueError(f"no method given; valid methods: {', '.join(METHODS)}")
    return {m: METHODS[m] for m in dict.fromkeys(methods)}


def _fit_predict(factory, split: Split, sizes) -> tuple[pd.DataFrame, Any]:
    est = factory().fit(split.train)
    pred = est.predict(split.initial, sizes)
    scores = pred[list(BENCHMARKS)].to_numpy(dtype=float)
    if scores.shape != (len(sizes), len(BENCHMARKS)):
        raise ValueError(f"prediction has shape {scores.shape}, expected {(len(sizes), len(BENCHMARKS))}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("the method returned non-finite predictions")
    return pred, est


def _curve_sizes(split: Split, n: int = 40) -> np.ndarray:
    lo, hi = float(split.initial["params_b"]), float(split.targets["params_b"].max())
    return np.unique(np.concatenate([np.geomspace(lo, hi, n), split.targets["params_b"]]))


def _run_one(name: str, factory, split: Split, curves: bool) -> tuple[dict, list[dict], list[dict]]:
    sizes = split.targets["params_b"].to_numpy(dtype=float)
    actual = split.targets[list(BENCHMARKS)].to_numpy(dtype=float)
    row = {"family": split.family, "method": name, "status": "ok",
           "n_points": int(actual.size), "mae_pp": np.nan, "rel_mae_pct": np.nan,
           "n_out_of_range": 0, "seconds": np.nan, "message": ""}
    t0 = time.perf_counter()
    try:
        pred, est = _fit_predict(factory, split, sizes)
    except _FAILURES as exc:
        row.update(status="failed", message=f"{type(exc).__name__}: {exc}",
                   seconds=time.perf_counter() - t0)
        return row, [], []
    scores = pred[list(BENCHMARKS)].to_numpy(dtype=float)
    outside = (scores < 0) | (scores > 100)
    row.update(mae_pp=mae_points(scores, actual), rel_mae_pct=relative_mae_pct(scores, actual),
               n_out_of_range=int(outside.any(axis=1).sum()), seconds=time.perf_counter() - t0)
    long = [{"family": split.family, "method": name, "model": split.targets["model"].iloc[i],
             "params_b": float(sizes[i]), "benchmark": b, "pred": float(scores[i, k]),
             "actual": float(actual[i, k]), "abs_err": float(abs(scores[i, k] - actual[i, k])),
             "out_of_range": bool(outside[i, k])}
            for i in range(len(sizes)) for k, b in enumerate(BENCHMARKS)]
    curve = []
    if curves:
        grid = _curve_sizes(split)
        try:
            dense = est.predict(split.initial, grid)[list(BENCHMARKS)].to_numpy(dtype=float)
        except _FAILURES:
            dense = None
        if dense is not None:
            curve = [{"family": split.family, "method": name, "params_b": float(p),
                      **{b: float(dense[i, k]) for k, b in enumerate(BENCHMARKS)}}
                     for i, p in enumerate(grid)]
    return row, long, curve


TABLE_COLUMNS = ["family", "method", "status", "n_points", "mae_pp", "rel_mae_pct",
                 "n_out_of_range", "seconds", "message"]
PRED_COLUMNS = ["family", "method", "model", "params_b", "benchmark", "pred", "actual",
                "abs_err", "out_of_range"]


@dataclass
class HoldoutResult:
    """Results of one or more held-out splits.

    ``table``: one row per (family, method): ``status`` (ok/failed), ``n_points``,
    ``mae_pp`` (points), ``rel_mae_pct``, ``n_out_of_range`` (predicted models with a score
    outside [0, 100]), ``seconds``, ``message``. ``predictions``: long table, one row per
    (family, method, model, benchmark). ``curves``: dense predicted trajectories (single
    holdouts). ``splits``: what each split trained on. ``skipped``: families not held out
    and why. ``summary``: per method, see :func:`summarize`.
    """

    table: pd.DataFrame
    predictions: pd.DataFrame
    splits: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["family", "n_complete", "reason"]))
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    initials: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: float = float("nan")

    @property
    def summary(self) -> pd.DataFrame:
        return summarize(self.table)

    def to_dict(self) -> dict:
        """JSON-ready: ``rows``, ``summary``, ``skipped``, ``splits``, ``seconds``, ``paper_reference``."""
        return {"rows": _records(self.table), "summary": _records(self.summary),
                "skipped": _records(self.skipped), "splits": _records(self.splits),
                "seconds": self.seconds, "paper_reference": PAPER_REFERENCE}


def _records(df: pd.DataFrame) -> list[dict]:
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not np.isfinite(v) else
                        v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()})
    return out


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean and median of ``rel_mae_pct`` (and mean ``mae_pp``) over the families
    where it succeeded, ``n_families`` scored and ``n_failed``. Methods keep table order."""
    rows = []
    for method, sub in table.groupby("method", sort=False):
        ok = sub[sub["status"] == "ok"]
        rows.append({"method": method,
                     "mean_rel_mae_pct": float(ok["rel_mae_pct"].mean()) if len(ok) else np.nan,
                     "median_rel_mae_pct": float(ok["rel_mae_pct"].median()) if len(ok) else np.nan,
                     "mean_mae_pp": float(ok["mae_pp"].mean()) if len(ok) else np.nan,
                     "n_families": int(len(ok)), "n_failed": int(len(sub) - len(ok))})
    return pd.DataFrame(rows, columns=["method", "mean_rel_mae_pct", "median_rel_mae_pct",
                                       "mean_mae_pp", "n_families", "n_failed"])


@scoped_x64
def _run_splits(splits: list[Split], methods, *, curves: bool, progress: bool, label: str,
                skipped: list[dict]) -> HoldoutResult:
    factories = _resolve_methods(methods)
    rows, preds, dense, split_rows, initials = [], [], [], [], []
    t0 = time.perf_counter()
    with Progress(len(splits) * len(factories), label, enabled=progress) as bar:
        done = 0
        for split in splits:
            split_rows.append({"family": split.family, "initial_model": split.initial["model"],
                               "initial_params_b": float(split.initial["params_b"]),
                               "n_targets": len(split.targets),
                               "train_families": split.train_families,
                               "n_train_rows": len(split.train)})
            initials.append(split.initial.to_dict())
            for name, factory in factories.items():
                bar.update(done, family=split.family, method=name)
                row, long, curve = _run_one(name, factory, split, curves)
                rows.append(row)
                preds += long
                dense += curve
                done += 1
                bar.update(done, family=split.family, method=name)
    return HoldoutResult(table=pd.DataFrame(rows, columns=TABLE_COLUMNS),
                         predictions=pd.DataFrame(preds, columns=PRED_COLUMNS),
                         splits=pd.DataFrame(split_rows),
                         skipped=pd.DataFrame(skipped, columns=["family", "n_complete", "reason"]),
                         curves=pd.DataFrame(dense), initials=pd.DataFrame(initials),
                         seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------
# public entry points

def holdout(df: pd.DataFrame, family: str, train: Sequence[str] | None = None,
            methods=None, *, curves: bool = True, progress: bool = False) -> HoldoutResult:
    """Hold out one ``family`` and score every method on it.

    ``train``: training families (default: all others in ``df``). ``methods``: names from
    :data:`METHODS` (default: all), or a mapping name → factory for custom configurations.
    ``curves``: also predict a dense size grid for :func:`plot_holdout_trajectories`.
    """
    split = make_split(df, family, train)
    return _run_splits([split], methods, curves=curves, progress=progress,
                       label=f"holdout {family}", skipped=[])


def crossval(df: pd.DataFrame, families: Sequence[str] | None = None, methods=None,
             min_models: int = 3, *, progress: bool = True) -> HoldoutResult:
    """P2: leave one family out in turn, training on every other family of ``df``.

    ``families`` limits which families are held out (default: all); those with fewer than
    ``min_models`` complete models are skipped with the reason in ``result.skipped``.
    Progress goes to stderr.
    """
    known = list(dict.fromkeys(df["family"]))
    if families is not None:
        unknown = [f for f in families if f not in known]
        if unknown:
            raise DataError(f"unknown family {unknown}", file="<table>", column="family",
                            hint=f"Known families: {', '.join(known)}")
    _resolve_methods(methods)  # fail on a bad name before any work
    counts = complete_models(df).groupby("family").size()
    splits, skipped = [], []
    for fam in (known if families is None else list(dict.fromkeys(families))):
        n = int(counts.get(fam, 0))
        if n < min_models:
            skipped.append({"family": fam, "n_complete": n,
                            "reason": f"{n} complete model(s), fewer than min_models={min_models}"})
            continue
        splits.append(make_split(df, fam))
    return _run_splits(splits, methods, curves=False, progress=progress, label="crossval",
                       skipped=skipped)


def p1(df: pd.DataFrame, methods=None, *, curves: bool = True, progress: bool = False) -> HoldoutResult:
    """The paper's split: train on Pythia only, predict Llama-2."""
    return holdout(df, "Llama-2", train=["Pythia"], methods=methods, curves=curves, progress=progress)


# ---------------------------------------------------------------------------------------
# figures

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig, path: str | Path) -> Path:
    from ._io import atomic_write

    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120, bbox_inches="tight"))


def plot_holdout_trajectories(result: HoldoutResult, family: str, path: str | Path) -> Path:
    """Predicted vs actual trajectories of one held-out family, one panel per benchmark,
    one line per method; written atomically as PNG."""
    from ._state import SHORT

    preds = result.predictions[result.predictions["family"] == family]
    if preds.empty:
        raise ValueError(f"no predictions for family {family!r} in this result; "
                         f"families: {sorted(set(result.predictions['family']))}")
    init = result.initials[result.initials["family"] == family].iloc[0]
    curves = result.curves[result.curves["family"] == family] if not result.curves.empty else result.curves
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, len(BENCHMARKS), figsize=(4 * len(BENCHMARKS), 3.6), sharex=True)
    methods = list(dict.fromkeys(preds["method"]))
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(methods), 2)))
    for ax, b in zip(axes, BENCHMARKS):
        actual = preds[(preds["benchmark"] == b)].drop_duplicates("model")
        for c, m in zip(colors, methods):
            if not curves.empty and m in set(curves["method"]):
                cm = curves[curves["method"] == m]
                ax.plot(cm["params_b"], cm[b], color=c, lw=1.2, label=m)
            else:
                pm = preds[(preds["method"] == m) & (preds["benchmark"] == b)]
                ax.plot([init["params_b"], *pm["params_b"]], [init[b], *pm["pred"]],
                        color=c, lw=1.2, marker=".", label=m)
        ax.scatter(actual["params_b"], actual["actual"], color="black", zorder=5, label="actual")
        ax.scatter([init["params_b"]], [init[b]], color="black", marker="*", s=120, zorder=6,
                   label="initial model")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on 1-2 decades
        ax.set_title(SHORT[b])
        ax.set_xlabel("parameters (B)")
    axes[0].set_ylabel("score (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"held-out {family}")
    fig.tight_layout()
    try:
        return _save_png(fig, path)
    finally:
        plt.close(fig)


def plot_method_errors(summary, path: str | Path) -> Path:
    """Bar chart of mean and median relative MAE (%) by method; ``summary`` is
    :func:`summarize`'s DataFrame (or its records, or a HoldoutResult). PNG, written atomically."""
    if isinstance(summary, HoldoutResult):
        summary = summary.summary
    summary = pd.DataFrame(summary)
    if summary.empty:
        raise ValueError("the summary is empty; nothing to plot")
    plt = _pyplot()
    idx = np.arange(len(summary))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(summary)), 4))
    ax.bar(idx - 0.2, summary["mean_rel_mae_pct"], 0.4, label="mean over families")
    ax.bar(idx + 0.2, summary["median_rel_mae_pct"], 0.4, label="median over families")
    ax.set_xticks(idx, summary["method"], rotation=45, ha="right")
    ax.set_ylabel("relative MAE (%)")
    ax.legend()
    fig.tight_layout()
    try:
        return _save_png(fig, path)
    finally:
        plt.close(fig)
