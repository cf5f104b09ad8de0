"""The coupling ODE's posterior predictive intervals, scored on held-out families (P2).

Each family with enough complete models is held out in turn, as P2 holds it out. On the
other families alone the coupling ODE is fitted (the benchmark's ``coupling_ode`` at its
fixed settings) and the ODE-level posterior is sampled with that fit's field held fixed;
the held-out family's smallest model then starts the posterior predictive
(:func:`capedyn.inference.posterior_predictive.predictive_interval`): a new family drawn
from the population, solved forward, observed with the sampled noise. Nothing of the
held-out family beyond its smallest model reaches the field, the posterior or the
interval. Every held-out (model, benchmark) point is scored with the conformal intervals'
own measures (:func:`capedyn.evaluation.intervals.interval_scores`: coverage, mean width,
interval score, and the relative MAE of the predictive median).

The posteriors of the folds share one compiled sampler: their tables are padded to the
whole table's largest family (:func:`capedyn.inference.models.pad_models`), and every
fold holds the same number of training families.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .._conformal import check_levels, level_tag
from .._progress import Progress
from ..data.tables import BENCHMARKS, complete_models
from .intervals import LEVELS, interval_scores
from .splits import make_split

__all__ = ["METHOD", "PosteriorIntervalResult", "posterior_interval_benchmark"]

METHOD = "coupling_ode_posterior"
"""The method name of these intervals in the points and the table."""


@dataclass
class PosteriorIntervalResult:
    """``points``: one row per held-out (family, model, benchmark) with ``pred`` (the
    predictive median), ``actual`` and ``lo_50``/``hi_50``/``lo_90``/``hi_90`` (percent);
    ``table``: :func:`capedyn.evaluation.intervals.interval_scores` of the points;
    ``folds``: per held-out family the sampler's diagnostics and seconds."""

    points: pd.DataFrame
    table: pd.DataFrame
    folds: pd.DataFrame
    levels: tuple[float, ...] = LEVELS
    settings: dict = field(default_factory=dict)
    seconds: float = float("nan")

    def to_dict(self) -> dict:
        from .._json import to_jsonable

        return to_jsonable({"levels": list(self.levels), "table": self.table.to_dict("records"),
                            "folds": self.folds.to_dict("records"), "settings": self.settings,
                            "seconds": self.seconds})


def _coupling_ode():
    from .heldout import FIXED_METHODS

    return FIXED_METHODS["coupling_ode"]()


def posterior_interval_benchmark(df: pd.DataFrame | None = None, *,
                                 families: Sequence[str] | None = None,
                                 levels: Sequence[float] = LEVELS, min_models: int = 3,
                                 chains: int = 2, samples: int = 250, warmup: int = 250,
                                 seed: int = 0, n_draws: int | None = None,
                                 estimator: Callable[[], Any] = _coupling_ode,
                                 progress: bool = True) -> PosteriorIntervalResult:
    """Leave each family out and score the ODE-level posterior predictive intervals of its
    models (module docstring).

    ``df``: base-model table (default: the shipped one); ``families``: the families to
    hold out (default: every family with at least ``min_models`` complete models);
    ``levels``: nominal coverages; ``chains``/``samples``/``warmup``/``seed``: NUTS per
    fold; ``n_draws``: population draws per prediction (default all); ``estimator``:
    factory of the fitted coupling ODE whose field the posterior holds fixed."""
    from ..data.tables import load_base_models
    from ..inference.models import pad_models, trajectory_data
    from ..inference.posterior_predictive import predictive_interval
    from ..inference.sampling import sample_posterior

    levels = check_levels(levels)
    df = load_base_models() if df is None else df
    counts = complete_models(df).groupby("family").size()
    held = [f for f in (families or dict.fromkeys(df["family"])) if counts.get(f, 0) >= min_models]
    width = int(counts.max())  # every fold padded to the largest family: one sampler shape
    rows, folds = [], []
    t0 = time.perf_counter()
    with Progress(len(held), "posterior intervals", enabled=progress) as bar:
        for i, fam in enumerate(held):
            bar.update(i, family=fam)
            t1 = time.perf_counter()
            split = make_split(df, fam)
            est = estimator().fit(split.train)
            data = pad_models(trajectory_data(split.train), width)
            post = sample_posterior(data, model="ode", fit=est, chains=chains, samples=samples,
                                    warmup=warmup, seed=seed, progress=False)
            sizes = split.targets["params_b"].to_numpy(float)
            tab = predictive_interval(post, split.initial, sizes, list(levels), n_draws=n_draws,
                                      seed=seed)
            actual = split.targets[list(BENCHMARKS)].to_numpy(float).reshape(-1)
            models = np.repeat(split.targets["model"].to_numpy(), len(BENCHMARKS))
            for p, r in enumerate(tab.to_dict("records")):
                row = {"family": fam, "method": METHOD, "model": models[p],
                       "params_b": r["params_b"], "benchmark": r["benchmark"],
                       "pred": r["median"], "actual": float(actual[p])}
                for lv in levels:
                    sfx = "" if len(levels) == 1 else f"_{level_tag(lv)}"
                    row[f"lo_{level_tag(lv)}"], row[f"hi_{level_tag(lv)}"] = (r[f"lower{sfx}"],
                                                                              r[f"upper{sfx}"])
                rows.append(row)
            folds.append({"family": fam, "n_train_families": len(post.families),
                          "divergences": post.divergences,
                          "rhat_max": float(post.table["rhat_max"].max()),
                          "ess_bulk_min": float(post.table["ess_bulk_min"].min()),
                          "n_draws": int(tab["n_draws"].iloc[0]),
                          "seconds": round(time.perf_counter() - t1, 1)})
        bar.update(len(held))
    points = pd.DataFrame(rows)
    return PosteriorIntervalResult(
        points=points, table=interval_scores(points, levels) if len(points) else pd.DataFrame(),
        folds=pd.DataFrame(folds), levels=levels, seconds=time.perf_counter() - t0,
        settings={"chains": chains, "samples": samples, "warmup": warmup, "seed": seed,
                  "n_draws": n_draws, "min_models": min_models})
