"""Every figure of the report: which stage result it is drawn from (with
:mod:`capedyn.plotting`) and its caption. The run saves each as ``figures/<stem>.png``;
the templates place it with ``{{ figure("<stem>") }}``."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["FIGURES", "CAPTIONS", "FIGURE_DRAWERS", "stage_figures"]

FIGURES: dict[str, str] = {
    "tqa_vs_n": "TruthfulQA against size by family, with the tax/bonus regions",
    "gamma12_vs_n": "running coupling γ12 against size, population fit and Nc interval",
    "ode_trajectories": "coupling-ODE trajectories against the data, per family",
    "nc_forest": "each family's Nc, coupling-level posterior (forest plot)",
    "holdout_errors": "held-out family error by method",
    "frontier_h": "frontier SWE-bench vs GPQA with the h-field",
    "internal_coupling": "the authors' published internal coupling against size, by family",
}
"""Figure file stem → what it shows; every one is written to ``figures/<stem>.png``."""

CAPTIONS: dict[str, str] = {
    "gamma12_vs_n": f"{FIGURES['gamma12_vs_n']}: every usable pair at the geometric mean of "
                    "its two sizes; OLS (solid) and Theil–Sen (dashed) population fits over all "
                    "families; shaded: 95% bootstrap interval of Nc (Pythia, Llama-1, Llama-2).",
    "tqa_vs_n": f"{FIGURES['tqa_vs_n']}. Background: tax region below the 95% Nc interval, "
                "bonus region above it, the interval itself grey. Markers: filled when the "
                "algebraic classifier TQA > sqrt(0.187·HS) puts the model in the bonus "
                "phase, hollow in the tax phase.",
    "ode_trajectories": f"{FIGURES['ode_trajectories']}: lines are the all-family coupling ODE "
                        "integrated from each family's smallest complete model (star), dots the "
                        "measured scores.",
    "nc_forest": f"{FIGURES['nc_forest']}: posterior median (dot), 68% (thick) and 95% (thin) "
                 "intervals, coupling-level model; in brackets the number of usable pairs; "
                 "shaded: the paper's bootstrap 95% interval.",
    "nc_forest_ode": "posterior of the ODE's field parameter Nc_f by family, ODE-level model "
                     "(same layout as above; in brackets the number of observed models after "
                     "each family's smallest): a diagnostic of the ODE, not the family's Nc.",
    "holdout_llama2": "P1: the predicted Llama-2 trajectories of the six methods with the "
                      "lowest error (trained on Pythia, started from Llama2-7B, star) against "
                      "the measured 13B and 70B models; every method's error is in the table.",
    "holdout_errors": f"{FIGURES['holdout_errors']}: P1 (Pythia → Llama-2) and the P2 mean and "
                      "median over held-out families, relative MAE %.",
    "frontier_h": f"{FIGURES['frontier_h']}: the line fitted in this run with its bootstrap "
                  "band; vertical bars are each model's h; stars are post-cutoff models, "
                  "which are not in the fit.",
    "internal_coupling": f"{FIGURES['internal_coupling']}: circles per-unit net coupling, "
                         "squares HS–TQA pair coupling; hollow where every layer holds the "
                         "same value.",
}
"""Figure file stem → the caption under it in the report."""


Drawers = list[tuple[str, Callable[[], Any]]]


def _coupling(r) -> Drawers:
    from ..plotting import family_colours, plot_gamma12, plot_tqa_phases

    colours = family_colours(r.base["family"])
    return [("gamma12_vs_n", lambda: plot_gamma12(r.pairs, r.fit_all, r.boot, colours=colours)),
            ("tqa_vs_n", lambda: plot_tqa_phases(r.base, r.boot, colours=colours))]


def _ode(r) -> Drawers:
    from ..plotting import plot_ode_trajectories

    return [("ode_trajectories", lambda: plot_ode_trajectories(r.all_families, r.base)[0])]


def _posterior(r) -> Drawers:
    from ..plotting import plot_nc_forest

    out = [("nc_forest", lambda: plot_nc_forest(r.coupling))]
    if r.ode is not None:
        out.append(("nc_forest_ode", lambda: plot_nc_forest(r.ode)))
    return out


def _holdout(r) -> Drawers:
    from ..plotting import plot_holdout_errors, plot_holdout_trajectories

    return [("holdout_llama2", lambda: plot_holdout_trajectories(r.p1, "Llama-2")),
            ("holdout_errors", lambda: plot_holdout_errors(r.p1.table, r.p2.summary))]


def _frontier(r) -> Drawers:
    from ..plotting import plot_frontier

    return [("frontier_h", lambda: plot_frontier(r.frontier, r.line))]


def _steering(r) -> Drawers:
    from ..plotting import plot_internal_coupling

    return [("internal_coupling", lambda: plot_internal_coupling(r.coupling))]


FIGURE_DRAWERS: dict[str, Callable[[Any], Drawers]] = {
    "coupling": _coupling, "ode": _ode, "posterior": _posterior, "holdout": _holdout,
    "frontier": _frontier, "steering": _steering}
"""Stage name → ``drawers(result)``: ``(stem, draw)`` for each figure of the stage, in the
order they are written; ``draw()`` returns an Axes or a Figure. A new stage with figures
adds an entry."""


def stage_figures(stage: str, result: Any) -> Drawers:
    """The figures of ``stage`` drawn from its result (none for a stage without figures)."""
    drawers = FIGURE_DRAWERS.get(stage)
    return drawers(result) if drawers else []
