"""The curated internal-coupling and steering tables (capedyn.data.published), their figure, and
their agreement with the authors' JSON files when those are beside the repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import capedyn as cd
from capedyn.data import DataError

ROOT = Path(__file__).resolve().parents[1]
CAPE = ROOT.parent / "shared" / "data" / "cape"
needs_cape = pytest.mark.skipif(not CAPE.is_dir(),
                                reason="the authors' files are not beside the repository")


def test_tables_load_with_their_columns():
    c = cd.load_internal_coupling()
    layers = cd.load_internal_coupling(per_layer=True)
    res, runs = cd.load_steering_results(), cd.load_steering_results(runs=True)
    assert set(c["measure"]) == {"unit_net", "pair_net", "hidden_cosine",
                                 "output_projection_cosine", "wider_projection_cosine"}
    assert c["value"].between(-1, 1).all() and layers["coupling"].between(-1, 1).all()
    assert c["source"].str.endswith(".json").all() and res["source"].str.endswith(".json").all()
    assert len(res) == 6 * 14 and len(runs) == 10


def test_constant_layer_flag_matches_the_per_layer_table():
    c, layers = cd.load_internal_coupling(), cd.load_internal_coupling(per_layer=True)
    spread = layers.groupby(["model", "source"])["coupling"].agg(lambda x: x.max() - x.min())
    for (model, source), s in spread.items():
        row = c[(c["model"] == model) & (c["source"] == source)].iloc[0]
        assert ("per_layer_constant" in row["flags"]) == (s < 1e-6), (model, s)
        assert (row["layer_min"], row["layer_max"]) == pytest.approx(
            (layers[(layers.model == model) & (layers.source == source)].coupling.min(),
             layers[(layers.model == model) & (layers.source == source)].coupling.max()))
    # the seven layer_*_tl files: every layer equal to seven decimals
    tl = spread[[s.startswith("layer_") for _, s in spread.index]]
    assert len(tl) == 7 and (tl < 1.1e-7).all()


def test_changed_counts_recomputed_from_the_texts():
    res, runs = cd.load_steering_results(), cd.load_steering_results(runs=True)
    for _, run in runs[runs["n_changed_by_text"].notna()].iterrows():
        mine = res[res["run"] == run["run"]]
        assert run["n_changed_by_text"] == (mine["unsteered"] != mine["steered"]).sum()
        assert run["n_changed_reported"] == mine["changed_reported"].sum()
    assert runs["n_judged_correct"].isna().all()  # no file judges truthfulness
    odd = res[res["changed_reported"] & res["text_identical"]]
    assert list(odd["run"]) == ["self_align_modal_410m"]


def test_loader_rejects_a_table_without_its_columns(tmp_path):
    (tmp_path / "x.csv").write_text("model,value\na,1\n")
    with pytest.raises(DataError, match="missing column"):
        cd.load_internal_coupling(path=tmp_path / "x.csv")
    with pytest.raises(DataError, match="file not found"):
        cd.load_steering_results(path=tmp_path / "nope.csv")


def test_internal_coupling_figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = cd.load_internal_coupling()
    ax = cd.plot_internal_coupling(c)
    drawn = sum(len(col.get_offsets()) for col in ax.collections)
    flags = c["flags"]
    expected = (c["measure"] == "unit_net") | ((c["measure"] == "pair_net")
                                              & (c["pair"] == "HS_TQA"))
    expected &= ~flags.str.contains("duplicate_of|no_file_of_its_own") & c["params_b"].notna()
    assert drawn == expected.sum()
    opt = [line for line in ax.lines if len(line.get_xdata()) == 5]  # OPT: 1.3, 6.7, 13, 30, 66
    assert any(np.allclose(line.get_xdata(), [1.3, 6.7, 13, 30, 66]) for line in opt)
    plt.close(ax.figure)


@needs_cape
def test_rebuilding_from_the_authors_files_reproduces_the_tables(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_steering_data.py"),
                    "--cape", str(CAPE), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    for name in ("internal_coupling.csv", "internal_coupling_layers.csv",
                 "steering_results.csv", "steering_runs.csv"):
        assert (tmp_path / name).read_bytes() == (ROOT / "benchmarks_data" / name).read_bytes()


@needs_cape
def test_values_agree_with_the_json_files():
    c = cd.load_internal_coupling()
    opt30 = json.loads((CAPE / "opt30b_internal_nc2.json").read_text())
    row = c[(c["model"] == "facebook/opt-30b")].iloc[0]
    assert row["value"] == opt30["net_coupling"] and row["competing_count"] == 75
    demo = json.loads((CAPE / "self_aligning_demo_410m.json").read_text())
    res = cd.load_steering_results()
    mine = res[res["run"] == "self_aligning_demo_410m"]
    assert list(mine["cos_truth"]) == [r["cos_truth"] for r in demo["results"]]
    assert int(mine["changed_reported"].sum()) == demo["n_changed"] == 14


def test_report_section_counts_from_the_csv():
    import csv

    from capedyn import report
    from capedyn.report.s7_steering import compute_steering

    rows = list(csv.DictReader(open(ROOT / "benchmarks_data" / "internal_coupling.csv")))
    models = {}
    for r in rows:
        if r["measure"] == "unit_net" and "duplicate_of" not in r["flags"]:
            models.setdefault(r["model"], r)
    competing = sum(float(r["competing_count"]) > 0 for r in models.values())
    constant = sum("per_layer_constant" in r["flags"] for r in models.values())
    md = report.render_section("steering", compute_steering(), figures={})
    assert md.startswith("## 7. Published internal coupling and steering runs")
    text = " ".join(md.split())
    assert (f"**{len(models)}** distinct models: {len(models) - competing} with no competing "
            f"unit and {competing} with some. In {constant} of them") in text
    assert "| EleutherAI/pythia-410m-deduped | self_align_modal_410m | 14 | 9 | 8 | – |" in md
