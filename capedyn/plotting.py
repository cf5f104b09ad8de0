"""Figures of capedyn's results, drawn onto matplotlib Axes that the caller owns.

Convention for every function here:

* ``ax=None`` (or ``fig=None`` for a multi-panel figure) makes a new figure with
  :func:`matplotlib.pyplot.subplots`; pass an Axes to draw into a figure of your own.
* The function draws and returns the Axes (or the Figure). It never saves, never calls
  ``plt.show()`` and never selects a backend: a notebook keeps its inline backend and a
  script keeps whatever it chose.
* Saving is the caller's: ``ax.figure.savefig("out.png")``. The command line and
  ``capedyn reproduce`` use :func:`save_figure` (atomic PNG write, figure closed), and
  build their figures with :func:`new_figure`, which makes a figure without pyplot so that
  no GUI window can appear in a headless run.

Units follow the rest of the library: scores in percent (0-100), sizes in billions of
parameters, h in GPQA points.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from ._errors import InputError, InputTypeError

if TYPE_CHECKING:  # annotations only: matplotlib loads when a figure is drawn
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_frontier", "plot_tqa_phases", "plot_gamma12", "plot_ode_trajectories",
           "plot_holdout_errors", "plot_holdout_trajectories", "plot_method_errors",
           "plot_nc_forest",
           "family_colours", "new_figure", "save_figure"]


def _axes(ax: "Axes | None", figsize: tuple[float, float]) -> "Axes":
    """``ax`` itself, or the Axes of a new pyplot figure of ``figsize`` inches."""
    if isinstance(ax, (str, Path)):
        raise InputTypeError(f"ax must be a matplotlib Axes or None, got the path {str(ax)!r}: "
                        "plotting functions return the Axes and do not save; write the "
                        "file with ax.figure.savefig(path)")
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def new_figure(figsize: tuple[float, float] = (8.0, 5.0), dpi: float = 120) -> "Figure":
    """A figure that is not registered with pyplot (no window, no backend involved);
    draw into ``fig.subplots()`` and write it with :func:`save_figure`."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=dpi)


