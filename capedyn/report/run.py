"""One run of :func:`reproduce`: check the output folder, compute the six stage results in
order (drawing each stage's figures as soon as its result exists), render the report from
the results, and write ``report.md``, ``report.html`` and ``summary.json`` before moving the
finished folder into place."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._errors import InputError, OutputError
from .._io import atomic_write_json, atomic_write_text
from .._jax import scoped_x64
from .._json import to_jsonable
from .config import RunConfig
from .figures import CAPTIONS, stage_figures
from .._publish import staged_folder
from .output import writable
from .render import render_document
from .s1_data import compute_data
from .s2_coupling import compute_coupling
from .s3_ode import compute_ode
from .s4_posterior import compute_posterior
from .s5_holdout import compute_holdout
from .s6_frontier import compute_frontier
from .s7_steering import compute_steering
from .s8_intervals import compute_intervals

__all__ = ["reproduce", "STAGES", "SUMMARY_KEYS"]

STAGES: tuple[str, ...] = ("data", "coupling", "ode", "posterior", "holdout", "frontier",
                           "steering", "intervals")

SUMMARY_KEYS: tuple[str, ...] = ("nc_b", "nc_ci95_b", "llama2_rel_mae_pct",
                                 "lofo_mean_rel_mae_pct", "frontier_slope", "frontier_intercept")
"""Keys :func:`reproduce` always writes to ``summary.json`` (beside quick, seed, timings)."""


class _Run:
    """State shared by the stages: config, output folder, results, summary, timings and the
    figures written so far (stem → caption)."""

    def __init__(self, out: Path, cfg: RunConfig, progress: bool):
        self.out, self.cfg, self.progress = out, cfg, progress
        self.fig_dir = out / "figures"
        self.results: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.figures: dict[str, str] = {}
        self.t0 = time.perf_counter()

    def log(self, msg: str) -> None:
        if self.progress:
            sys.stderr.write(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}\n")
            sys.stderr.flush()

    @contextmanager
    def stage(self, name: str):
        k = STAGES.index(name) + 1
        self.log(f"stage {k}/{len(STAGES)} {name}: start")
        t = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t, 2)
        self.log(f"stage {k}/{len(STAGES)} {name}: done in {self.timings[name]:.1f}s")

    def save_figure(self, stem: str, draw: Callable[[], Any], caption: str) -> None:
        """``draw()`` returns an Axes or a Figure (capedyn.plotting's convention); it is
        written as ``figures/<stem>.png`` (atomically) and shown in the report under
        ``caption`` where its section's template places it."""
        from ..plotting import save_figure

        drawn = draw()
        save_figure(getattr(drawn, "figure", drawn), self.fig_dir / f"{stem}.png", dpi=110)
        self.figures[stem] = caption


# ------------------------------------------------------------------ the stages, in order

_COMPUTE: dict[str, Callable[[_Run], Any]] = {
    "data": lambda run: compute_data(run.cfg.table),
    "coupling": lambda run: compute_coupling(run.results["data"], run.cfg, log=run.log),
    "ode": lambda run: compute_ode(run.results["data"], run.cfg, log=run.log,
                                   progress=run.progress),
    "posterior": lambda run: compute_posterior(run.results["data"], run.results["ode"],
                                               run.cfg, log=run.log,
                                               coupling=run.results.get("coupling")),
    "holdout": lambda run: compute_holdout(run.results["data"], run.cfg, log=run.log,
                                           progress=run.progress),
    "frontier": lambda run: compute_frontier(run.results["data"], run.results.get("coupling"),
                                             run.cfg, posterior=run.results.get("posterior")),
    "steering": lambda run: compute_steering(),
    "intervals": lambda run: compute_intervals(run.results["data"], run.cfg, log=run.log,
                                               progress=run.progress),
}
"""Stage name → its result, computed from the config and the results of earlier stages.
A new stage adds an entry here, its name to :data:`STAGES`, a template to
:data:`capedyn.report.render.SECTIONS` and, if it draws any, its figures to
:data:`capedyn.report.figures.FIGURE_DRAWERS`.

The stages run one after another on purpose. Computing the held-out stage (which needs
only the data) in a second thread beside stages 2-4 was measured on two cores, each run
cold: the same summary.json to the last bit, but 474.7 s (two sweep threads, NUTS on two
devices) and 479.6 s (one sweep thread) against 471.9 s in order, with 11 % and 6 % more
CPU seconds; 449.7 s with the process on one device (the coupling-level NUTS costs 82 CPU
seconds there against 124 on two devices, for 77 s of wall time against 73), where the
ODE-level NUTS ran its last 100 s alone on one core. The run in order already keeps both
cores about 80 % busy, so a schedule can win at most its last 20 %."""


def _run_stage(run: _Run, name: str) -> None:
    """Compute the stage's result, keep it, write its figures and its summary entries."""
    result = _COMPUTE[name](run)
    run.results[name] = result
    for stem, draw in stage_figures(name, result):
        run.save_figure(stem, draw, CAPTIONS[stem])
    run.summary.update(result.summary())


_STAGE_FUNCS: dict[str, Callable[[_Run], None]] = {
    name: partial(_run_stage, name=name) for name in STAGES}
"""Stage name → ``f(run)``. :func:`reproduce` reads it when it runs, so a test can replace
the stages by stand-ins (``monkeypatch.setattr(capedyn.report.run, "_STAGE_FUNCS", ...)``)
and run everything around them (folder checks, staging, rendering, summary)."""


def _stage_funcs() -> dict[str, Callable[[_Run], None]]:
    return _STAGE_FUNCS


# ------------------------------------------------------------------ the run

@scoped_x64
def reproduce(out_dir: str | Path = "reproduce_out", quick: bool = False, seed: int = 0,
              progress: bool = True, force: bool = False, table: str = "measured"
              ) -> dict[str, Any]:
    """Run the whole analysis and write ``report.md``, ``report.html``, ``figures/*.png``
    and ``summary.json`` into ``out_dir``; return the summary dict.

    ``out_dir`` is checked before any computation: an ``OSError``
    (:class:`~capedyn._errors.OutputError`) names it when it cannot be created or
    written, when it is a file, when it is a non-empty folder that holds no run, and when
    it holds a previous run and ``force`` is False. The run is built in a temporary
    sibling folder (``.<name>.partial-*``) and moved into place only when complete, so
    ``out_dir`` never mixes two runs and a failed or interrupted run leaves it as it was
    (the temporary folder is removed). ``force=True`` replaces a previous run. A write
    that fails (e.g. a full disk) names the file, under ``out_dir``.

    ``quick`` shortens every fit and sample count (the report says so at the top).
    ``seed`` seeds every random step (bootstrap, NUTS, fits). ``table`` names the shipped
    base-model table every stage uses (``"measured"``, the default, or ``"paper"``: the
    authors' table with their mixed Pythia rows); the report and ``summary.json`` say
    which. Progress lines (stage,
    elapsed seconds) go to stderr unless ``progress`` is False.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}")
    from ..data import BASE_TABLES

    if table not in BASE_TABLES:
        raise InputError(f"table must be one of {', '.join(BASE_TABLES)}, got {table!r}")
    out = writable(out_dir, force=force)
    cfg = RunConfig.make(quick=bool(quick), seed=int(seed), table=table)
    with staged_folder(out, out_dir, recheck=lambda: writable(out_dir, force=force)) as stage_dir:
        try:
            run, figures, summary = _write_run(stage_dir, cfg, progress)
        except OSError as exc:
            if isinstance(exc, OutputError) and str(stage_dir) in str(exc):
                # name the file the user will look for, not the temporary folder
                err = OutputError(str(exc).replace(str(stage_dir), str(out_dir).rstrip("/"))
                                  + f"; nothing was changed in '{out_dir}'")
                err.errno = exc.errno
                raise err from None
            raise
    run.log(f"wrote {out / 'report.md'}, report.html, summary.json and "
            f"{len(figures)} figures in {run.timings['total']:.1f}s")
    return summary


def _write_run(stage_dir: Path, cfg: RunConfig, progress: bool):
    """Run every stage and write the whole run into ``stage_dir``."""
    from .._version import __version__

    (stage_dir / "figures").mkdir()
    run = _Run(stage_dir, cfg, progress)
    generated = time.strftime("%Y-%m-%d %H:%M")
    stage_funcs = _stage_funcs()
    for name in STAGES:
        with run.stage(name):
            stage_funcs[name](run)
    run.timings["total"] = round(time.perf_counter() - run.t0, 2)

    figures = [f"figures/{stem}.png" for stem in run.figures]
    summary = to_jsonable({
        "package": "capedyn", "version": __version__, "quick": cfg.quick, "seed": cfg.seed,
        "table": cfg.table,
        **{k: run.summary.get(k) for k in SUMMARY_KEYS},
        **{k: v for k, v in run.summary.items() if k not in SUMMARY_KEYS},
        "config": asdict(cfg),
        "timings_s": dict(run.timings),
        "files": ["report.md", "report.html", "summary.json", *figures],
    })
    doc = render_document(run.results, cfg, version=__version__, generated=generated,
                          timings=run.timings, stages=STAGES, figures=run.figures)
    atomic_write_text(stage_dir / "report.md", doc.to_markdown())
    atomic_write_text(stage_dir / "report.html", doc.to_html(stage_dir))
    atomic_write_json(stage_dir / "summary.json", summary)
    return run, figures, summary
