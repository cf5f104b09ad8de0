"""The ODE explorer's "type scores…" start, its Nc labels, a user's own family and the
Predictions view's deadlines, under Streamlit's AppTest (no browser)."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

os.environ.setdefault("CAPEDYN_EXPLORE_POSTERIOR", "2,60,60")  # short chains in tests
os.environ["CAPEDYN_EXPLORE_WARMUP"] = "0"
os.environ.setdefault("CAPEDYN_EXPLORE_CONFORMAL_STEPS", "3")  # a cheap band calibration in tests

from streamlit.testing.v1 import AppTest  # noqa: E402

import capedyn as cd  # noqa: E402
from capedyn._jax import x64  # noqa: E402
from capedyn.explore import APP_PATH, core, family_view  # noqa: E402

BENCH = list(core.BENCHMARKS)


def _ode_page() -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=180)
    at.run()
    at.sidebar.radio(key="view").set_value("ODE explorer").run()
    assert not at.exception, at.exception
    return at


def _end_scores(at) -> dict:
    text = "\n".join(m.value for m in at.markdown)
    m = re.search(r"<span id='ode-end'>(.*?)</span>", text)
    return dict((k.strip(), float(v)) for k, v in (p.rsplit(" ", 1) for p in m.group(1).split(", ")))


@pytest.mark.slow
def test_typed_scores_start_with_the_sliders_at_the_fitted_values():
    at = _ode_page()
    at.selectbox(key="ode_start").set_value("type scores…").run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]  # nothing typed yet: a prompt, no error
    assert at.info
    row = cd.load_base_models().query("model == 'Pythia-70M'").iloc[0]
    at.text_input(key="ode_t_size").input(str(row["params_b"]))
    for b in BENCH:
        at.text_input(key=f"ode_t_{b}").input(str(row[b]))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    fitted = cd.load_fit("all_families").families_["Pythia"]
    assert at.slider(key="ode_nc").value == pytest.approx(
        round(float(np.asarray(fitted.log10_nc)) - 9.0, 2))
    for k, b in enumerate(BENCH):
        assert at.slider(key=f"ode_h_{b}").value == pytest.approx(
            round(float(np.asarray(fitted.h)[k]), 2))
    # the drawn end point is Pythia's fitted ODE from Pythia-70M's own scores (sliders
    # round the fitted values to 0.01, hence the tolerance)
    end = _end_scores(at)
    model = cd.load_fit("all_families")
    largest = float(cd.load_base_models().query("family == 'Pythia'")["params_b"].max())
    up_to = max(100 * row["params_b"], largest)
    with x64():
        want = model.predict(row, [up_to], family="Pythia").iloc[0]
    assert end["MMLU"] == pytest.approx(float(want["mmlu"]), abs=0.3)
    assert end["MMLU"] > 25.0  # above chance, as Pythia's own 12B model is


@pytest.mark.slow
def test_the_slider_nc_is_labelled_a_field_parameter():
    at = _ode_page()
    text = "\n".join(m.value for m in at.markdown)
    assert "ODE field parameter Nc" in text and "not a measurement" in text
    assert not re.search(r"(^|\n)Nc = ", text)
    assert any("coupling-level Nc" in c.value for c in at.caption)
    assert "field parameter" in at.slider(key="ode_nc").label


def test_typed_start_prompts_before_anything_is_typed():
    start, level, messages = family_view.typed_start({"size": "", **{b: "" for b in BENCH}})
    assert start is None and level == "info" and messages
    start, level, messages = family_view.typed_start({"size": "1", "hellaswag": "50"})
    assert start is None and level == "error"


def test_sliders_reset_when_streamlit_dropped_their_state():
    full = {"ode_for": "Pythia", **{k: 0.0 for k in family_view.SLIDER_KEYS}}
    assert not family_view.sliders_need_reset(full, "Pythia")
    assert family_view.sliders_need_reset({"ode_for": "Pythia"}, "Pythia")
    assert family_view.sliders_need_reset(full, "OPT")


@pytest.mark.parametrize("value,text", [(None, ""), (float("nan"), ""), ("", ""),
                                        ("2026-12-31", " (deadline 2026-12-31)")])
def test_deadline_suffix(value, text):
    assert family_view.deadline_suffix(value) == text


def test_predictions_view_shows_no_nan_deadline():
    at = AppTest.from_file(str(APP_PATH), default_timeout=120)
    at.run()
    at.sidebar.radio(key="view").set_value("Predictions").run()
    assert not at.exception
    assert all("nan" not in e.label for e in at.expander), [e.label for e in at.expander]


@pytest.mark.slow
def test_a_family_from_data_is_offered_and_fitted(tmp_path):
    base = cd.load_base_models()
    zeta = pd.DataFrame([
        {"model": "zeta-1b", "family": "Zeta", "params_b": 1.0, "hellaswag": 50.0,
         "truthfulqa": 38.0, "arc": 30.0, "winogrande": 55.0, "mmlu": 26.0},
        {"model": "zeta-3b", "family": "Zeta", "params_b": 3.0, "hellaswag": 60.0,
         "truthfulqa": 36.0, "arc": 36.0, "winogrande": 60.0, "mmlu": 27.0},
        {"model": "zeta-9b", "family": "Zeta", "params_b": 9.0, "hellaswag": 68.0,
         "truthfulqa": 38.0, "arc": 42.0, "winogrande": 65.0, "mmlu": 30.0}])
    path = tmp_path / "with_zeta.csv"
    pd.concat([base, zeta], ignore_index=True).to_csv(path, index=False)
    ex = core.Explorer(data=str(path))
    assert "Zeta" in family_view.offered_families(ex)
    assert "Zeta" not in ex.model.families_
    p = family_view.family_params(ex, "Zeta")
    assert math.isfinite(float(np.asarray(p.log10_nc)))
    assert "Zeta" not in ex.model.families_  # fitted on a copy: the shared fit is unchanged
    values = family_view.fitted_slider_values(ex, "Zeta")
    assert set(values) == set(family_view.SLIDER_KEYS)


@pytest.mark.slow
def test_nearest_models_table_spans_the_page():
    at = AppTest.from_file(str(APP_PATH), default_timeout=180)
    at.run()
    row = cd.load_base_models().query("model == 'Pythia-410M'").iloc[0]
    at.text_input(key="an_size").input(str(row["params_b"]))
    at.text_input(key="an_hellaswag").input(str(row["hellaswag"]))
    at.text_input(key="an_truthfulqa").input(str(row["truthfulqa"]))
    at.button[0].click().run()  # the form's submit button (size and two scores: no ODE job)
    assert not at.exception
    assert at.dataframe and at.dataframe[0].value["model"].iloc[0] == "Pythia-410M"
    for col in at.columns:  # not squeezed into one of the two half-width columns
        assert len(col.dataframe) == 0
