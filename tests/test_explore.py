"""The explorer without a browser: its view model and the Streamlit script under AppTest."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

os.environ.setdefault("CAPEDYN_EXPLORE_POSTERIOR", "2,60,60")  # short chains in tests
# no background warm-up thread: it would compile code while AppTest compiles the script,
# which Python 3.11 does not always survive ("AST constructor recursion depth mismatch")
os.environ["CAPEDYN_EXPLORE_WARMUP"] = "0"
os.environ.setdefault("CAPEDYN_EXPLORE_CONFORMAL_STEPS", "3")  # a cheap band calibration in tests

from streamlit.testing.v1 import AppTest  # noqa: E402

import capedyn as cd  # noqa: E402
from capedyn._jax import x64  # noqa: E402
from capedyn.explore import APP_PATH, core, views  # noqa: E402

BENCH = list(core.BENCHMARKS)


@pytest.fixture(scope="module")
def ex():
    return core.get_explorer()


def _cli_json(args, capsys):
    from capedyn.cli.entry import main

    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _app(view="Analyze a model") -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=120)
    at.run()
    assert not at.exception and at.header, "the page rendered nothing"
    if view != "Analyze a model":
        at.sidebar.radio(key="view").set_value(view).run()
        assert not at.exception, at.exception
    return at


def _analyze(at: AppTest, **fields) -> AppTest:
    for k, v in fields.items():
        try:
            box = at.text_input(key=f"an_{k}")
        except KeyError:
            raise AssertionError(
                f"no field an_{k} on the page: headers {[h.value for h in at.header]}, "
                f"errors {[e.value for e in at.error]}, exception {at.exception}, "
                f"inputs {[w.key for w in at.text_input]}") from None
        box.input(str(v))
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def _markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


# --------------------------------------------------------------------------- input checks

@pytest.mark.parametrize("kwargs, fragment", [
    ({"size": "7", "scores": {"hellaswag": "120", "truthfulqa": "40"}}, "outside 0-100"),
    ({"size": "7", "scores": {"hellaswag": "0.78", "truthfulqa": "0.36"}}, "fraction"),
    ({"size": "", "scores": {"hellaswag": "78", "truthfulqa": "36"}}, "size missing"),
    ({"size": "-3", "scores": {"hellaswag": "78"}}, "positive size"),
    ({"size": "7", "scores": {"hellaswag": "abc"}}, "not a number"),
    ({"swe": "80"}, "needs both"),
    ({}, "type a size"),
])
def test_parse_model_messages(kwargs, fragment):
    inp, problems = core.parse_model(**kwargs)
    assert inp is None and any(fragment in p for p in problems), problems


def test_parse_model_accepts_subsets():
    inp, problems = core.parse_model("1.4", {"hellaswag": "52.9", "truthfulqa": "38.9%"})
    assert not problems and inp.params_b == 1.4 and inp.scores == {"hellaswag": 52.9, "truthfulqa": 38.9}
    assert not inp.complete
    inp, _ = core.parse_model(None, None, "87.6", "94.2")
    assert inp.swe == 87.6 and inp.gpqa == 94.2


# --------------------------------------------------------------------------- Analyze

def test_analyze_page_agrees_with_phase_and_hfield_commands(capsys):
    hs, tqa, size, swe, gpqa = 78.0, 35.7, 7.0, 87.6, 94.2
    at = _analyze(_app(), size=size, hellaswag=hs, truthfulqa=tqa, swe=swe, gpqa=gpqa)
    assert not at.error
    phase = _cli_json(["phase", "--hs", str(hs), "--tqa", str(tqa), "--params-b", str(size)], capsys)
    hf = _cli_json(["hfield", "--swe", str(swe), "--gpqa", str(gpqa)], capsys)
    text = _markdown(at)
    captions = "\n".join(c.value for c in at.caption)
    assert f"classifier: {phase['phase']}" in captions
    assert f"margin {phase['margin']:+.2f} points" in captions
    expected = "transition" if abs(phase["margin"]) <= core.TRANSITION_BAND else phase["phase"]
    assert re.search(rf"Phase: :\w+\[{expected}\]", text)
    assert f"h-field: {hf['h']:+.1f}" in text
    assert f"γ12 = {phase['population_fit']['gamma12']:+.3f}" in text
    # the view model's numbers themselves, not only their rounding
    inp, _ = core.parse_model(size, {"hellaswag": hs, "truthfulqa": tqa}, swe, gpqa)
    res = views.analyze(core.get_explorer(), inp)
    assert res["phase"]["margin"] == pytest.approx(phase["margin"], abs=1e-12)
    assert res["phase"]["classifier_phase"] == phase["phase"]
    assert res["hfield"]["h"] == pytest.approx(hf["h"], abs=1e-12)


@pytest.mark.parametrize("fields, fragment", [
    ({"size": 7, "hellaswag": 120, "truthfulqa": 40}, "outside 0-100"),
    ({"size": 7, "hellaswag": 0.78, "truthfulqa": 0.36}, "fraction"),
    ({"hellaswag": 78, "truthfulqa": 36}, "size missing"),
])
def test_bad_input_in_the_page_is_a_message(fields, fragment):
    at = _analyze(_app(), **fields)
    assert any(fragment in e.value for e in at.error), [e.value for e in at.error]
    assert not at.exception


# --------------------------------------------------------------------------- ODE explorer

def test_ode_sliders_re_solve():
    at = _app("ODE explorer")
    assert not at.error

    def end_scores():
        m = re.search(r"<span id='ode-end'>(.*?)</span>", _markdown(at))
        return dict((k.strip(), float(v)) for k, v in
                    (p.rsplit(" ", 1) for p in m.group(1).split(", ")))

    before = end_scores()
    h_hs = at.slider(key="ode_h_hellaswag")
    h_hs.set_value(round(h_hs.value + 0.5, 2)).run()
    assert not at.exception
    after = end_scores()
    # a larger HellaSwag source raises HellaSwag's rate: its end score must go up
    assert after["HellaSwag"] > before["HellaSwag"] + 0.1
    # Nc slider: the fitted field couples TQA to HS through gamma12(x - log10 Nc)
    at.slider(key="ode_nc").set_value(2.5).run()
    assert end_scores()["TruthfulQA"] != pytest.approx(after["TruthfulQA"], abs=1e-6)
    at.button(key="ode_reset").click().run()
    assert end_scores() == pytest.approx(before, abs=1e-6)


def test_ode_trajectory_starts_at_the_start_model(ex):
    start = ex.family_start("OPT")
    p = ex.model.families_["OPT"]
    traj = views.trajectories(ex, start, "OPT", float(np.asarray(p.log10_nc)), np.asarray(p.h))
    first = traj[traj["params_b"] == traj["params_b"].min()]
    assert dict(zip(first["benchmark"], first["score"])) == pytest.approx(
        {b: start[b] for b in BENCH}, abs=1e-6)
    # the fitted family parameters reproduce CouplingODE.predict for that family
    opt = cd.load_base_models().query("family == 'OPT'")
    with x64():
        pred = ex.model.predict(opt.iloc[0], [66.0], family="OPT")
    traj66 = views.trajectories(ex, start, "OPT", float(np.asarray(p.log10_nc)),
                               np.asarray(p.h), up_to_b=66.0)
    last = traj66[traj66["params_b"] == traj66["params_b"].max()]
    assert dict(zip(last["benchmark"], last["score"])) == pytest.approx(
        {b: float(pred[b].iloc[0]) for b in BENCH}, abs=1e-6)


# --------------------------------------------------------------------------- other views

@pytest.mark.parametrize("view", ["Phase map", "Frontier"])
def test_views_render(view):
    at = _app(view)
    assert not at.error and not at.exception


def test_phase_map_counts_match_the_classifier(ex):
    pm = views.phase_map(ex)
    df = cd.load_base_models().dropna(subset=["hellaswag", "truthfulqa"])
    bonus = int((df["truthfulqa"] / 100 > np.sqrt(0.187 * df["hellaswag"] / 100)).sum())
    assert int((pm["points"]["phase"] == "bonus").sum()) == bonus


def test_holdout_view_fast_methods(ex):
    at = _app("Held-out benchmark")
    assert not at.error and not at.exception
    mat = views.holdout_matrix(ex)
    assert set(mat.index) == set(core.FAST_HOLDOUT_METHODS)
    assert "Llama-2" in mat.columns


def test_predictions_view_lists_every_prediction():
    from capedyn.evaluation.predictions import PREDICTIONS

    at = _app("Predictions")
    assert not at.error and not at.exception
    labels = [e.label for e in at.expander]
    assert len(labels) == len(PREDICTIONS)
    assert all(any(p.id in lab for lab in labels) for p in PREDICTIONS)


# --------------------------------------------------------------------------- background posterior
# Last in the file: these start the posterior job, and pages that wait for it poll.

def test_analyze_complete_model_predicts_larger_sizes():
    row = cd.load_base_models().query("model == 'Pythia-410M'").iloc[0]
    at = _analyze(_app(), size=row["params_b"], **{b: row[b] for b in BENCH})
    assert not at.error and not at.exception
    table = at.dataframe[1].value  # nearest models, then the ODE table
    assert list(table["params_b"]) == pytest.approx([f * row["params_b"] for f in core.SCALE_FACTORS])
    near = at.dataframe[0].value
    assert near["model"].iloc[0] == "Pythia-410M"  # the model itself is nearest


@pytest.mark.slow
def test_posterior_band_matches_solving_each_draw(ex):
    ex.posterior_job.start().wait(timeout=300)
    assert ex.posterior_job.state == "done", ex.posterior_job.error
    row = cd.load_base_models().query("model == 'OPT-1.3B'").iloc[0]
    inp, _ = core.parse_model(row["params_b"], {b: row[b] for b in BENCH})
    out = views.ode_prediction(ex, inp)
    lo, hi = out["band"]
    # second method: one predict_scores call per draw (no vmap, no padding), same quantiles
    draws = ex.nc_draws(None)[::8]  # a subsample keeps the loop short
    scores0 = np.array([row[b] for b in BENCH])
    sizes = [f * row["params_b"] for f in core.SCALE_FACTORS]
    lo, hi = views._band(ex.model, scores0, row["params_b"], np.array(sizes), draws)
    with x64():
        fam = ex.model.family_params(scores0, row["params_b"])
        each = np.stack([cd.predict_scores(ex.model.field_, cd.FamilyParams.make(d, fam.h),
                                           scores0, row["params_b"], sizes) for d in draws])
    want_lo, want_hi = np.quantile(each, core.BAND_QUANTILES, axis=0)
    assert np.all(lo <= hi)
    np.testing.assert_allclose(lo, want_lo, atol=1e-6)
    np.testing.assert_allclose(hi, want_hi, atol=1e-6)


def test_nc_view_renders():
    at = _app("Nc posteriors")
    assert not at.error and not at.exception
