"""The held-out family benchmark.

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

Methods (:data:`METHODS`): the learned coupling ODE, the second-generation shared-dynamics
ODE (``shared_ode``), SINDy (minimum-error and one-standard-error thresholds), the paper's
linear ODE, pooled polynomials in log10 N (as fitted and anchored at the initial model), and
the field's peers (``logit_rate``, ``pca_capability`` — ObsScaling-style, ``latent_skill`` —
Sloth-style; :mod:`capedyn.models.peers`). Every hyper-parameter listed in :data:`SELECTION_GRIDS`
(floors, numbers of skills or components, penalties, polynomial degree) is chosen by nested
selection inside each training set (:mod:`capedyn.evaluation.selection`); ``selection="fixed"`` runs the
defaults instead, for a before/after comparison.

* P1 (the paper's split, :func:`p1`): train on Pythia only, predict Llama-2.
* P2 (:func:`crossval`): leave one family out, for every family with at least
  ``min_models`` (3) complete models, training on all other families of the table;
  families with fewer are skipped with the reason recorded.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._conformal import check_levels, level_tag
from .._errors import CapedynError, InputError
from .._progress import Progress
from ..models.baselines import LinearODE, PolynomialBaseline
from ..data.tables import BENCHMARKS, DataError, complete_models
from .splits import Split, mae_points, make_split, relative_mae_pct  # noqa: F401 (re-exported)
from .._jax import scoped_x64, x64
from .._workers import one_blas_thread, ordered_map

__all__ = ["METHODS", "FIXED_METHODS", "SELECTION_GRIDS", "INNER_PARAMS", "DEFAULT_METHODS",
           "configured_methods", "PAPER_REFERENCE", "HOLDOUT_METHODS", "HOLDOUT_PAPER_REFERENCE", "Split", "HoldoutResult", "make_split", "holdout",
           "crossval", "p1", "mae_points", "relative_mae_pct", "summarize"]

PAPER_REFERENCE = {
    "P1": {"split": "train Pythia, predict Llama-2",
           "rel_mae_pct": {"paper linear ODE (dy/dx = C·y + c)": 5.6,
                           "paper degree-2 polynomial": 10.2},
           "note": "the paper's own data version; polynomials of degree 1-4 all worse than the ODE"},
}
"""The paper's held-out figures, for side-by-side display only (never used in a computation)."""


def _coupling_ode():
    from ..models.coupling_ode import CouplingODE

    # hundreds of fits of one shape: reverse-mode Jacobians repay their compilation
    return CouplingODE(progress=False, jacobian="auto")


def _sindy_ode():
    from ..models.sindy import SparseCouplingODE

    return SparseCouplingODE()


def _sindy_ode_1se():
    from ..models.sindy import SparseCouplingODE

    return SparseCouplingODE(selection="1se")


def _shared_ode():
    from ..models.shared_ode import SharedLogitODE

    # exchangeable constant logit rates (no state or scale term), series that never left
    # chance censored, an unseen family's source from the transfer rule on its start, LM fit
    return SharedLogitODE(progress=False, optimizer="lm", state_term=False, scale_term=False,
                          new_family_source="transfer", censor_margin=3.0)


def _peer(name: str):
    def make():
        from ..models import peers

        return getattr(peers, name)()
    make.__name__ = f"_{name}"
    return make


def _ensemble():
    from .ensemble import EnsembleMethod

    return EnsembleMethod(members=ensemble_members())


def ensemble_members() -> dict[str, Callable[[], Any]]:
    """The ensemble's members: every registered method at its fixed settings, but the
    ensemble itself and ``poly_anchored`` (at fixed settings the same model as
    ``poly2_anchored``)."""
    return {m: f for m, f in FIXED_METHODS.items() if m not in ("ensemble", "poly_anchored")}