def save_figure(fig: "Figure", path: str | Path, *, dpi: float | None = None,
                bbox_inches: str | None = "tight", replace: bool = True) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temporary file, then rename) and return
    the path. ``replace=False`` leaves a file already at ``path`` as it is (an
    :class:`~capedyn._errors.OutputError` says so). The figure is closed in pyplot
    afterwards (it is meant for figures made only to be written, as the command line and
    the report do)."""
    from ._io import atomic_write

    try:
        return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=dpi,
                                                       bbox_inches=bbox_inches),
                            replace=replace)
    finally:
        plt = sys.modules.get("matplotlib.pyplot")  # only if the caller already uses pyplot
        number = getattr(fig, "number", None)  # set only on figures pyplot manages
        if plt is not None and number is not None and plt.fignum_exists(number):
            plt.close(fig)  # a figure pyplot never knew is left alone


# --------------------------------------------------------------------------- frontier

def plot_frontier(df: "pd.DataFrame", line: Any, ax: "Axes | None" = None) -> "Axes":
    """The frontier h-field: SWE-bench Verified (x, percent) against GPQA Diamond (y,
    percent), one colour per lab, the population line (with its bootstrap band when
    ``line`` is a :class:`capedyn.PopulationLine`), each model's h drawn as a vertical bar
    from the line to the model, and post-cutoff models as stars.

    ``df`` is a frontier table (:func:`capedyn.load_frontier_models`); every row is drawn,
    post-cutoff ones included. ``line`` is a PopulationLine, a mapping with ``slope`` and
    ``intercept`` (e.g. :data:`capedyn.PAPER_COEFFICIENTS`) or a ``(slope, intercept)``
    pair. Returns the Axes drawn on.
    """
    import matplotlib

    from .coupling.frontier import (
        GPQA, POST_CUTOFF, SWE, PopulationLine, _coefficients, _frontier_rows,
    )

    a, b, label = _coefficients(line)
    rows = _frontier_rows(df, include_post_cutoff=True)
    x, y = rows[SWE].to_numpy(), rows[GPQA].to_numpy()
    post = (rows["subset"].astype(str).str.strip().str.lower() == POST_CUTOFF).to_numpy() \
        if "subset" in rows.columns else np.zeros(len(rows), dtype=bool)
    labs = list(dict.fromkeys(rows["lab"]))
    cmap = matplotlib.colormaps["tab10" if len(labs) <= 10 else "tab20"]
    colour = {lab: cmap(i % cmap.N) for i, lab in enumerate(labs)}

    ax = _axes(ax, (10.0, 6.0))
    grid = np.linspace(max(0.0, x.min() - 3), min(100.0, x.max() + 3), 200)
    if isinstance(line, PopulationLine) and line.boot_slopes.size:
        lo, hi = line.band(grid)
        ax.fill_between(grid, lo, hi, color="0.85",
                        label=f"{100 * line.confidence:.0f}% bootstrap band")
    ax.plot(grid, a * grid + b, color="0.2", lw=1.5, label=label)
    for lab in labs:
        m = (rows["lab"] == lab).to_numpy()
        ax.vlines(x[m], a * x[m] + b, y[m], color=colour[lab], alpha=0.45, lw=1.2)
        ax.scatter(x[m & ~post], y[m & ~post], color=colour[lab], s=36, label=lab, zorder=3)
        if (m & post).any():
            ax.scatter(x[m & post], y[m & post], color=colour[lab], marker="*", s=150,
                       edgecolors="k", linewidths=0.8, zorder=4)
    if post.any():
        ax.scatter([], [], marker="*", s=150, facecolors="none", edgecolors="k",
                   label="post-cutoff (after the paper's freeze)")
    ax.set_xlabel("SWE-bench Verified (%)")
    ax.set_ylabel("GPQA Diamond (%)")
    ax.set_title("Frontier h-field: h = GPQA - (a*SWE + b), bars from the line")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3)
    return ax


# --------------------------------------------------------------------------- running coupling

_TAX, _BONUS, _BAND = "#f6d5d5", "#d8ecd3", "#e4e4e4"


def family_colours(names) -> dict[str, Any]:
    """One tab20 colour per family name, assigned in case-insensitive alphabetical order so a
    family keeps its colour across figures."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    ordered = sorted(dict.fromkeys(names), key=str.lower)
    return {f: cmap(i % cmap.N) for i, f in enumerate(ordered)}


def _phase_background(ax: "Axes", boot: Any, xlim: tuple[float, float]) -> None:
    """Tax below the 95% Nc interval, bonus above it, the interval grey, the median dashed."""
    lo, hi = boot.ci95_b
    ax.axvspan(xlim[0], lo, color=_TAX, zorder=0, label="tax region (γ12 < 0)")
    ax.axvspan(lo, hi, color=_BAND, zorder=0, label="Nc 95% interval")
    ax.axvspan(hi, xlim[1], color=_BONUS, zorder=0, label="bonus region (γ12 > 0)")
    ax.axvline(boot.median_b, color="0.3", ls="--", lw=1,
               label=f"Nc median {boot.median_b:.3g}B")
    ax.set_xlim(*xlim)


