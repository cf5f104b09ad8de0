"""Reading lm-evaluation-harness and Open LLM Leaderboard v1 result files (capedyn.data.ingest,
``capedyn ingest``).

The fixtures in tests/fixtures/ are small files in each tool's layout (written by
tests/fixtures/make_fixtures.py). Every expected percentage below is computed by hand from
the numbers in those files: a score stored as the fraction 0.4721 is 47.21%.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capedyn as cd
from capedyn._errors import CapedynError
from capedyn.cli.entry import main
from capedyn.data.ingest import (
    LEADERBOARD_V1_SHOTS, MMLU_SUBJECTS, IngestError, read_results, to_csv_text,
)

FIX = Path(__file__).parent / "fixtures"
LM04 = FIX / "lm_eval_v04"
LM03 = FIX / "lm_eval_v03"
LB = FIX / "leaderboard_v1"
ACME_1B = LM04 / "acme__acme-1b"
ACME_1B_FILES = sorted(ACME_1B.glob("results_*.json"))
LB_13B = LB / "acme" / "acme-13b" / "results_2023-10-10T10-10-10.000000.json"
LB_30B = LB / "acme" / "acme-30b" / "results_2023-07-19T10-10-10.000000.json"
SCORES = ["hellaswag", "truthfulqa", "arc", "winogrande", "mmlu"]


def scores(row) -> list[float]:
    return [float(row[c]) for c in SCORES]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------------------- lm-eval

def test_lm_eval_split_run_is_merged_into_one_row():
    """acme-1b ran its tasks in two invocations: file 1 holds hellaswag (acc_norm 0.4721),
    arc_challenge (acc_norm 0.2858) and winogrande (acc 0.5517); file 2 holds
    truthfulqa_mc2 (acc 0.3895) and the mmlu group (acc 0.2611)."""
    assert len(ACME_1B_FILES) == 2
    df = cd.read_lm_eval(ACME_1B)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["model"] == "acme/acme-1b"
    assert row["family"] == "acme"                     # the name without its size
    assert scores(row) == pytest.approx([47.21, 38.95, 28.58, 55.17, 26.11], abs=1e-9)
    assert row["params_b"] == pytest.approx(1_100_048_384 / 1e9)   # config.model_num_parameters
    for f in ACME_1B_FILES:                            # the source names both files
        assert f.name in row["source"]
    assert row["source"].startswith("lm-eval 0.4")
    # shots from n-shot; the mmlu group's count from its subjects (5)
    assert row["n_shot"] == "hellaswag=10;truthfulqa=0;arc=25;winogrande=5;mmlu=5"
    assert row["flags"] == "mmlu_size_weighted"        # protocol shots: no n_shot flag


def test_lm_eval_dict_model_args_and_zero_shot_flag():
    """acme-7b: model_args is a dict, no model_name, no parameter count, every task 0-shot."""
    path = LM04 / "acme__acme-7b"
    with pytest.raises(IngestError) as info:
        cd.read_lm_eval(path)
    msg = str(info.value)
    assert "acme/acme-7b" in msg and "--params-b" in msg and "results_2024-05-03" in msg
    row = cd.read_lm_eval(path, params_b=6.9, family="Acme").iloc[0]
    assert (row["model"], row["family"], row["params_b"]) == ("acme/acme-7b", "Acme", 6.9)
    assert scores(row) == pytest.approx([70.12, 35.12, 44.37, 66.54, 34.21], abs=1e-9)
    flags = row["flags"].split(";")
    assert "n_shot_differs(hellaswag 0 vs 10, arc 0 vs 25, winogrande 0 vs 5, mmlu 0 vs 5)" in flags
    assert "truthfulqa" not in flags[0]                # 0-shot TruthfulQA is the protocol


def test_lm_eval_older_filterless_keys_two_results_json():
    """Pre-0.4 layout: 'acc_norm' without a filter, truthfulqa_mc's mc2, shots from
    config.num_fewshot, model from config.model_args; two results.json for one model."""
    df = cd.read_lm_eval(LM03, params_b=[2.8])
    row = df.iloc[0]
    assert row["model"] == "acme/acme-3b"
    assert row["arc"] == pytest.approx(36.12) and row["truthfulqa"] == pytest.approx(37.01)
    assert math.isnan(row["hellaswag"]) and math.isnan(row["winogrande"]) and math.isnan(row["mmlu"])
    assert row["n_shot"] == "truthfulqa=0;arc=25"
    assert "incomplete" in row["flags"] and "n_shot_differs" not in row["flags"]
    assert "arc/results.json" in row["source"] and "truthfulqa/results.json" in row["source"]


def test_filterless_keys_in_a_v04_style_file_and_model_args_string(tmp_path):
    data = json.loads(ACME_1B_FILES[0].read_text())
    del data["model_name"]                             # falls back to config.model_args
    data["results"]["hellaswag"] = {"acc_norm": 0.5, "acc": 0.4}
    p = tmp_path / "results.json"
    p.write_text(json.dumps(data))
    row = cd.read_lm_eval(p).iloc[0]
    assert row["model"] == "acme/acme-1b" and row["hellaswag"] == 50.0


def test_two_files_that_disagree_name_both(tmp_path):
    for f in ACME_1B_FILES:
        shutil.copy(f, tmp_path / f.name)
    second = tmp_path / ACME_1B_FILES[1].name
    data = json.loads(second.read_text())
    data["results"]["hellaswag"] = {"alias": "hellaswag", "acc_norm,none": 0.4800}
    data["n-shot"]["hellaswag"] = 10
    second.write_text(json.dumps(data))
    with pytest.raises(IngestError) as info:
        cd.read_lm_eval(tmp_path)
    msg = str(info.value)
    assert ACME_1B_FILES[0].name in msg and ACME_1B_FILES[1].name in msg
    assert "hellaswag" in msg and "48" in msg and "47.21" in msg
    # the same value in both files is no conflict
    data["results"]["hellaswag"]["acc_norm,none"] = 0.4721
    second.write_text(json.dumps(data))
    assert cd.read_lm_eval(tmp_path).iloc[0]["hellaswag"] == pytest.approx(47.21)


# ----------------------------------------------------------------------------- leaderboard v1

def test_leaderboard_v1_newer_layout_all_57_subjects():
    """acme-13b: arc 0.5213, hellaswag 0.7845, truthfulqa mc2 0.3662, winogrande 0.7198;
    MMLU subject i (in the usual alphabetical order) has acc 0.45 + 0.01*(i mod 5), so 12
    subjects at 0.45, 12 at 0.46 and 11 each at 0.47, 0.48, 0.49."""
    assert len(MMLU_SUBJECTS) == len(set(MMLU_SUBJECTS)) == 57
    keys = [k for k in json.loads(LB_13B.read_text())["results"] if "hendrycksTest" in k]
    assert len(keys) == 57
    mmlu = 100 * (0.45 * 12 + 0.46 * 12 + 0.47 * 11 + 0.48 * 11 + 0.49 * 11) / 57  # 46.947...
    row = cd.read_leaderboard_v1(LB_13B, params_b=13).iloc[0]
    assert row["model"] == "acme/acme-13b"              # config_general.model_name
    assert scores(row) == pytest.approx([78.45, 36.62, 52.13, 71.98, mmlu], abs=1e-9)
    assert row["n_shot"] == "hellaswag=10;truthfulqa=0;arc=25;winogrande=5;mmlu=5"
    assert row["flags"] == ""
    assert row["source"].startswith("leaderboard-v1") and LB_13B.name in row["source"]


def test_leaderboard_v1_older_layout():
    """acme-30b (config.model_name, no WinoGrande yet): MMLU is 56 subjects at 0.55 and
    abstract_algebra at 0.31."""
    row = cd.read_leaderboard_v1(LB_30B, params_b=30).iloc[0]
    assert row["model"] == "acme/acme-30b"
    assert row["mmlu"] == pytest.approx(100 * (56 * 0.55 + 0.31) / 57, abs=1e-9)  # 54.5789...
    assert [row["hellaswag"], row["truthfulqa"], row["arc"]] == pytest.approx([82.31, 41.05, 58.02])
    assert math.isnan(row["winogrande"]) and "incomplete" in row["flags"]


def test_leaderboard_v1_needs_a_size():
    with pytest.raises(IngestError) as info:
        cd.read_leaderboard_v1(LB_13B)
    assert str(LB_13B) in str(info.value) and "--params-b" in str(info.value)


def test_leaderboard_missing_subjects_are_named(tmp_path):
    data = json.loads(LB_13B.read_text())
    for s in ("virology", "anatomy", "marketing"):
        del data["results"][f"harness|hendrycksTest-{s}|5"]
    p = tmp_path / "results_x.json"
    p.write_text(json.dumps(data))
    with pytest.raises(IngestError) as info:
        cd.read_leaderboard_v1(p, params_b=13)
    msg = str(info.value)
    assert "54 of the 57" in msg and str(p) in msg
    assert "anatomy" in msg and "marketing" in msg and "virology" in msg


def test_unknown_layout_names_file_and_expected_keys(tmp_path):
    p = tmp_path / "results.json"
    p.write_text(json.dumps({"scores": {"hs": 0.5}}))
    with pytest.raises(IngestError) as info:
        read_results(p)
    msg = str(info.value)
    assert len(msg.splitlines()) == 1 and str(p) in msg
    assert "'scores'" in msg and "acc_norm,none" in msg and "harness|arc:challenge|25" in msg


def test_wrong_format_flag_says_which_format_it_is():
    with pytest.raises(IngestError, match="leaderboard-v1 file, not lm-eval"):
        cd.read_lm_eval(LB_13B)


def test_fraction_check_rejects_percent_in_a_result_file(tmp_path):
    data = json.loads(LB_13B.read_text())
    data["results"]["harness|hellaswag|10"]["acc_norm"] = 78.45     # already percent
    p = tmp_path / "results_y.json"
    p.write_text(json.dumps(data))
    with pytest.raises(IngestError, match=r"not a fraction in \[0, 1\]"):
        cd.read_leaderboard_v1(p, params_b=13)


# ----------------------------------------------------------------------------- the command

def test_cli_ingest_all_fixtures_json_and_csv(tmp_path):
    out = tmp_path / "acme.csv"
    # models in the order listed: acme-1b (size in file), acme-7b, acme-3b, acme-13b, acme-30b
    rc, stdout, err = run_cli("ingest", str(LM04), str(LM03), str(LB), "--family", "Acme",
                              "--params-b", "6.9,2.8,13,30", "--out", str(out), "--json")
    assert rc == 0, err
    result = json.loads(stdout)
    rows = {r["model"]: r for r in result["rows"]}
    assert list(rows) == ["acme/acme-1b", "acme/acme-3b", "acme/acme-7b", "acme/acme-13b",
                          "acme/acme-30b"]                           # sorted by size
    for r in result["rows"]:
        assert {"model", "family", "params_b", *SCORES, "source"} <= set(r)
        assert r["family"] == "Acme"
    assert rows["acme/acme-3b"]["hellaswag"] is None                 # missing → null
    assert rows["acme/acme-7b"]["params_b"] == 6.9 and rows["acme/acme-30b"]["params_b"] == 30
    assert result["out"] == str(out)
    loaded = cd.load_base_models(out)                                # passes the loader
    assert list(loaded["model"]) == list(rows)
    assert loaded.set_index("model").loc["acme/acme-13b", "mmlu"] == pytest.approx(
        100 * 26.76 / 57, abs=1e-5)
    # every other command accepts it
    rc, stdout, err = run_cli("coupling", "--data", str(out), "--json")
    assert rc == 0, err
    assert len(json.loads(stdout)["pairs"]) == 3       # four models with HS and TQA → 3 pairs


def test_cli_ingest_size_count_mismatch_lists_the_models():
    rc, out, err = run_cli("ingest", str(LB), "--params-b", "13")
    assert rc == 2 and out == ""
    assert "1 size(s) given for 2 model(s)" in err and "acme/acme-13b, acme/acme-30b" in err


def test_cli_ingest_human_output():
    rc, out, err = run_cli("ingest", str(ACME_1B))
    assert rc == 0, err
    assert "acme/acme-1b" in out and "47.21" in out and "mmlu_size_weighted" in out


def test_csv_text_round_trips(tmp_path):
    df = cd.read_lm_eval(ACME_1B)
    p = tmp_path / "t.csv"
    p.write_text(to_csv_text(df))
    back = cd.load_base_models(p)
    assert np.allclose(back[SCORES].to_numpy(float), df[SCORES].to_numpy(float))
    assert back["n_shot"].iloc[0] == df["n_shot"].iloc[0]


def test_protocol_shot_counts():
    assert LEADERBOARD_V1_SHOTS == {"arc": 25, "hellaswag": 10, "truthfulqa": 0,
                                    "winogrande": 5, "mmlu": 5}


# ----------------------------------------------------------------------------- fuzzing

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                       st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=12))
_json = st.recursive(_json_leaf, lambda c: st.one_of(
    st.lists(c, max_size=4), st.dictionaries(st.text(max_size=12), c, max_size=4)),
    max_leaves=20)
_TEMPLATES = [json.loads(p.read_text()) for p in
              (*ACME_1B_FILES, LM04 / "acme__acme-7b" / "results_2024-05-03T09-00-00.000001.json",
               LM03 / "truthfulqa" / "results.json", LB_13B, LB_30B)]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, path, kind, value):
    if not path:
        return value if kind == "set" else doc
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def _check_table(df: pd.DataFrame) -> None:
    assert len(df) >= 1
    sizes = df["params_b"].to_numpy(float)
    assert np.all(np.isfinite(sizes)) and np.all(sizes > 0)
    values = df[SCORES].to_numpy(float)
    present = values[~np.isnan(values)]
    assert np.all((present >= 0) & (present <= 100))
    assert np.all((~np.isnan(values)).any(axis=1))     # no row without any score


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), fmt=st.sampled_from(["auto", "lm-eval", "leaderboard-v1"]))
def test_random_and_damaged_result_files_never_traceback(tmp_path, data, fmt):
    """Random JSON, and real layouts with random damage: a table with finite values, or a
    CapedynError -- never another exception, never a NaN where a score was read."""
    if data.draw(st.booleans()):
        doc = data.draw(_json)
    else:
        doc = json.loads(json.dumps(data.draw(st.sampled_from(_TEMPLATES))))
        for _ in range(data.draw(st.integers(1, 3))):
            paths = list(_paths(doc))
            path = data.draw(st.sampled_from(paths))
            doc = _mutate(doc, path, data.draw(st.sampled_from(["set", "delete"])),
                          data.draw(_json))
    p = tmp_path / "results_fuzz.json"
    text = json.dumps(doc, allow_nan=True)
    if data.draw(st.integers(0, 9)) == 0:              # now and then, damaged text
        cut = data.draw(st.integers(0, len(text)))
        text = text[:cut]
    p.write_text(text, encoding="utf-8")
    params = data.draw(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                                 st.lists(st.floats(-5, 100), max_size=3)))
    try:
        df = read_results(p, format=fmt, params_b=params)
    except CapedynError:
        return
    _check_table(df)


# ----------------------------------------------------------------------------- the example

@pytest.mark.slow
def test_example_from_lm_eval_quick():
    import runpy

    path = Path(__file__).resolve().parents[1] / "examples" / "from_lm_eval.py"
    with contextlib.redirect_stdout(io.StringIO()):
        r = runpy.run_path(str(path), run_name="example")["main"](["--quick"])
    table = r["table"]
    # the bundled files store acc_norm 0.4061/0.5214/0.5932 (HellaSwag) and mc2
    # 0.4124/0.3872/0.3641 (TruthfulQA) for 405,334,016 / 1,414,647,808 / 2,775,208,960 parameters
    assert table["hellaswag"].tolist() == pytest.approx([40.61, 52.14, 59.32])
    assert table["truthfulqa"].tolist() == pytest.approx([41.24, 38.72, 36.41])
    assert table["params_b"].tolist() == pytest.approx([0.405334016, 1.414647808, 2.775208960])
    assert set(table["family"]) == {"Acme"}
    post = r["posterior"]
    assert post["n_obs"] == 2                     # two consecutive pairs, |ΔHS| ≥ 0.5 each
    assert post["nc_ci95_lo_b"] <= post["nc_ci68_lo_b"] <= post["nc_median_b"] \
        <= post["nc_ci68_hi_b"] <= post["nc_ci95_hi_b"]
    assert r["start"]["model"] == "acme-lab/acme-2.8b"
    assert r["start"]["params_b"] == pytest.approx(2.775208960)
    pred = r["predictions"]
    assert pred["params_b"].tolist() == [6.9, 12.0]
    values = pred[SCORES].to_numpy(float)
    assert np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 100))
    # the coupling ODE's field parameter is not reported as the family's Nc
    assert "nc_fit_b" not in r