FIXED_METHODS: dict[str, Callable[[], Any]] = {
    "coupling_ode": _coupling_ode,
    "sindy_ode": _sindy_ode,
    "linear_ode": LinearODE,
    **{f"poly{d}": functools.partial(PolynomialBaseline, d) for d in range(1, 5)},
    **{f"poly{d}_anchored": functools.partial(PolynomialBaseline, d, anchored=True)
       for d in range(1, 5)},
    "poly_anchored": functools.partial(PolynomialBaseline, 2, anchored=True),
    "sindy_ode_1se": _sindy_ode_1se,
    "logit_rate": _peer("LogitRateModel"),
    "pca_capability": _peer("PCACapabilityModel"),
    "latent_skill": _peer("LatentSkillModel"),
    "shared_ode": _shared_ode,
    "ensemble": _ensemble,
}
"""Every method with its hyper-parameters at their fixed defaults (``selection="fixed"``):
the "before nested selection" configuration. Name → factory of a fresh, unfitted estimator
with ``fit(train_df)`` and ``predict(initial_row, params_b) -> DataFrame`` (params_b + five
score columns)."""

SELECTION_GRIDS: dict[str, dict[str, list]] = {
    "coupling_ode": {"l2": [300.0, 100.0, 1000.0]},
    "shared_ode": {"censor_margin": [3.0, None], "state_term": [False, True],
                   "new_family_source": ["transfer", "mean"]},
    "logit_rate": {"floor_slack": [10.0, 5.0, 0.0]},
    "pca_capability": {"n_components": [2, 1, 3], "floor_slack": [10.0, 5.0, 0.0]},
    "latent_skill": {"n_skills": [2, 1, 3], "floor_slack": [10.0, 5.0, 0.0]},
    "poly_anchored": {"degree": [2, 1, 3, 4]},
}
"""Hyper-parameter grids selected by nested leave-one-family-out inside each training set
(:class:`capedyn.evaluation.selection.NestedSelection`); the first value of each list is the fixed
default. ``sindy_ode``/``sindy_ode_1se`` select their STLSQ threshold and ridge by their own
leave-one-training-family-out cross-validation inside the training set; ``linear_ode`` and
the ``polyD`` variants have no hyper-parameter."""


INNER_PARAMS: dict[str, dict] = {"shared_ode": {"steps": 300}}
"""Cheaper optimiser budgets for the inner (selection) fits of the gradient-fitted methods;
the refit on the whole training set uses the method's own budget. coupling_ode's inner
fits use its own budget too (at most 200 Levenberg–Marquardt steps): a grid value is then
judged by the fit the refit would make. (They had 500, a budget set when the fit was Adam
with 1500 steps, which made the inner fits dearer than the refit.)"""


SELECTIONS = ("nested", "fixed")


def _nested_factory(name: str):
    def make():
        from .selection import NestedSelection

        return NestedSelection(FIXED_METHODS[name](), SELECTION_GRIDS[name],
                               inner_params=INNER_PARAMS.get(name))
    make.__name__ = f"_nested_{name}"
    return make


METHODS: dict[str, Callable[[], Any]] = {
    name: (_nested_factory(name) if name in SELECTION_GRIDS else factory)
    for name, factory in FIXED_METHODS.items()}
"""The benchmark's methods (``selection="nested"``, the default): as :data:`FIXED_METHODS`
but every hyper-parameter in :data:`SELECTION_GRIDS` chosen inside each training set."""


def configured_methods(overrides: Mapping[str, Mapping[str, Any]] | None = None, *,
                       selection: str = "nested",
                       grids: Mapping[str, Mapping[str, list]] | None = None,
                       inner: Mapping[str, Mapping[str, Any]] | None = None,
                       names: Sequence[str] | None = None) -> dict[str, Callable[[], Any]]:
    """The benchmark's methods with settings changed, e.g. a shorter optimiser budget.

    ``overrides``: method → estimator settings applied to the base estimator (its
    ``set_params`` / constructor keywords), e.g. ``{"coupling_ode": {"steps": 60}}``.
    ``selection``: "nested" wraps the methods of ``grids`` (default
    :data:`SELECTION_GRIDS`) in :class:`capedyn.evaluation.selection.NestedSelection` with the inner
    budgets of ``inner`` (default :data:`INNER_PARAMS`); "fixed" does not. ``names``
    restricts the methods (default :data:`DEFAULT_METHODS`)."""
    from .selection import NestedSelection, with_params

    if selection not in SELECTIONS:
        raise InputError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    overrides, grids = dict(overrides or {}), dict(SELECTION_GRIDS if grids is None else grids)
    inner = dict(INNER_PARAMS if inner is None else inner)
    out = {}
    for name in (DEFAULT_METHODS if names is None else names):
        def make(name=name):
            est = FIXED_METHODS[name]()
            if overrides.get(name):
                est = with_params(est, overrides[name])
            if selection == "nested" and name in grids:
                return NestedSelection(est, grids[name], inner_params=inner.get(name))
            return est
        out[name] = make
    return out


