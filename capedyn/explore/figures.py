"""Plotly figures of the explorer's views (data from :mod:`capedyn.explore.core`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .core import BENCHMARKS, LABELS, SCALE_FACTORS

PHASE_COLOURS = {"tax": "#d62728", "bonus": "#2ca02c", "transition": "#ff7f0e"}


LOG_TICKS = [m * 10.0 ** k for k in range(-3, 8) for m in (1, 2, 5)]
"""Tick positions of the explorer's log size axes (billions): 1-2-5 steps, each labelled in
full (plotly's own log ticks label 70 as "7")."""


def readable_log_axes(fig):
    """Full labels at 1-2-5 steps on every log x axis of ``fig``; returns ``fig``."""
    fig.update_xaxes(tickvals=LOG_TICKS, ticktext=[f"{v:g}" for v in LOG_TICKS],
                     selector=dict(type="log"))
    return fig


def family_palette(n: int) -> list[str]:
    """``n`` distinct colours (plotly's 26-colour Alphabet, then its 24-colour Dark24):
    the default 10-colour cycle repeats after ten families."""
    from plotly.colors import qualitative

    colours = list(dict.fromkeys(qualitative.Alphabet + qualitative.Dark24))
    return [colours[i % len(colours)] for i in range(n)]


def robust_colour_range(z: np.ndarray) -> tuple[float, float, bool]:
    """(zmin, zmax, capped): the colour scale of a heatmap, capped at 1.5x the 90th
    percentile so one outlying cell does not wash out every other; the cells still show
    their values."""
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return 0.0, 1.0, False
    lo, hi = float(finite.min()), float(finite.max())
    cap = 1.5 * float(np.quantile(finite, 0.9))
    return (lo, cap, True) if hi > cap > lo else (lo, hi, False)


def _go():
    import plotly.graph_objects as go

    return go


def analyze_figure(inp, ode: dict[str, Any]):
    """The five predicted scores at 1x (input), 2x, 4x, 10x the size, band as error bars."""
    go = _go()
    table = ode["table"]
    fig = go.Figure()
    sizes = [inp.params_b, *table["params_b"]]
    for k, b in enumerate(BENCHMARKS):
        y = [inp.scores[b], *table[b]]
        err = None
        if ode.get("band") is not None:
            lo, hi = ode["band"]
            err = dict(type="data", symmetric=False,
                       array=[0.0, *(hi[:, k] - table[b].to_numpy())],
                       arrayminus=[0.0, *(table[b].to_numpy() - lo[:, k])])
        fig.add_trace(go.Scatter(x=sizes, y=y, mode="lines+markers", name=LABELS[b],
                                 error_y=err))
    fig.update_layout(xaxis_type="log", xaxis_title="size (billions of parameters)",
                      yaxis_title="score (%)", height=360, margin=dict(l=10, r=10, t=30, b=10),
                      title=f"ODE prediction at {', '.join(f'{f:g}x' for f in SCALE_FACTORS)} "
                            "the size" + (f"; bars: {ode['band_label']}"
                                          if ode.get("band") is not None and ode.get("band_label")
                                          else ""))
    readable_log_axes(fig)
    return fig


COLOURS = dict(zip(BENCHMARKS, ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")))


def trajectory_figure(traj: pd.DataFrame, data: pd.DataFrame, reference: pd.DataFrame | None):
    """One panel: the five live trajectories (solid), the fitted-parameter ones (dashed)
    and the family's data (points), coloured by benchmark. One panel rather than one per
    benchmark: it redraws faster in the browser, which is what a slider move waits for."""
    go = _go()
    fig = go.Figure()
    for b in BENCHMARKS:
        c = COLOURS[b]
        if reference is not None:
            r = reference[reference["benchmark"] == b]
            fig.add_trace(go.Scatter(x=r["params_b"], y=r["score"], mode="lines",
                                     line=dict(dash="dash", color=c, width=1),
                                     name=f"{LABELS[b]} (fitted)", legendgroup=b,
                                     showlegend=False, hoverinfo="skip"))
        t = traj[traj["benchmark"] == b]
        fig.add_trace(go.Scatter(x=t["params_b"], y=t["score"], mode="lines",
                                 line=dict(color=c, width=3), name=LABELS[b], legendgroup=b))
        if len(data):
            fig.add_trace(go.Scatter(x=data["params_b"], y=data[b], mode="markers",
                                     marker=dict(color=c, size=8, line=dict(color="black", width=1)),
                                     name=f"{LABELS[b]} data", legendgroup=b, showlegend=False,
                                     text=data["model"]))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), xaxis_type="log",
                      xaxis_title="size (billions of parameters)", yaxis_title="score (%)",
                      title="solid: sliders; dashed: the family's fitted field parameters (Nc, h); "
                            "points: the family's data")
    return readable_log_axes(fig)


def phase_map_figures(pm: dict[str, Any]):
    go = _go()
    pts = pm["points"]
    bd = pm["boundary"]
    bottom = min(float(pts["truthfulqa"].min()), float(bd["truthfulqa"].min())) - 3.0
    top = max(float(pts["truthfulqa"].max()), float(bd["truthfulqa"].max())) + 3.0
    f1 = go.Figure()
    # the two phase regions, split by the classifier's boundary TQA_c(HS)
    f1.add_trace(go.Scatter(x=np.r_[bd["hellaswag"], bd["hellaswag"][::-1]],
                            y=np.r_[bd["truthfulqa"], np.full(len(bd), top)], fill="toself",
                            fillcolor="rgba(44,160,44,0.08)", line=dict(width=0),
                            name="bonus region", hoverinfo="skip"))
    f1.add_trace(go.Scatter(x=np.r_[bd["hellaswag"], bd["hellaswag"][::-1]],
                            y=np.r_[bd["truthfulqa"], np.full(len(bd), bottom)], fill="toself",
                            fillcolor="rgba(214,39,40,0.08)", line=dict(width=0),
                            name="tax region", hoverinfo="skip"))
    for ph, g in pts.groupby("phase"):
        f1.add_trace(go.Scatter(x=g["hellaswag"], y=g["truthfulqa"], mode="markers",
                                name=f"{ph} phase", marker=dict(color=PHASE_COLOURS[ph], size=9),
                                text=g["model"] + " (" + g["family"] + ")",
                                hovertemplate="%{text}<br>HS %{x}<br>TQA %{y}<extra></extra>"))
    f1.add_trace(go.Scatter(x=bd["hellaswag"], y=bd["truthfulqa"], mode="lines",
                            line=dict(color="black", dash="dash"),
                            name="TQA_c = sqrt(0.187·HS)"))
    f1.update_layout(xaxis_title="HellaSwag (%)", yaxis_title="TruthfulQA (%)", height=420,
                     yaxis_range=[bottom, top],
                     title=dict(text="Phase map: bonus above the line, tax below", y=0.93),
                     margin=dict(l=10, r=10, t=70, b=10))
    pairs, fit, curve = pm["pairs"], pm["fit"], pm["fit_curve"]
    f2 = go.Figure()
    palette = family_palette(len(set(pairs["family"])))
    for i, (fam, g) in enumerate(pairs.groupby("family")):
        f2.add_trace(go.Scatter(x=g["params_b_mid"], y=g["gamma12"], mode="markers+lines",
                                name=fam, text=g["model_from"] + " → " + g["model_to"],
                                line=dict(color=palette[i]), marker=dict(color=palette[i])))
    f2.add_trace(go.Scatter(x=curve["params_b"], y=curve["gamma12"], mode="lines",
                            line=dict(color="black", width=3),
                            name=f"fit γ12 = {fit.A:.3f}·log10 N {fit.B:+.3f}"))
    f2.add_hline(y=0, line=dict(color="grey", dash="dot"))
    f2.update_layout(xaxis_type="log", xaxis_title="size (billions, geometric mean of the pair)",
                     yaxis_title="γ12 (TQA points per HS point)", height=420,
                     title=dict(text=f"Running coupling; population line Nc = {fit.nc_b:.3g}B",
                                y=0.93),
                     margin=dict(l=10, r=10, t=70, b=10))
    return f1, readable_log_axes(f2)


def frontier_figure(fv: dict[str, Any]):
    go = _go()
    band, models = fv["band"], fv["models"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=np.r_[band["swe_bench"], band["swe_bench"][::-1]],
                             y=np.r_[band["hi"], band["lo"][::-1]], fill="toself",
                             line=dict(width=0), fillcolor="rgba(128,128,128,0.2)",
                             name="95% bootstrap band", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=band["swe_bench"], y=band["gpqa"], mode="lines",
                             line=dict(color="black"), name=fv["line"].label))
    for lab, g in models.groupby("lab", sort=False):
        post = g["subset"] == "post_cutoff"
        fig.add_trace(go.Scatter(
            x=g["swe_bench"], y=g["gpqa_diamond"], mode="markers", name=lab,
            marker=dict(size=[14 if p else 9 for p in post],
                        symbol=["star" if p else "circle" for p in post]),
            text=[f"{m}<br>h = {h:+.1f}" for m, h in zip(g["model"], g["h"])],
            hovertemplate="%{text}<br>SWE %{x}, GPQA %{y}<extra></extra>"))
    fig.update_layout(xaxis_title="SWE-bench Verified (%)", yaxis_title="GPQA Diamond (%)",
                      height=480, margin=dict(l=10, r=10, t=40, b=10),
                      title="Frontier: h = GPQA − (a·SWE + b); stars: after the paper's freeze")
    return fig