def _finish_log_x(ax: "Axes", xlabel: str, ylabel: str, title: str) -> "Axes":
    """Log size axis, labels, a light grid and the legend outside on the right."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return ax


def plot_tqa_phases(df: "pd.DataFrame", boot: Any, ax: "Axes | None" = None,
                    colours: dict[str, Any] | None = None) -> "Axes":
    """TruthfulQA (percent) against N (billions, log axis) for every family of a base-model
    table, over the tax / Nc-interval / bonus regions of an Nc bootstrap ``boot``
    (:func:`capedyn.bootstrap_nc`). Markers are filled where the algebraic classifier says
    bonus and hollow where it says tax. Returns the Axes."""
    from .coupling.phase import phase_classifier

    d = df.dropna(subset=["hellaswag", "truthfulqa"])
    colours = colours or family_colours(d["family"])
    ax = _axes(ax, (10.0, 6.0))
    xlim = (float(d["params_b"].min()) / 1.6, float(d["params_b"].max()) * 1.6)
    _phase_background(ax, boot, xlim)
    for fam, g in d.groupby("family", sort=False):
        g = g.sort_values("params_b")
        c = colours[fam]
        ax.plot(g["params_b"], g["truthfulqa"], "-", color=c, lw=1.3, label=fam, zorder=2)
        bonus = np.asarray(phase_classifier(g["hellaswag"].to_numpy(),
                                            g["truthfulqa"].to_numpy()).phase) == "bonus"
        ax.scatter(g["params_b"][bonus], g["truthfulqa"][bonus], color=c, s=36, zorder=3)
        ax.scatter(g["params_b"][~bonus], g["truthfulqa"][~bonus], facecolors="white",
                   edgecolors=[c], s=36, linewidths=1.4, zorder=3)
    ax.scatter([], [], color="0.3", s=30, label="classifier: bonus")
    ax.scatter([], [], facecolors="white", edgecolors="0.3", s=30, label="classifier: tax")
    return _finish_log_x(ax, "N (billions of parameters)", "TruthfulQA MC2 (%)",
                         "TruthfulQA vs scale: the alignment tax and the bonus phase")


def plot_gamma12(pairs: "pd.DataFrame", fit: Any, boot: Any, ax: "Axes | None" = None,
                 colours: dict[str, Any] | None = None) -> "Axes":
    """γ12 (TQA points per HS point) of every usable pair of :func:`capedyn.running_coupling`
    against the pair's geometric-mean size (billions, log axis), with the OLS and Theil–Sen
    population fits ``fit`` (:func:`capedyn.population_fit`), γ12 = 0 and the Nc bootstrap
    interval ``boot``. Returns the Axes."""
    t = pairs[~pairs["skipped"].astype(bool)]
    colours = colours or family_colours(t["family"])
    ax = _axes(ax, (10.0, 6.0))
    xlim = (float(t["params_b_mid"].min()) / 1.6, float(t["params_b_mid"].max()) * 1.6)
    _phase_background(ax, boot, xlim)
    ax.axhline(0.0, color="k", lw=0.8)
    for fam, g in t.groupby("family", sort=False):
        ax.scatter(g["params_b_mid"], g["gamma12"], color=colours[fam], s=40, label=fam,
                   edgecolors="k", linewidths=0.4, zorder=3)
    grid = np.geomspace(*xlim, 200)
    lx = np.log10(grid) + 9.0
    ax.plot(grid, fit.A * lx + fit.B, color="k", lw=1.8,
            label=f"OLS: γ12 = {fit.A:.3f}·log10 N {fit.B:+.3f}")
    ax.plot(grid, fit.robust_A * lx + fit.robust_B, color="k", lw=1.2, ls=":",
            label=f"Theil–Sen: {fit.robust_A:.3f}·log10 N {fit.robust_B:+.3f}")
    return _finish_log_x(ax, "N (billions of parameters, geometric mean of the pair)",
                         "γ12 (TQA points per HS point)", "Running coupling γ12(N)")


# --------------------------------------------------------------------------- coupling ODE

def plot_ode_trajectories(model: Any, df: "pd.DataFrame", ax: Any = None, *,
                          families: Sequence[str] | None = None, n_grid: int = 48,
                          fig: "Figure | None" = None) -> Any:
    """Small multiples, one panel per family fitted by ``model`` (a fitted
    :class:`capedyn.CouplingODE`; ``families`` picks some): its five predicted benchmark
    trajectories (percent) integrated from the family's smallest complete model over N
    (billions, log axis), with the measured scores as dots and the start as a star.

    ``ax``: None (a new figure), one Axes (one family: pass ``families=[name]`` when the
    fit holds several) or an array of Axes, one per family. Returns the Axes drawn into:
    that one Axes, or a flat array of them (``axes[0].figure.savefig(...)``). ``fig=`` is
    deprecated (it draws into that figure and returns it, as before)."""
    import warnings

    import matplotlib
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from .dynamics.state import SHORT
    from .data.tables import BENCHMARKS, complete_models

    if isinstance(ax, Figure):  # the old positional signature: (model, df, fig)
        fig, ax = ax, None
    legacy = fig is not None
    if legacy:
        warnings.warn("plot_ode_trajectories(fig=...) is deprecated: pass ax= (an Axes or an "
                      "array of them) or nothing; it returns the Axes", DeprecationWarning,
                      stacklevel=2)
        if ax is not None:
            raise InputTypeError("pass ax= or fig=, not both")
    fams = list(model.starts_) if families is None else list(families)
    unknown = [f for f in fams if f not in model.starts_]
    if unknown or not fams:
        raise InputTypeError(f"families {unknown or fams} are not in this fit; it holds "
                             f"{', '.join(model.starts_)}")
    made = ax is None
    if made:
        ncol = min(4, len(fams))
        nrow = -(-len(fams) // ncol)
        fig = fig if fig is not None else _figure((3.4 * ncol, 2.8 * nrow))
        panels = np.ravel(fig.subplots(nrow, ncol, squeeze=False))
    elif isinstance(ax, Axes):
        if len(fams) != 1:
            raise InputTypeError(f"ax is one Axes but {len(fams)} families would be drawn; "
                                 "pass families=[name] or one Axes per family")
        panels = np.array([ax], dtype=object)
    else:
        panels = np.ravel(np.asarray(ax, dtype=object))
        if len(panels) < len(fams) or not all(isinstance(a, Axes) for a in panels):
            raise InputTypeError(f"ax must be an Axes or an array of at least {len(fams)} "
                                 f"Axes (one per family), got {type(ax).__name__}")
    full = complete_models(df)
    colours = dict(zip(BENCHMARKS, matplotlib.colormaps["tab10"].colors))
    for a, fam in zip(panels, fams):
        _trajectory_panel(a, model, full, fam, colours, n_grid)
    for a in panels[len(fams):] if made else ():
        a.axis("off")
    handles = [Line2D([], [], color=colours[b], marker="o", label=SHORT[b]) for b in BENCHMARKS]
    if made:
        fig.legend(handles=handles, loc="lower center", ncol=len(BENCHMARKS), fontsize=8,
                   frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.supxlabel("N (billions of parameters)", fontsize=9, y=0.03)
        fig.supylabel("score (%)", fontsize=9)
        fig.suptitle("Coupling ODE vs data", fontsize=11)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
    else:
        panels[0].legend(handles=handles, fontsize=7, frameon=False)
        for a in panels[:len(fams)]:
            a.set_xlabel("N (billions of parameters)", fontsize=8)
            a.set_ylabel("score (%)", fontsize=8)
    if legacy:
        return fig
    drawn = panels[:len(fams)]
    return drawn[0] if isinstance(ax, Axes) else drawn


def _trajectory_panel(ax, model, full, fam: str, colours: dict, n_grid: int) -> None:
    from matplotlib import ticker

    from .data import BENCHMARKS

    start = model.starts_[fam]
    g = full[full["family"] == fam].sort_values("params_b")
    p_hi = max(float(g["params_b"].max()) if len(g) else 0.0, start["params_b"] * 1.01)
    grid = np.geomspace(start["params_b"], p_hi, n_grid)
    init = {"params_b": start["params_b"], **dict(zip(BENCHMARKS, start["scores"]))}
    curve = model.predict(init, grid, family=fam)[list(BENCHMARKS)].to_numpy(dtype=float)
    for k, b in enumerate(BENCHMARKS):
        ax.plot(grid, curve[:, k], color=colours[b], lw=1.4)
        ax.scatter(g["params_b"], g[b], color=colours[b], s=14, zorder=3)
        ax.scatter([start["params_b"]], [start["scores"][k]], color=colours[b], marker="*",
                   s=70, edgecolors="k", linewidths=0.4, zorder=4)
    ax.set_xscale("log")
    # plain size labels at 1-2-5 steps (a family often spans less than a decade)
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_title(fam, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, lw=0.5)


def _figure(figsize: tuple[float, float]) -> "Figure":
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize)


# --------------------------------------------------------------------------- held-out benchmark

def plot_holdout_errors(p1_table: "pd.DataFrame", p2_summary: "pd.DataFrame",
                        ax: "Axes | None" = None) -> "Axes":
    """Grouped bars per method: relative MAE (%) on P1 (Pythia → Llama-2, from a
    :class:`capedyn.HoldoutResult` table) and the P2 mean and median over held-out families
    (its ``summary``). Methods whose P1 fit failed show no P1 bar. Returns the Axes."""
    methods = list(p2_summary["method"])
    p1 = {r.method: (r.rel_mae_pct if r.status == "ok" else np.nan)
          for r in p1_table.itertuples(index=False)}
    idx = np.arange(len(methods))
    ax = _axes(ax, (max(7.0, 0.75 * len(methods)), 4.2))
    w = 0.27
    ax.bar(idx - w, [p1.get(m, np.nan) for m in methods], w, label="P1: Pythia → Llama-2",
           color="#4c72b0")
    ax.bar(idx, p2_summary["mean_rel_mae_pct"], w, label="P2: mean over held-out families",
           color="#dd8452")
    ax.bar(idx + w, p2_summary["median_rel_mae_pct"], w, label="P2: median", color="#55a868")
    ax.set_xticks(idx, methods, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("relative MAE (%)")
    ax.set_title("Held-out family prediction error by method")
    top = np.nanmax(np.r_[list(p1.values()), p2_summary["mean_rel_mae_pct"].to_numpy(),
                          p2_summary["median_rel_mae_pct"].to_numpy(), 1.0])
    ax.set_ylim(0, min(top * 1.1, 100.0))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_holdout_trajectories(result: Any, family: str, fig: "Figure | None" = None, *,
                              methods: Sequence[str] | None = None,
                              max_methods: int = 6) -> "Figure":
    """Predicted against actual trajectories of one held-out family of a
    :class:`capedyn.HoldoutResult`: one panel per benchmark (percent against N in billions,
    log axis), one line per method, the actual scores as dots and the initial model as a
    star. ``methods``: those to draw (default: the ``max_methods`` with the lowest
    relative MAE on the family, so the lines stay distinguishable). The score axis spans
    the data with a margin, within 0-100. Returns the Figure."""
    import matplotlib
    from matplotlib.ticker import NullFormatter

    from .dynamics.state import SHORT
    from .data.tables import BENCHMARKS

    preds = result.predictions[result.predictions["family"] == family]
    if preds.empty:
        raise InputError(f"no predictions for family {family!r} in this result; "
                         f"families: {sorted(set(result.predictions['family']))}")
    init = result.initials[result.initials["family"] == family].iloc[0]
    curves = result.curves
    if not curves.empty:
        curves = curves[curves["family"] == family]
    fig = fig if fig is not None else _figure((4.0 * len(BENCHMARKS), 3.6))
    axes = fig.subplots(1, len(BENCHMARKS), sharex=True)
    available = list(dict.fromkeys(preds["method"]))
    chosen = _best_methods(result, family, available, max_methods) if methods is None \
        else [m for m in methods if m in available]
    colours = matplotlib.colormaps["tab10"].colors
    styles = ("-", "--", "-.", ":")
    for ax, b in zip(axes, BENCHMARKS):
        actual = preds[(preds["benchmark"] == b)].drop_duplicates("model")
        for i, m in enumerate(chosen):
            style = dict(color=colours[i % 10], ls=styles[(i // 10) % 4], lw=1.4, label=m)
            if not curves.empty and m in set(curves["method"]):
                cm = curves[curves["method"] == m]
                ax.plot(cm["params_b"], cm[b], **style)
            else:
                pm = preds[(preds["method"] == m) & (preds["benchmark"] == b)]
                ax.plot([init["params_b"], *pm["params_b"]], [init[b], *pm["pred"]],
                        marker=".", **style)
        ax.scatter(actual["params_b"], actual["actual"], color="black", zorder=5, label="actual")
        ax.scatter([init["params_b"]], [init[b]], color="black", marker="*", s=120, zorder=6,
                   label="initial model")
        seen = [float(init[b]), *actual["actual"].astype(float)]
        ax.set_ylim(max(0.0, min(seen) - 10.0), min(100.0, max(seen) + 10.0))
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on 1-2 decades
        ax.set_title(SHORT[b])
        ax.set_xlabel("parameters (B)")
    axes[0].set_ylabel("score (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    shown = (f"the {len(chosen)} most accurate of {len(available)} methods"
             if methods is None and len(chosen) < len(available) else f"{len(chosen)} methods")
    fig.suptitle(f"held-out {family}: {shown}")
    fig.tight_layout()
    return fig


def _best_methods(result: Any, family: str, available: list[str], k: int) -> list[str]:
    """The ``k`` methods with the lowest relative MAE on ``family`` (table order on ties)."""
    t = result.table
    t = t[(t["family"] == family) & t["method"].isin(available)]
    if "status" in t:
        t = t[t["status"] == "ok"]
    ranked = t.sort_values("rel_mae_pct", kind="stable")["method"].tolist()
    return list(dict.fromkeys(ranked))[:max(1, int(k))] or available[:max(1, int(k))]


def plot_method_errors(summary: Any, ax: "Axes | None" = None) -> "Axes":
    """Mean and median relative MAE (%) over held-out families, one pair of bars per method;
    ``summary`` is a :class:`capedyn.HoldoutResult`, its ``summary`` DataFrame or its
    records. Returns the Axes."""
    import pandas as pd


    if hasattr(summary, "summary") and not isinstance(summary, pd.DataFrame):
        summary = summary.summary
    summary = pd.DataFrame(summary)
    if summary.empty:
        raise InputError("the summary is empty; nothing to plot")
    idx = np.arange(len(summary))
    ax = _axes(ax, (max(6.0, 0.8 * len(summary)), 4.0))
    ax.bar(idx - 0.2, summary["mean_rel_mae_pct"], 0.4, label="mean over families")
    ax.bar(idx + 0.2, summary["median_rel_mae_pct"], 0.4, label="median over families")
    ax.set_xticks(idx, summary["method"], rotation=45, ha="right")
    ax.set_ylabel("relative MAE (%)")
    ax.legend()
    return ax


# --------------------------------------------------------------------------- posteriors

def plot_nc_forest(post: Any, ax: "Axes | None" = None,
                   families: "Sequence[str] | None" = None) -> "Axes":
    """Forest plot of the critical scale Nc by family from a :class:`capedyn.NcPosterior`
    (for an ODE-level posterior, of the ODE's field parameter Nc_f, and labelled so):
    x in billions of parameters (log axis), median dot, thick 68% bar, thin 95% bar, the
    population rows at the bottom and the papers' bootstrap interval shaded as a labelled
    reference. Returns the Axes.

    Drawn by hand rather than with ``arviz.plot_forest`` because it shows summary rows that
    are not sampled variables (the population median and a new family's predictive Nc)
    beside the families, on the scale users quote (billions, not log10 parameters).
    """
    import matplotlib.ticker
    import pandas as pd

    from .inference.models import POSTERIOR_PAPER_REFERENCE

    t = post.table
    fam = t[t["kind"] == "family"]
    if families:
        fam = fam[fam["family"].isin(list(families))]
    fam = fam.sort_values("nc_median_b", ascending=False)
    rows = pd.concat([t[t["kind"] != "family"].iloc[::-1], fam], ignore_index=True)
    ref = POSTERIOR_PAPER_REFERENCE
    ax = _axes(ax, (7.5, 0.42 * len(rows) + 1.6))
    ax.axvspan(*ref["nc_ci95_b"], color="tab:orange", alpha=0.15,
               label=f"paper 95% CI [{ref['nc_ci95_b'][0]}B, {ref['nc_ci95_b'][1]}B] "
                     "(bootstrap, Pythia + Llama-1/2)")
    ax.axvline(ref["nc_median_b"], color="tab:orange", lw=1, ls="--",
               label=f"paper median {ref['nc_median_b']}B")
    for y, r in enumerate(rows.to_dict("records")):
        color = "tab:blue" if r["kind"] == "family" else "black"
        ax.plot([r["nc_ci95_lo_b"], r["nc_ci95_hi_b"]], [y, y], color=color, lw=1.2)
        ax.plot([r["nc_ci68_lo_b"], r["nc_ci68_hi_b"]], [y, y], color=color, lw=4)
        ax.plot(r["nc_median_b"], y, "o", color="white", mec=color, ms=6)
    ax.set_yticks(range(len(rows)))
    unit = "pairs" if post.model == "coupling" else "models"
    ax.set_yticklabels([f"{r['family']}" + (f" ({int(r['n_obs'])} {unit[:-1] if int(r['n_obs']) == 1 else unit})"
                                            if r["kind"] == "family" else "")
                        for r in rows.to_dict("records")])
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    # the ODE-level model's Nc_f is a parameter of the ODE's field (docs/nc.md #5), not a
    # measurement of the family's Nc: its axis and title say so
    what = ("Critical scale Nc" if post.model == "coupling"
            else "ODE field parameter Nc_f (not a measurement of Nc)")
    ax.set_xlabel(f"{what.split(' (')[0]} (billions of parameters); bars: 68% (thick), "
                  "95% (thin)")
    ax.set_title(f"{what} by family ({post.model}-level posterior; "
                 f"{post.divergences} divergences)", fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14 - 0.9 / (len(rows) + 3)),
              fontsize=8, frameon=False, ncol=1)
    return ax


def plot_internal_coupling(df: "pd.DataFrame | None" = None, ax: "Axes | None" = None,
                           pair: str = "HS_TQA") -> "Axes":
    """Net internal coupling (y, dimensionless) against parameters (x, billions, log
    scale), one colour per family, each family's sizes joined in order (OPT's ladder among
    them).

    Circles: per-unit net coupling (``unit_net``); squares: the ``pair`` benchmark-pair
    coupling (``pair_net``) that some files give instead. Rows flagged as duplicates, as
    values quoted without a file of their own, or without a size are left out; rows whose
    per-layer values are constant are drawn hollow. ``df``: :func:`capedyn.load_internal_coupling`
    (default: the shipped table). Returns the Axes drawn on."""
    import matplotlib

    from .data.published import load_internal_coupling

    df = load_internal_coupling() if df is None else df
    flags = df["flags"].fillna("").astype(str)
    keep = (~flags.str.contains("duplicate_of|no_file_of_its_own")) & df["params_b"].notna()
    keep &= (df["measure"] == "unit_net") | ((df["measure"] == "pair_net") & (df["pair"] == pair))
    rows = df[keep]
    families = list(dict.fromkeys(rows["family"]))
    cmap = matplotlib.colormaps["tab10" if len(families) <= 10 else "tab20"]
    ax = _axes(ax, (8.0, 5.0))
    for i, fam in enumerate(families):
        colour = cmap(i % cmap.N)
        for measure, marker in (("unit_net", "o"), ("pair_net", "s")):
            sub = rows[(rows["family"] == fam) & (rows["measure"] == measure)]
            if sub.empty:
                continue
            sub = sub.sort_values("params_b")
            x, y = sub["params_b"].to_numpy(float), sub["value"].to_numpy(float)
            constant = sub["flags"].str.contains("per_layer_constant").to_numpy()
            ax.plot(x, y, color=colour, lw=1, alpha=0.6)
            ax.scatter(x[~constant], y[~constant], color=colour, marker=marker, zorder=3,
                       label=f"{fam} ({'units' if measure == 'unit_net' else pair})")
            if constant.any():
                ax.scatter(x[constant], y[constant], facecolors="none", edgecolors=[colour],
                           marker=marker, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (billions)")
    ax.set_ylabel("net internal coupling")
    ax.set_ylim(min(-0.05, float(np.nanmin(rows["value"])) - 0.05), 1.05)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_title("Published internal coupling against size (hollow: every layer the same value)")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return ax