DEFAULT_METHODS: tuple[str, ...] = tuple(m for m in METHODS if m != "ensemble")
"""Methods run when none are named: every method but ``ensemble``, which refits every other
method once per inner family (name it to run it, or use
:func:`capedyn.evaluation.intervals.interval_benchmark`)."""

HOLDOUT_METHODS = METHODS
HOLDOUT_PAPER_REFERENCE = PAPER_REFERENCE

_FAILURES = (CapedynError, ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError)


# ---------------------------------------------------------------------------------------
# running methods

def _resolve_methods(methods, selection: str = "nested") -> dict[str, Callable[[], Any]]:
    if selection not in SELECTIONS:
        raise InputError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    registry = METHODS if selection == "nested" else FIXED_METHODS
    if methods is None:
        return {m: registry[m] for m in DEFAULT_METHODS}
    if isinstance(methods, Mapping):
        return dict(methods)
    if isinstance(methods, str):
        methods = [methods]
    unknown = [m for m in methods if m not in registry]
    if unknown:
        raise InputError(f"unknown method(s) {unknown}; valid methods: {', '.join(registry)}")
    if not methods:
        raise InputError(f"no method given; valid methods: {', '.join(registry)}")
    return {m: registry[m] for m in dict.fromkeys(methods)}


def _fit_predict(factory, split: Split, sizes) -> tuple[pd.DataFrame, Any]:
    est = factory().fit(split.train)
    pred = est.predict(split.initial, sizes)
    scores = pred[list(BENCHMARKS)].to_numpy(dtype=float)
    if scores.shape != (len(sizes), len(BENCHMARKS)):
        raise InputError(f"prediction has shape {scores.shape}, expected {(len(sizes), len(BENCHMARKS))}")
    if not np.all(np.isfinite(scores)):
        raise InputError("the method returned non-finite predictions")
    return pred, est


def _curve_sizes(split: Split, n: int = 40) -> np.ndarray:
    lo, hi = float(split.initial["params_b"]), float(split.targets["params_b"].max())
    return np.unique(np.concatenate([np.geomspace(lo, hi, n), split.targets["params_b"]]))


def _selection_row(split: Split, name: str, est) -> dict | None:
    """What was selected inside the training set (nested selection or SINDy's own CV)."""
    if hasattr(est, "selection_record"):
        rec = est.selection_record()
    elif hasattr(est, "threshold_") and hasattr(est, "cv_results_"):
        cv = est.cv_results_
        kind = str(cv["cv_kind"].iloc[0]) if len(cv) else "none"
        hit = cv[(cv["threshold"] == est.threshold_) & (cv["alpha"] == est.alpha_)]["cv_error"]
        err = float(hit.iloc[0]) if len(hit) and np.isfinite(hit.iloc[0]) else None
        rec = {"cv_kind": kind, "inner_families": list(getattr(est, "families_", [])),
               "best_params": {"threshold": est.threshold_, "alpha": est.alpha_,
                               "selection": getattr(est, "selection", "min")},
               "cv_error": err, "n_inner_fits": int(len(cv)), "seconds": None}
    else:
        return None
    return {"family": split.family, "method": name, **rec}


def _run_one(name: str, factory, split: Split, curves: bool,
             selections: list | None = None, levels: tuple[float, ...] = ()
             ) -> tuple[dict, list[dict], list[dict]]:
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
    if selections is not None:
        rec = _selection_row(split, name, est)
        if rec is not None:
            selections.append(rec)
    scores = pred[list(BENCHMARKS)].to_numpy(dtype=float)
    outside = (scores < 0) | (scores > 100)
    row.update(mae_pp=mae_points(scores, actual), rel_mae_pct=relative_mae_pct(scores, actual),
               n_out_of_range=int(outside.any(axis=1).sum()), seconds=time.perf_counter() - t0)
    long = [{"family": split.family, "method": name, "model": split.targets["model"].iloc[i],
             "params_b": float(sizes[i]), "benchmark": b, "pred": float(scores[i, k]),
             "actual": float(actual[i, k]), "abs_err": float(abs(scores[i, k] - actual[i, k])),
             "out_of_range": bool(outside[i, k])}
            for i in range(len(sizes)) for k, b in enumerate(BENCHMARKS)]
    if levels:
        row["message"] = _add_intervals(long, est, split, levels)
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


