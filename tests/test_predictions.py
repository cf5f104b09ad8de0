"""The predictions tracker: every status is computed from the data and moves with it.

Each test writes a modified copy of a shipped table to a temporary CSV and checks that the
status of the prediction that reads it changes, with the expected status worked out here
from the CSV values (not copied from the code's output).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import capedyn as cd
from capedyn.evaluation.predictions import PREDICTIONS, STATUSES, evaluate

BENCH = ["hellaswag", "truthfulqa", "arc", "winogrande", "mmlu"]
TODAY = "2026-11-27"


def _one(pid, base=None, frontier=None, on=TODAY):
    (row,) = evaluate(base, frontier, on=on, ids=[pid])
    assert row["id"] == pid and row["status"] in STATUSES and row["evidence"]
    return row


@pytest.fixture(scope="module")
def base():
    return cd.load_base_models()


@pytest.fixture(scope="module")
def frontier():
    return cd.load_frontier_models()


def _write(df, path):
    df.to_csv(path, index=False)
    return str(path)


def test_every_prediction_is_data_with_a_test():
    ids = [p.id for p in PREDICTIONS]
    assert len(ids) == len(set(ids)) == 7
    for p in PREDICTIONS:
        assert callable(p.test) and p.claim and p.rule and p.needs
        assert not hasattr(p, "status")  # never stored


def test_olmo_zero_coupling_follows_the_olmo_rows(base, tmp_path):
    olmo = base[base["family"] == "OLMo"].sort_values("params_b")
    dtqa = olmo["truthfulqa"].iloc[-1] - olmo["truthfulqa"].iloc[0]
    expected = "confirmed" if abs(dtqa) <= 1.0 else "refuted"
    assert _one("olmo_gamma_zero", base)["status"] == expected
    changed = base.copy()
    i = changed.index[changed["model"] == olmo["model"].iloc[-1]][0]
    changed.loc[i, "truthfulqa"] = olmo["truthfulqa"].iloc[0] + (4.0 if expected == "confirmed" else 0.2)
    flipped = "refuted" if expected == "confirmed" else "confirmed"
    assert _one("olmo_gamma_zero", _write(changed, tmp_path / "b.csv"))["status"] == flipped
    gone = base[base["family"] != "OLMo"]
    row = _one("olmo_gamma_zero", _write(gone, tmp_path / "c.csv"))
    assert row["status"] == "untestable" and "OLMo" in row["evidence"]


def test_llama2_crossprediction_moves_with_the_llama2_rows(base, tmp_path):
    fit = cd.load_fit("pythia")
    ll = base[base["family"] == "Llama-2"].sort_values("params_b")
    start, targets = ll.iloc[0], ll.iloc[1:]
    pred = fit.predict(start, targets["params_b"].to_numpy())[BENCH].to_numpy()
    actual = targets[BENCH].to_numpy()
    rel = 100 * np.abs(pred - actual).mean() / actual.mean()  # by hand: 100·mean|err|/mean(actual)
    row = _one("ode_llama2_crosspredict", base)
    assert math.isclose(row["values"]["rel_mae_pct"], rel, rel_tol=1e-6)
    assert "shipped fit" in row["evidence"]
    # a Llama-2 that follows the ODE's trajectory up to 0.5 points: the claim then holds
    changed = base.copy()
    rng = np.random.default_rng(0)
    for k, (_, t) in enumerate(targets.iterrows()):
        i = changed.index[changed["model"] == t["model"]][0]
        changed.loc[i, BENCH] = np.round(pred[k] + rng.uniform(-0.5, 0.5, 5), 2)
    statuses = {row["status"], _one("ode_llama2_crosspredict",
                                    _write(changed, tmp_path / "b.csv"))["status"]}
    expected_before = "confirmed" if rel <= 5.6 else "refuted"
    assert row["status"] == expected_before
    assert statuses == {"refuted", "confirmed"} or expected_before == "confirmed"


def test_qwen3_all_scales(base, tmp_path):
    q = base[base["family"] == "Qwen3"]
    assert len(q) == 1  # shipped: one size only, so "all scales" cannot be tested
    assert _one("qwen3_cooperative", base)["status"] == "untestable"
    small = pd.DataFrame([{"model": "Qwen3-1.7B", "family": "Qwen3", "params_b": 1.7,
                           "hellaswag": 60.0, "truthfulqa": 48.0}])  # sqrt(.187*.6)=33.5% < 48
    two = pd.concat([base, small], ignore_index=True)
    assert _one("qwen3_cooperative", _write(two, tmp_path / "b.csv"))["status"] == "confirmed"
    tax = base.copy()
    i = tax.index[tax["family"] == "Qwen3"][0]
    tax.loc[i, "truthfulqa"] = 30.0  # below sqrt(0.187*0.82) = 39.2%: tax phase
    assert _one("qwen3_cooperative", _write(tax, tmp_path / "c.csv"))["status"] == "refuted"


def test_swe_saturation_depends_on_scores_and_date(frontier, tmp_path):
    top = np.sort(frontier["swe_bench"].to_numpy())[::-1][:5]
    spent = top.max() - top.min() < 2.0
    assert _one("swe_saturation_dec2026", frontier)["status"] == ("confirmed" if spent else "pending")
    after = _one("swe_saturation_dec2026", frontier, on="2027-01-02")["status"]
    assert after == ("confirmed" if spent else "refuted")
    squeezed = frontier.copy()
    squeezed["swe_bench"] = squeezed["swe_bench"].clip(upper=float(top[4]) + 1.0)
    row = _one("swe_saturation_dec2026", None, _write(squeezed, tmp_path / "f.csv"))
    assert row["status"] == "confirmed"


def _with_ifeval(frontier, ife, hle=None):
    out = frontier.copy()
    pad = [np.nan] * (len(out) - len(ife))
    out["ifeval"] = list(ife) + pad
    if hle is not None:
        out["hle"] = list(hle) + pad
    return out


def test_ifeval_activation(frontier, tmp_path):
    assert _one("ifeval_activation", None, frontier)["status"] == "untestable"
    ife = [80.0, 82.0, 84.0, 86.0, 88.0, 90.0, 92.0]
    up = _with_ifeval(frontier, ife, [10.0, 14.0, 13.0, 18.0, 20.0, 24.0, 25.0])
    down = _with_ifeval(frontier, ife, [25.0, 24.0, 20.0, 18.0, 13.0, 14.0, 10.0])
    assert _one("ifeval_activation", None, _write(up, tmp_path / "u.csv"))["status"] == "confirmed"
    assert _one("ifeval_activation", None, _write(down, tmp_path / "d.csv"))["status"] == "refuted"
    few = _with_ifeval(frontier, ife[:3], [10.0, 14.0, 13.0])
    assert _one("ifeval_activation", None, _write(few, tmp_path / "x.csv"))["status"] == "untestable"


def test_lab_persistence_reads_the_post_freeze_releases(frontier, tmp_path):
    row = _one("lab_trajectory_persistence", None, frontier)
    assert row["status"] == "confirmed"
    # by hand: Kimi K2.6 against the frozen line (least squares over non-post-cutoff rows)
    frozen = frontier[frontier["subset"] != "post_cutoff"]
    a, b = np.polyfit(frozen["swe_bench"], frozen["gpqa_diamond"], 1)
    k25 = frontier[frontier["model"] == "Kimi K2.5"].iloc[0]
    assert k25["gpqa_diamond"] - (a * k25["swe_bench"] + b) > 0
    changed = frontier.copy()
    i = changed.index[changed["model"] == "Kimi K2.6"][0]
    changed.loc[i, "gpqa_diamond"] = 70.0
    assert 70.0 - (a * changed.loc[i, "swe_bench"] + b) < 0  # now on the other side
    row = _one("lab_trajectory_persistence", None, _write(changed, tmp_path / "f.csv"))
    assert row["status"] == "refuted" and "Kimi K2.6" in row["evidence"]


def test_nc4_cascade_needs_ifeval(frontier, tmp_path):
    assert _one("nc4_cascade", None, frontier)["status"] == "untestable"
    tight = _with_ifeval(frontier, [90.0, 90.5, 91.0, 91.2, 91.5, 70.0])
    wide = _with_ifeval(frontier, [80.0, 84.0, 88.0, 91.2, 91.5, 70.0])
    assert _one("nc4_cascade", None, _write(tight, tmp_path / "t.csv"))["status"] == "confirmed"
    assert _one("nc4_cascade", None, _write(wide, tmp_path / "w.csv"))["status"] == "pending"


def test_cli_json_shape_and_data_flags(base, tmp_path, capsys):
    from capedyn.cli.entry import main

    tax = base.copy()
    tax.loc[tax.index[tax["family"] == "Qwen3"][0], "truthfulqa"] = 30.0
    path = _write(tax, tmp_path / "b.csv")
    assert main(["predictions", "--json", "--data", path, "--today", TODAY,
                 "--id", "qwen3_cooperative,swe_saturation_dec2026"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["id"] for p in out["predictions"]] == ["qwen3_cooperative", "swe_saturation_dec2026"]
    for p in out["predictions"]:
        assert {"id", "claim", "deadline", "status", "evidence"} <= set(p)
    assert out["predictions"][0]["status"] == "refuted"
    assert out["predictions"][1]["deadline"] == "2026-12-31"
    assert main(["predictions", "--id", "nope"]) == 2
    assert "unknown prediction" in capsys.readouterr().err
    assert main(["predictions", "--today", "27/11/2026"]) == 2
