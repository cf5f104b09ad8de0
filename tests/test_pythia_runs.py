"""Pythia as two measured training runs, the paper's mixed table as a named variant, and
estimated rows kept out of every default fit.

The expected values come from the upstream copies in ``tests/fixtures/upstream/`` (the
leaderboard's results table and the table as shipped before the split), read here with
the csv module, never through capedyn's loader or build script."""

from __future__ import annotations

import csv
import json
import math
from importlib import resources
from pathlib import Path

import pytest

import capedyn as cd
from capedyn.data.tables import BENCHMARKS, DataError, estimated_rows

UPSTREAM = Path(__file__).parent / "fixtures" / "upstream"
SHARED_RUNS = Path(__file__).resolve().parents[2] / "shared" / "data" / "leaderboard_v1" / "pythia_both_runs.csv"

# leaderboard model id -> (shipped model name, family), written out by hand: the standard
# 2.8B and 6.9B are listed under their pre-rename names, the standard 1B has no row, and
# of the two standard 1.4B evaluations the one under the current name is shipped.
EXPECTED_ROWS = {
    "EleutherAI/pythia-70m": ("Pythia-70M", "Pythia"),
    "EleutherAI/pythia-160m": ("Pythia-160M", "Pythia"),
    "EleutherAI/pythia-410m": ("Pythia-410M", "Pythia"),
    "EleutherAI/pythia-1.4b": ("Pythia-1.4B", "Pythia"),
    "EleutherAI/pythia-2.7b": ("Pythia-2.8B", "Pythia"),
    "EleutherAI/pythia-6.7b": ("Pythia-6.9B", "Pythia"),
    "EleutherAI/pythia-12b": ("Pythia-12B", "Pythia"),
    "EleutherAI/pythia-70m-deduped": ("Pythia-70M-deduped", "Pythia-deduped"),
    "EleutherAI/pythia-160m-deduped": ("Pythia-160M-deduped", "Pythia-deduped"),
    "EleutherAI/pythia-410m-deduped": ("Pythia-410M-deduped", "Pythia-deduped"),
    "EleutherAI/pythia-1b-deduped": ("Pythia-1B-deduped", "Pythia-deduped"),
    "EleutherAI/pythia-1.4b-deduped": ("Pythia-1.4B-deduped", "Pythia-deduped"),
    "EleutherAI/pythia-2.8b-deduped": ("Pythia-2.8B-deduped", "Pythia-deduped"),
    "EleutherAI/pythia-6.9b-deduped": ("Pythia-6.9B-deduped", "Pythia-deduped"),
    "EleutherAI/pythia-12b-deduped": ("Pythia-12B-deduped", "Pythia-deduped"),
}


def _leaderboard() -> dict[str, dict[str, str]]:
    with open(UPSTREAM / "pythia_both_runs.csv", newline="") as fh:
        return {r["model_id"]: r for r in csv.DictReader(fh)}


