"""Figure of the published internal coupling against model size (no PyTorch needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes


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

    from .plotting import _axes
    from .published import load_internal_coupling

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
