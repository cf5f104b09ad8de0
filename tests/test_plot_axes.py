"""``plot_ode_trajectories`` follows the plotting convention (draw onto Axes, return them),
and the forest plot says "1 pair", not "1 pairs"."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import capedyn as cd  # noqa: E402
from capedyn.plotting import plot_nc_forest, plot_ode_trajectories  # noqa: E402


@pytest.fixture(scope="module")
def pythia():
    return cd.load_fit("pythia"), cd.load_base_models()


@pytest.mark.slow
def test_one_axes_in_one_axes_out(pythia):
    model, df = pythia
    fig, ax = plt.subplots()
    try:
        out = plot_ode_trajectories(model, df, ax=ax)
        assert out is ax
        assert len(ax.lines) == 5 and ax.get_title() == "Pythia"
    finally:
        plt.close(fig)


@pytest.mark.slow
def test_default_returns_one_axes_per_family(pythia):
    model, df = pythia
    axes = plot_ode_trajectories(model, df)
    try:
        assert isinstance(axes, np.ndarray) and len(axes) == len(model.starts_)
        assert all(isinstance(a, Axes) for a in axes)
    finally:
        plt.close(axes[0].figure)


def test_one_axes_for_several_families_is_a_clear_error():
    model = cd.load_fit("all_families")
    fig, ax = plt.subplots()
    try:
        with pytest.raises(cd.CapedynError, match="families=\\[name\\]"):
            plot_ode_trajectories(model, cd.load_base_models(), ax=ax)
    finally:
        plt.close(fig)


@pytest.mark.slow
def test_fig_keeps_working_with_a_deprecation(pythia):
    model, df = pythia
    fig = Figure()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = plot_ode_trajectories(model, df, fig=fig)
    assert out is fig
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_forest_labels_one_pair_in_the_singular():
    from types import SimpleNamespace

    table = pd.DataFrame([
        {"family": "A", "kind": "family", "n_obs": 1, "nc_median_b": 3.0, "nc_ci68_lo_b": 2.0,
         "nc_ci68_hi_b": 4.0, "nc_ci95_lo_b": 1.0, "nc_ci95_hi_b": 9.0},
        {"family": "B", "kind": "family", "n_obs": 3, "nc_median_b": 5.0, "nc_ci68_lo_b": 4.0,
         "nc_ci68_hi_b": 6.0, "nc_ci95_lo_b": 3.0, "nc_ci95_hi_b": 8.0}])
    post = SimpleNamespace(table=table, model="coupling", divergences=0)
    ax = plot_nc_forest(post)
    try:
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert "A (1 pair)" in labels and "B (3 pairs)" in labels
    finally:
        plt.close(ax.figure)


@pytest.mark.slow
def test_holdout_figure_draws_the_best_methods_distinctly(base_df):
    fast = ["linear_ode", "poly1", "poly2", "poly3", "poly4", "poly1_anchored",
            "poly2_anchored", "poly3_anchored", "poly4_anchored"]
    res = cd.holdout(base_df, "OPT", methods=fast, curves=False)
    from capedyn.plotting import plot_holdout_trajectories

    fig = plot_holdout_trajectories(res, "OPT", fig=Figure())
    ok = res.table[(res.table["family"] == "OPT") & (res.table["status"] == "ok")]
    best = ok.nsmallest(6, "rel_mae_pct")["method"].tolist()
    for ax in fig.axes[:5]:
        labels = [ln.get_label() for ln in ax.lines]
        assert labels == best  # the six most accurate, best first
        styles = {(ln.get_color(), ln.get_linestyle()) for ln in ax.lines}
        assert len(styles) == len(ax.lines)  # no two lines look alike
        assert 0.0 <= ax.get_ylim()[0] and ax.get_ylim()[1] <= 100.0