def _old_table() -> list[dict[str, str]]:
    with open(UPSTREAM / "base_models_95e7a9e.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_fixture_is_the_shared_leaderboard_file():
    if not SHARED_RUNS.is_file():
        pytest.skip("the shared data folder is not beside the repository")
    assert (UPSTREAM / "pythia_both_runs.csv").read_bytes() == SHARED_RUNS.read_bytes()


def test_every_pythia_row_equals_the_leaderboard_within_0p01():
    lb = _leaderboard()
    df = cd.load_base_models()
    shipped = df[df["family"].isin(["Pythia", "Pythia-deduped"])].set_index("model")
    assert sorted(shipped.index) == sorted(name for name, _ in EXPECTED_ROWS.values())
    for model_id, (name, family) in EXPECTED_ROWS.items():
        row = shipped.loc[name]
        assert row["family"] == family
        for b in BENCHMARKS:
            assert abs(row[b] - float(lb[model_id][b])) <= 0.01, (name, b)
        assert row["source"] == "HF-LLB-v1-table" and not estimated_rows(shipped.loc[[name]]).any()
    # sizes follow the names: 70M = 0.07 B ... 12B = 12 B
    sizes = {"70M": 0.07, "160M": 0.16, "410M": 0.41, "1B": 1.0, "1.4B": 1.4, "2.8B": 2.8,
             "6.9B": 6.9, "12B": 12.0}
    for name in shipped.index:
        label = name.removeprefix("Pythia-").removesuffix("-deduped")
        assert shipped.loc[name, "params_b"] == sizes[label]


def test_the_two_runs_are_distinct_measurements():
    """The old table's 160M was the deduped run's row: it now sits in Pythia-deduped."""
    df = cd.load_base_models().set_index("model")
    lb = _leaderboard()
    assert df.loc["Pythia-160M", "hellaswag"] == float(lb["EleutherAI/pythia-160m"]["hellaswag"])
    assert df.loc["Pythia-160M-deduped", "hellaswag"] == float(
        lb["EleutherAI/pythia-160m-deduped"]["hellaswag"])
    assert "Pythia-1B" not in df.index  # the standard 1B was never on the leaderboard


def test_paper_variant_reproduces_the_old_table_exactly():
    old = _old_table()
    paper = cd.load_base_models(variant="paper")
    assert len(paper) == len(old) == 61
    by_model = paper.set_index("model")
    for r in old:
        row = by_model.loc[r["model"]]
        assert row["family"] == r["family"] and row["params_b"] == float(r["params_b"])
        for b in BENCHMARKS:
            want = float(r[b]) if r[b] else math.nan
            assert (row[b] == want) or (math.isnan(want) and math.isnan(row[b])), (r["model"], b)
        assert (row["source"], row["flags"]) == (r["source"], r["flags"])
    # the shipped paper file is the old file, byte for byte
    shipped = resources.files("capedyn.benchmarks_data").joinpath("base_models_paper.csv")
    assert shipped.read_bytes() == (UPSTREAM / "base_models_95e7a9e.csv").read_bytes()
    assert cd.load_base_models("@paper").equals(paper)


def test_paper_variant_pythia_is_the_mixed_family():
    """Old 160M / 1B / 2.8B are the deduped rows (to the 0.05 rounding of the old table)."""
    lb = _leaderboard()
    paper = cd.load_base_models(variant="paper").set_index("model")
    for name, model_id in [("Pythia-160M", "pythia-160m-deduped"),
                           ("Pythia-1B", "pythia-1b-deduped"),
                           ("Pythia-2.8B", "pythia-2.8b-deduped")]:
        for b in BENCHMARKS:
            assert abs(paper.loc[name, b] - float(lb["EleutherAI/" + model_id][b])) <= 0.05 + 1e-9


def test_no_estimated_row_in_the_default_table():
    df = cd.load_base_models()
    assert not estimated_rows(df).any() and df.attrs["excluded_estimated"] == []
    paper = cd.load_base_models(variant="paper")
    est = sorted(paper.loc[estimated_rows(paper), "model"])
    assert est == sorted(r["model"] for r in _old_table() if "partly_estimated" in r["flags"])
    assert est == ["Pythia-12B", "Pythia-6.9B"]


def test_estimated_rows_in_a_csv_are_left_out_unless_asked(tmp_path):
    path = tmp_path / "paper.csv"
    path.write_bytes((UPSTREAM / "base_models_95e7a9e.csv").read_bytes())
    default = cd.load_base_models(path)
    assert "Pythia-6.9B" not in set(default["model"]) and "Pythia-12B" not in set(default["model"])
    assert default.attrs["excluded_estimated"] == ["Pythia-6.9B", "Pythia-12B"]
    assert len(default) == 59
    asked = cd.load_base_models(path, include_estimated=True)
    assert len(asked) == 61
    trimmed = cd.load_base_models(variant="paper", include_estimated=False)
    assert sorted(trimmed["model"]) == sorted(default["model"])
    # the running coupling of the default load has no pair touching an estimated row
    pairs = cd.running_coupling(default)
    touched = set(pairs["model_from"]) | set(pairs["model_to"])
    assert "Pythia-2.8B" in touched and not touched & {"Pythia-6.9B", "Pythia-12B"}


def test_every_row_estimated_is_a_clear_error(tmp_path):
    path = tmp_path / "est.csv"
    path.write_text("model,family,params_b,hellaswag,truthfulqa,arc,winogrande,mmlu,flags\n"
                    "A-1B,A,1,50,40,30,55,26,partly_estimated\n")
    with pytest.raises(DataError, match="estimated") as info:
        cd.load_base_models(path)
    assert str(path) in str(info.value) and "include_estimated=True" in str(info.value)


def test_unknown_variant_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="@measured, @paper"):
        cd.load_base_models(variant="papers")
    with pytest.raises(ValueError, match="cannot be combined"):
        cd.load_base_models(tmp_path / "x.csv", variant="paper")


@pytest.mark.parametrize("name", ["pythia", "all_families"])
def test_shipped_fits_were_trained_on_measured_rows_only(name):
    meta = json.loads(resources.files("capedyn.fits").joinpath(name, "meta.json").read_text())
    trained = {m for fam in meta["families"] for m in fam["models"]}
    old_estimated = {r["model"] for r in _old_table() if "partly_estimated" in r["flags"]}
    measured = cd.load_base_models().set_index("model")
    lb = _leaderboard()
    # every Pythia model a shipped fit saw carries the leaderboard's standard-run scores
    for fam in meta["families"]:
        if fam["name"] == "Pythia":
            assert fam["model"] == "Pythia-70M"
            assert fam["scores"] == pytest.approx(
                [float(lb["EleutherAI/pythia-70m"][b]) for b in BENCHMARKS], abs=0.01)
            assert "Pythia-1B" not in fam["models"]
    assert trained <= set(measured.index)
    assert not estimated_rows(measured.loc[sorted(trained)]).any()
    assert old_estimated <= set(measured.index)  # same names, now measured rows


@pytest.mark.parametrize("table,needle", [("measured", "**Base-model table: `measured`**"),
                                          ("paper", "**Base-model table: `paper`**")])
def test_reproduce_report_names_its_table(table, needle):
    from capedyn.report import RunConfig
    from capedyn.report.render import render_markdown
    from capedyn.report.s1_data import compute_data

    cfg = RunConfig.make(quick=True, seed=0, table=table)
    # the report's frame alone (no stage results): title, introduction, run details
    text = render_markdown({}, cfg, version="x", generated="now", timings={"total": 1.0})
    assert needle in text and text.count("Base-model table:") == 1
    data = compute_data(table)
    fams = set(data.families["family"])
    assert ({"Pythia", "Pythia-deduped"} <= fams) == (table == "measured")
    assert len(data.base) == (61 if table == "paper" else 68)


def test_reproduce_refuses_an_unknown_table(tmp_path):
    from capedyn.report import reproduce

    with pytest.raises(ValueError, match="measured, paper"):
        reproduce(tmp_path / "out", quick=True, table="mixed", progress=False)
    assert not (tmp_path / "out").exists()
