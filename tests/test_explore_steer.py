"""The explorer's Steering view under Streamlit's AppTest: the published tables render,
and a local model is steered from the page when the extra is installed."""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("streamlit")
os.environ["CAPEDYN_EXPLORE_WARMUP"] = "0"

from streamlit.testing.v1 import AppTest  # noqa: E402

import capedyn as cd  # noqa: E402
from capedyn.explore import APP_PATH, steer_view  # noqa: E402


def _steering_page() -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=180)
    at.run()
    at.sidebar.radio(key="view").set_value("Steering").run()
    assert not at.exception, at.exception
    return at


def test_steering_view_shows_the_published_tables():
    at = _steering_page()
    assert not at.error
    assert at.header[0].value == "Steering and internal coupling"
    shown = at.dataframe[0].value
    assert len(shown) == len(cd.load_internal_coupling())
    runs = at.dataframe[1].value
    assert list(runs["n_changed_reported"]) == list(
        cd.load_steering_results(runs=True)["n_changed_reported"])


def test_without_the_extra_the_view_says_what_to_install(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("capedyn.steer")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(cd, "steer", raising=False)  # the package's cached submodule
    monkeypatch.setitem(sys.modules, "torch", None)
    module, why = steer_view.steer_extra()
    assert module is None and 'pip install -e ".[steer]"' in why


def test_the_view_steers_a_local_model(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from test_steer import controlled_model, make_tokenizer

    tok = make_tokenizer()
    model, _ = controlled_model(tok)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    at = _steering_page()  # the direction comes from the shipped pairs (mostly [UNK] here)
    at.text_input(key="steer_model").set_value(str(tmp_path))
    at.text_input(key="steer_prompt").set_value("sky is green")
    at.number_input(key="steer_tokens").set_value(1)
    at.button[0].click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    text = at.text[0].value
    assert text.startswith("unsteered: ") and "\nsteered:   " in text
    from capedyn.steer import Steerer

    expected = Steerer.from_pretrained(tmp_path).fit().steer("sky is green", None, 1)
    assert text == f"unsteered: {expected.unsteered}\nsteered:   {expected.steered}"
