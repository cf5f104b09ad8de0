"""``capedyn family`` / ``cd.family_nc``: an invented three-size family written as
lm-evaluation-harness files, ingested as a user would, to its coupling-level Nc interval
with the shipped families as prior. The expected crossing is computed by hand from the
invented scores; the sampler settings are short (the flag test deliberately so)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

import capedyn as cd
from capedyn.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from make_fixtures import v04_file  # noqa: E402  (the harness's v0.4 layout)

# name, parameters, hellaswag, truthfulqa, arc, winogrande, mmlu (fractions, as lm-eval writes)
ZETA = [("zeta-lab/zeta-1b", 1_000_000_000, 0.50, 0.38, 0.30, 0.55, 0.26),
        ("zeta-lab/zeta-3b", 3_000_000_000, 0.60, 0.36, 0.36, 0.60, 0.27),
        ("zeta-lab/zeta-9b", 9_000_000_000, 0.68, 0.38, 0.42, 0.65, 0.30)]


def write_zeta(root: Path) -> Path:
    for i, (name, n, hs, tqa, arc, wg, mmlu) in enumerate(ZETA):
        out = root / name.replace("/", "__") / f"results_2025-01-0{i + 1}T08-00-00.000000.json"
        out.parent.mkdir(parents=True)
        out.write_text(json.dumps(v04_file(
            f"pretrained={name},dtype=bfloat16",
            {"hellaswag": (10, {"acc": hs - 0.1, "acc_norm": hs}),
             "truthfulqa_mc2": (0, {"acc": tqa}),
             "arc_challenge": (25, {"acc": arc - 0.02, "acc_norm": arc}),
             "winogrande": (5, {"acc": wg})},
            model_name=name, n_params=n, mmlu=(mmlu, {"abstract_algebra": (mmlu, 5)}))))
    return root


def crossing_b() -> float:
    """Where γ12 turns from tax to bonus between Zeta's two pairs, interpolated in log N."""
    (_, n0, h0, t0, *_), (_, n1, h1, t1, *_), (_, n2, h2, t2, *_) = ZETA
    g = [(t1 - t0) / (h1 - h0), (t2 - t1) / (h2 - h1)]   # -0.2 then +0.25
    x = [0.5 * math.log10(n0 * n1), 0.5 * math.log10(n1 * n2)]
    assert g[0] < 0 < g[1]
    return 10 ** (x[0] - g[0] * (x[1] - x[0]) / (g[1] - g[0]) - 9)


@pytest.fixture(scope="module")
def zeta_csv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zeta")
    write_zeta(root / "runs")
    assert main(["ingest", str(root / "runs"), "--family", "Zeta",
                 "--out", str(root / "zeta.csv")]) == 0
    assert "n_shot" in pd.read_csv(root / "zeta.csv").columns  # the column that broke merges
    return root / "zeta.csv"


@pytest.fixture(scope="module")
def quick_run(zeta_csv, tmp_path_factory):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["family", str(zeta_csv), "--quick", "--no-progress", "--json"])
    assert code == 0
    return json.loads(buf.getvalue())


@pytest.mark.slow
def test_family_interval_holds_the_hand_computed_crossing(quick_run):
    nc = quick_run["nc_b"]
    assert nc["ci95"][0] <= nc["ci68"][0] <= nc["median"] <= nc["ci68"][1] <= nc["ci95"][1]
    assert nc["ci95"][0] < crossing_b() < nc["ci95"][1]
    assert quick_run["family"] == "Zeta" and quick_run["n_pairs"] == 2
    shipped = set(cd.load_base_models()["family"])
    assert set(quick_run["prior_families"]) <= shipped and "Zeta" not in shipped
    assert quick_run["quick"] is True


@pytest.mark.slow
def test_family_predicts_the_next_sizes_from_the_largest_model(quick_run):
    assert quick_run["start"] == {"model": "zeta-lab/zeta-9b", "params_b": 9.0}
    preds = quick_run["predictions"]
    assert [p["params_b"] for p in preds] == [18.0, 36.0]  # 2x and 4x the largest
    for p in preds:
        assert all(0 < p[b] < 100 for b in cd.BENCHMARKS)
    assert quick_run["prediction_intervals"] is None


@pytest.mark.slow
def test_too_short_a_run_is_flagged_not_converged(zeta_csv):
    res = cd.family_nc(zeta_csv, chains=2, samples=20, warmup=5, predict=False,
                       progress=False)
    assert res.rhat_max > 1.01 or res.divergences > 0  # 20 draws cannot mix 19 families
    assert res.converged is False
    assert any(w.startswith("NOT CONVERGED") for w in res.warnings)
    from capedyn.cli.family import _family_human

    text = _family_human({**res.to_dict(), "quick": False})
    assert "NOT CONVERGED" in text


def test_family_refuses_a_shipped_family_name(tmp_path, base_df):
    opt = base_df[base_df["family"] == "OPT"]
    path = tmp_path / "opt.csv"
    opt.to_csv(path, index=False)
    with pytest.raises(cd.CapedynError, match="also a shipped family"):
        cd.family_nc(path, progress=False)


def test_family_needs_one_family_or_a_name(tmp_path, base_df):
    two = base_df[base_df["family"].isin(["OPT", "Pythia"])].assign(
        family=lambda d: d["family"] + "-mine", model=lambda d: d["model"] + "-mine")
    with pytest.raises(cd.CapedynError, match="holds 2 families"):
        cd.family_nc(two, progress=False)


def test_family_command_error_is_one_line(tmp_path, capsys):
    path = tmp_path / "one.csv"
    path.write_text("model,family,params_b,hellaswag,truthfulqa,arc,winogrande,mmlu\n"
                    "a-1b,A,1,50,38,30,55,26\n", encoding="utf-8")
    assert main(["family", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no usable running-coupling pair" in err
