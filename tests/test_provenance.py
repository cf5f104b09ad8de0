"""The provenance scan (capedyn.data.provenance): rows carrying another model's scores are found.

References are the upstream copies in tests/fixtures/upstream/; the expected findings are
stated from those files (the old table's Pythia-160M, -1B and -2.8B are the deduped run's
rows; its 6.9B and 12B are estimates that match no measurement of their own name)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import json
import pandas as pd
import pytest

import capedyn as cd
from capedyn.data.provenance import flagged, model_key, read_references, scan_provenance

UPSTREAM = Path(__file__).parent / "fixtures" / "upstream"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "scan_provenance.py"


@pytest.fixture(scope="module")
def refs() -> pd.DataFrame:
    return read_references(collected_csv=UPSTREAM / "leaderboard_scores_collected.csv",
                           all_scores_json=UPSTREAM / "leaderboard_all_scores.json",
                           pythia_runs_csv=UPSTREAM / "pythia_both_runs.csv")


def test_model_key_maps_prerename_pythia_names():
    assert model_key("EleutherAI/pythia-2.7b") == model_key("Pythia-2.8B")
    assert model_key("EleutherAI/pythia-1.3b") == model_key("Pythia-1.4B")
    assert model_key("pythia-6.9b-deduped") == model_key("Pythia-6.9B-deduped")
    assert model_key("Llama-3-8B") == model_key("Llama3-8B")
    assert model_key("Pythia-2.8B") != model_key("Pythia-2.8B-deduped")


def test_scan_finds_the_mixed_rows_of_the_paper_table(refs):
    scan = scan_provenance(cd.load_base_models(variant="paper"), refs).set_index("model")
    hits = flagged(scan.reset_index())
    assert set(hits["model"]) == {"Pythia-160M", "Pythia-1B", "Pythia-2.8B", "Pythia-6.9B"}
    for name, run in [("Pythia-160M", "EleutherAI/pythia-160m-deduped"),
                      ("Pythia-1B", "EleutherAI/pythia-1b-deduped"),
                      ("Pythia-2.8B", "EleutherAI/pythia-2.8b-deduped")]:
        assert scan.loc[name, "other_ref"] == run and scan.loc[name, "other_distance"] < 0.05
    # the estimated 12B is nearest its own name, but more than half a point away
    assert scan.loc["Pythia-12B", "verdict"] == "far_from_own"
    assert scan.loc["Pythia-70M", "verdict"] == "own" and scan.loc["Pythia-70M", "own_distance"] < 0.05


def test_scan_of_the_shipped_table_finds_no_mixing(refs):
    scan = scan_provenance(cd.load_base_models(), refs)
    assert flagged(scan).empty
    assert not (scan["verdict"] == "far_from_own").any()
    pythia = scan[scan["family"].isin(["Pythia", "Pythia-deduped"])]
    assert len(pythia) == 15 and (pythia["verdict"] == "own").all()
    assert (pythia["own_distance"] == 0).all()
    # every row without a reference of its own comes from a non-leaderboard source
    orphans = scan[scan["verdict"] == "no_reference"]
    assert set(orphans["source"]) <= {"cape_26", "base_models_consolidated"}


def test_scan_flags_a_swapped_row(refs):
    """A synthetic table whose OPT-6.7B row holds OPT-13B's leaderboard scores."""
    df = cd.load_base_models()
    opt = df[df["family"] == "OPT"].reset_index(drop=True)
    scores = list(cd.BENCHMARKS)
    i6, i13 = opt.index[opt["model"] == "OPT-6.7B"][0], opt.index[opt["model"] == "OPT-13B"][0]
    opt.loc[i6, scores] = opt.loc[i13, scores].to_numpy(float) + 0.01
    scan = scan_provenance(opt, refs).set_index("model")
    assert scan.loc["OPT-6.7B", "verdict"] == "matches_other"
    assert scan.loc["OPT-6.7B", "other_ref"] == "OPT-13B"
    assert (scan.drop(index="OPT-6.7B")["verdict"] == "own").all()


def test_missing_reference_file_is_a_clear_error(tmp_path):
    with pytest.raises(cd.DataError, match="file not found"):
        read_references(collected_csv=tmp_path / "nope.csv")


def test_script_reports_and_exits_nonzero_on_a_finding(tmp_path):
    args = [sys.executable, str(SCRIPT), "--cape", str(UPSTREAM),
            "--pythia-runs", str(UPSTREAM / "pythia_both_runs.csv"), "--json"]
    ok = subprocess.run(args, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "matches_other" not in json.loads(ok.stdout)["counts"]
    bad = subprocess.run(args + ["--data", "@paper"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["counts"]["matches_other"] == 4