def _add_intervals(long: list[dict], est, split: Split, levels: tuple[float, ...]) -> str:
    """Give the split's point rows their conformal bounds (``lo_{L%}``/``hi_{L%}``, points)
    from the method's leave-one-training-family-out refits (nested selection: its chosen
    settings, refitted without each training family); returns a message when it failed."""
    from .conformal import interval_rows, split_intervals

    try:
        folds, bounds = split_intervals(getattr(est, "best_estimator_", est), split, levels)
    except _FAILURES as exc:
        bounds, msg = {lv: (np.full(len(long), np.nan),) * 2 for lv in levels}, \
            f"intervals failed: {type(exc).__name__}: {exc}"
    else:
        msg = "" if folds else "no interval: fewer than two training families to calibrate on"
    for p, rec in enumerate(long):  # long is model-major with five benchmarks, as the bounds
        rec.update(interval_rows(levels, bounds, p))
    return msg


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
    selections: pd.DataFrame = field(default_factory=pd.DataFrame)
    selection: str = "nested"
    interval_levels: tuple[float, ...] = ()

    @property
    def summary(self) -> pd.DataFrame:
        return summarize(self.table)

    @property
    def intervals(self) -> pd.DataFrame:
        """Per method, the forecast scores of the conformal intervals (run with
        ``interval=``): ``coverage_{L%}``, ``width_{L%}`` (points) and ``interval_score_{L%}``
        over every held-out point (:func:`capedyn.evaluation.conformal.interval_scores`)."""
        if not self.interval_levels or not len(self.predictions):
            return pd.DataFrame()
        from .conformal import interval_scores

        return interval_scores(self.predictions, self.interval_levels)

    def to_dict(self) -> dict:
        """JSON-ready: ``rows``, ``summary``, ``skipped``, ``splits``, ``selections``,
        ``selection``, ``seconds``, ``paper_reference``; with intervals also
        ``interval_levels``, ``intervals`` (per method) and ``points`` (one row per held-out
        (model, benchmark) with ``pred``, ``actual`` and the bounds)."""
        out = {"rows": _records(self.table), "summary": _records(self.summary),
               "skipped": _records(self.skipped), "splits": _records(self.splits),
               "selections": _records(self.selections), "selection": self.selection,
               "seconds": self.seconds, "paper_reference": PAPER_REFERENCE}
        if self.interval_levels:
            out.update(interval_levels=list(self.interval_levels),
                       intervals=_records(self.intervals), points=_records(self.predictions))
        return out


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
                skipped: list[dict], selection: str = "nested",
                interval=None, workers: int | None = None) -> HoldoutResult:
    factories = _resolve_methods(methods, selection)
    levels = check_levels(interval) if interval is not None else ()
    rows, preds, dense, chosen = [], [], [], []
    split_rows = [{"family": split.family, "initial_model": split.initial["model"],
                   "initial_params_b": float(split.initial["params_b"]),
                   "n_targets": len(split.targets), "train_families": split.train_families,
                   "n_train_rows": len(split.train)} for split in splits]
    initials = [split.initial.to_dict() for split in splits]
    tasks = [(split, name, factory) for split in splits for name, factory in factories.items()]

    def run(task):
        split, name, factory = task
        selections: list[dict] = []
        return (*_run_one(name, factory, split, curves, selections, levels), selections)

    t0 = time.perf_counter()
    with Progress(len(tasks), label, enabled=progress) as bar, one_blas_thread():
        for done, (row, long, curve, selections) in enumerate(
                ordered_map(run, tasks, workers, thread_context=x64), start=1):
            rows.append(row)
            preds += long
            dense += curve
            chosen += selections
            bar.update(done, family=row["family"], method=row["method"])
    return HoldoutResult(table=pd.DataFrame(rows, columns=TABLE_COLUMNS),
                         predictions=pd.DataFrame(preds, columns=PRED_COLUMNS + [
                             f"{side}_{level_tag(lv)}" for lv in levels for side in ("lo", "hi")]),
                         splits=pd.DataFrame(split_rows),
                         skipped=pd.DataFrame(skipped, columns=["family", "n_complete", "reason"]),
                         curves=pd.DataFrame(dense), initials=pd.DataFrame(initials),
                         seconds=time.perf_counter() - t0, selections=pd.DataFrame(chosen),
                         selection=selection, interval_levels=levels)