def forest_figure(table: pd.DataFrame):
    go = _go()
    fam = table[table["kind"] == "family"].sort_values("nc_median_b")
    rows = pd.concat([fam, table[table["kind"] != "family"]], ignore_index=True)
    fig = go.Figure()
    y = rows["family"]
    fig.add_trace(go.Scatter(x=rows["nc_median_b"], y=y, mode="markers", name="median",
                             marker=dict(color="black", size=9),
                             error_x=dict(type="data", symmetric=False,
                                          array=rows["nc_ci95_hi_b"] - rows["nc_median_b"],
                                          arrayminus=rows["nc_median_b"] - rows["nc_ci95_lo_b"],
                                          thickness=1)))
    fig.add_trace(go.Scatter(x=rows["nc_median_b"], y=y, mode="markers", name="68% interval",
                             marker=dict(color="rgba(0,0,0,0)"),
                             error_x=dict(type="data", symmetric=False,
                                          array=rows["nc_ci68_hi_b"] - rows["nc_median_b"],
                                          arrayminus=rows["nc_median_b"] - rows["nc_ci68_lo_b"],
                                          thickness=5, color="#1f77b4")))
    fig.update_layout(xaxis_type="log", xaxis_title="Nc (billions of parameters)",
                      height=40 * len(rows) + 120, margin=dict(l=10, r=10, t=40, b=10),
                      title="Each family's Nc, coupling-level posterior: median, 68% (thick) and "
                            "95% (thin)")
    return readable_log_axes(fig)


def holdout_figure(mat: pd.DataFrame):
    go = _go()
    z = mat.to_numpy(float)
    zmin, zmax, capped = robust_colour_range(z)
    title = f"rel. MAE %<br>(colour capped<br>at {zmax:.0f})" if capped else "rel. MAE %"
    fig = go.Figure(go.Heatmap(z=z, x=list(mat.columns), y=list(mat.index),
                               colorscale="Viridis_r", colorbar=dict(title=title),
                               zmin=zmin, zmax=zmax,
                               text=np.round(z, 1), texttemplate="%{text}"))
    fig.update_layout(height=32 * len(mat) + 140, margin=dict(l=10, r=10, t=40, b=10),
                      title="Held-out family benchmark (leave one family out): relative MAE %")
    return fig
