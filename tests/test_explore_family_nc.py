"""One Nc per family in the explorer, under Streamlit's AppTest (no browser): the ODE
explorer shows a family's Nc as the coupling-level posterior's median with its 68% and
95% intervals (checked against quantiles taken here from the posterior's draws), and its
slider's Nc under the name of what it is, a parameter of the ODE's field; the population
line's zero crossing is named the population's, not a family's."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

os.environ.setdefault("CAPEDYN_EXPLORE_POSTERIOR", "2,60,60")  # short chains in tests
os.environ["CAPEDYN_EXPLORE_WARMUP"] = "0"
os.environ.setdefault("CAPEDYN_EXPLORE_CONFORMAL_STEPS", "3")  # a cheap band calibration in tests

from streamlit.testing.v1 import AppTest  # noqa: E402

from capedyn.explore import APP_PATH, core  # noqa: E402

FAMILY = "Pythia"  # the ODE explorer's default family


def _billions(text: str) -> float:
    """``1.23B`` or ``456M`` (as the explorer writes sizes) in billions."""
    m = re.fullmatch(r"([\d.]+(?:e[-+]?\d+)?)([BM])", text.strip())
    assert m, text
    return float(m[1]) * (1.0 if m[2] == "B" else 1e-3)


def _draw_quantiles(post, family: str) -> np.ndarray:
    """2.5, 16, 50, 84, 97.5 % quantiles of the family's Nc (B), from the raw log10 draws."""
    x = post.idata.posterior["log10_nc"].sel(family=family).values.ravel()
    return 10.0 ** (np.quantile(x, [0.025, 0.16, 0.5, 0.84, 0.975]) - 9.0)


@pytest.fixture(scope="module")
def ode_page():
    ex = core.get_explorer()  # the page's own Explorer (one per process and configuration)
    ex.posterior_job.start().wait(timeout=600)
    assert ex.posterior_job.state == "done", ex.posterior_job.error
    at = AppTest.from_file(str(APP_PATH), default_timeout=180)
    at.run()
    at.sidebar.radio(key="view").set_value("ODE explorer").run()
    assert not at.exception, at.exception
    return ex, at


@pytest.mark.slow
def test_the_family_nc_shown_is_the_posterior_median_with_its_intervals(ode_page):
    ex, at = ode_page
    captions = [c.value for c in at.caption]
    line = next((c for c in captions if c.startswith("coupling-level Nc (posterior) of "
                                                      f"{FAMILY}:")), None)
    assert line, captions
    m = re.search(r": (\S+), 68% \[(\S+), (\S+)\], 95% \[(\S+), (\S+)\]$", line)
    assert m, line
    median, lo68, hi68, lo95, hi95 = (_billions(v) for v in m.groups())
    q = _draw_quantiles(ex.posterior(), FAMILY)
    # shown at three significant digits
    assert [lo95, lo68, median, hi68, hi95] == pytest.approx(list(q), rel=6e-3)


@pytest.mark.slow
def test_the_slider_nc_is_named_a_field_parameter_and_differs_from_the_family_nc(ode_page):
    ex, at = ode_page
    slider = at.slider(key="ode_nc")
    assert "field parameter" in slider.label
    text = "\n".join(m.value for m in at.markdown)
    m = re.search(r"ODE field parameter Nc = (\S+) \(a parameter of the coupling ODE, not a "
                  r"measurement of the family's Nc\)", text)
    assert m, text
    assert _billions(m[1]) == pytest.approx(10 ** slider.value, rel=6e-3)
    # nowhere on the page is a bare "Nc = " left for the reader to take as the family's
    shown = text + "\n" + "\n".join(c.value for c in at.caption)
    assert "Nc = " not in shown.replace("ODE field parameter Nc = ", "")


def test_the_population_crossing_is_named_the_population_s():
    from capedyn.explore import views

    ex = core.get_explorer()
    reading = views.phase_of(60.0, 40.0, 7.0, ex)["gamma12_reading"]
    fit = ex.coupling_fit
    assert f"the population line crosses zero at {fit.nc_b:.3g}B" in reading
    assert "not any one family's" in reading and "Nc = " not in reading