# ---------------------------------------------------------------------------------------
# public entry points

def holdout(df: pd.DataFrame, family: str, train: Sequence[str] | None = None,
            methods=None, *, curves: bool = True, progress: bool = False,
            selection: str = "nested", interval=None,
            workers: int | None = None) -> HoldoutResult:
    """Hold out one ``family`` and score every method on it.

    ``train``: training families (default: all others in ``df``). ``methods``: names from
    :data:`METHODS` (default: all), or a mapping name → factory for custom configurations.
    ``curves``: also predict a dense size grid for :func:`capedyn.plotting.plot_holdout_trajectories`.
    ``selection``: ``"nested"`` (default) selects every hyper-parameter of
    :data:`SELECTION_GRIDS` inside the training set; ``"fixed"`` uses the defaults.
    ``interval``: a nominal level or tuple of levels (e.g. ``(0.5, 0.9)``) gives every
    predicted point conformal bounds built from the training families alone (each method
    refitted once per training family with at least three complete models: that many
    extra fits per method) and :attr:`HoldoutResult.intervals` their coverage, width and
    interval score.
    ``workers``: threads the methods run on at once (default: every core this process may
    use, or ``$CAPEDYN_WORKERS``; 1 runs them one after another). The numbers do not
    depend on it.
    """
    split = make_split(df, family, train)
    return _run_splits([split], methods, curves=curves, progress=progress,
                       label=f"holdout {family}", skipped=[], selection=selection,
                       interval=interval, workers=workers)


def crossval(df: pd.DataFrame, families: Sequence[str] | None = None, methods=None,
             min_models: int = 3, *, progress: bool = True,
             selection: str = "nested", interval=None,
             workers: int | None = None) -> HoldoutResult:
    """P2: leave one family out in turn, training on every other family of ``df``.

    ``families`` limits which families are held out (default: all); those with fewer than
    ``min_models`` complete models are skipped with the reason in ``result.skipped``.
    Progress goes to stderr. ``selection``, ``interval`` and ``workers`` (the (family,
    method) pieces run on that many threads) as in :func:`holdout`.
    """
    known = list(dict.fromkeys(df["family"]))
    if families is not None:
        unknown = [f for f in families if f not in known]
        if unknown:
            raise DataError(f"unknown family {unknown}", file="<table>", column="family",
                            hint=f"Known families: {', '.join(known)}")
    _resolve_methods(methods, selection)  # fail on a bad name before any work
    counts = complete_models(df).groupby("family").size()
    splits, skipped = [], []
    for fam in (known if families is None else list(dict.fromkeys(families))):
        n = int(counts.get(fam, 0))
        if n < min_models:
            skipped.append({"family": fam, "n_complete": n,
                            "reason": f"{n} complete model(s), fewer than min_models={min_models}"})
            continue
        splits.append(make_split(df, fam))
    if interval is not None:
        check_levels(interval)  # fail on a bad level before any work
    return _run_splits(splits, methods, curves=False, progress=progress, label="crossval",
                       skipped=skipped, selection=selection, interval=interval,
                       workers=workers)


def p1(df: pd.DataFrame, methods=None, *, curves: bool = True, progress: bool = False,
       selection: str = "nested", workers: int | None = None) -> HoldoutResult:
    """The paper's split: train on Pythia only, predict Llama-2."""
    return holdout(df, "Llama-2", train=["Pythia"], methods=methods, curves=curves,
                   progress=progress, selection=selection, workers=workers)


# ---------------------------------------------------------------------------------------
# figures
