"""The explorer's figures stay readable: a heatmap colour scale that one outlying cell does
not swamp, and log size axes labelled in full (70, not "7")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("plotly")

from capedyn.explore import figures  # noqa: E402


def test_one_outlier_does_not_swamp_the_heatmap():
    rng = np.random.default_rng(0)
    mat = pd.DataFrame(rng.uniform(4, 20, size=(6, 5)), index=[f"m{i}" for i in range(6)],
                       columns=[f"F{j}" for j in range(5)])
    mat.iloc[2, 3] = 432.8
    mat["mean"] = mat.mean(axis=1)
    heat = figures.holdout_figure(mat).data[0]
    others = np.delete(mat.to_numpy().ravel(), np.argmax(mat.to_numpy()))
    assert heat.zmax < 100 and heat.zmax >= np.quantile(others, 0.9)
    assert "432.8" in [str(v) for v in np.ravel(heat.text)]  # the cell still shows its value


def test_heatmap_without_outlier_uses_the_full_range():
    mat = pd.DataFrame([[5.0, 6.0], [7.0, 8.0]], index=["a", "b"], columns=["X", "Y"])
    heat = figures.holdout_figure(mat).data[0]
    assert (heat.zmin, heat.zmax) == (5.0, 8.0)


def test_log_size_axes_are_labelled_in_full():
    traj = pd.DataFrame({"params_b": np.repeat([0.07, 1.0, 70.0], 5),
                         "benchmark": list(figures.BENCHMARKS) * 3,
                         "score": np.linspace(30, 60, 15)})
    data = pd.DataFrame({"model": ["a"], "params_b": [0.07],
                         **{b: [40.0] for b in figures.BENCHMARKS}})
    fig = figures.trajectory_figure(traj, data, traj)
    axis = fig.layout.xaxis
    labels = dict(zip(axis.tickvals, axis.ticktext))
    assert labels[50.0] == "50" and labels[100.0] == "100" and labels[0.05] == "0.05"


def test_phase_map_families_have_distinct_colours():
    from capedyn.explore import core, views

    ex = core.get_explorer()
    _, f2 = figures.phase_map_figures(views.phase_map(ex))
    fam_traces = [t for t in f2.data if t.mode == "markers+lines"]
    assert len(fam_traces) > 10  # more families than plotly's default cycle
    colours = [t.line.color for t in fam_traces]
    assert None not in colours and len(set(colours)) == len(colours)
    assert f2.layout.margin.t >= 60  # the title clears the chart toolbar
