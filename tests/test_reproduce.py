"""`capedyn reproduce`: one quick run end to end (through the CLI, in process so the JAX
compilations are shared with the rest of the session), the files it must write, the
summary keys, a few headline numbers recomputed independently with numpy, and the clean
failure on an output folder that cannot be written."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import capedyn as cd
from capedyn import report
from capedyn.cli import main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "out"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["reproduce", "--quick", "--out", str(out), "--json", "--seed", "3"])
    assert rc == 0
    return out, json.loads(buf.getvalue()), None


@pytest.mark.slow
def test_every_file_is_written(quick_run):
    out, printed, _ = quick_run
    for name in ("report.md", "report.html", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for stem in report.FIGURES:
        png = out / "figures" / f"{stem}.png"
        assert png.is_file(), png
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for rel in printed["files"]:
        assert (out / rel).is_file(), rel
    # no temporary files left behind by the atomic writes
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_summary_has_every_key(quick_run):
    out, printed, _ = quick_run
    summary = json.loads((out / "summary.json").read_text())
    for key in ("nc_b", "nc_ci95_b", "llama2_rel_mae_pct", "lofo_mean_rel_mae_pct",
                "frontier_slope", "frontier_intercept", "quick", "seed", "timings_s", "version"):
        assert key in summary, key
    assert summary["quick"] is True and summary["seed"] == 3
    assert summary["version"] == cd.__version__
    assert set(summary["timings_s"]) >= set(report.STAGES) | {"total"}
    lo, hi = summary["nc_ci95_b"]
    assert 0 < lo <= summary["nc_b"] <= hi
    methods = set(cd.HOLDOUT_METHODS)
    assert set(summary["llama2_rel_mae_pct"]) == methods
    assert set(summary["lofo_mean_rel_mae_pct"]) == methods
    assert printed["nc_b"] == summary["nc_b"]


@pytest.mark.slow
def test_frontier_line_matches_numpy(quick_run, frontier_df):
    out, _, _ = quick_run
    summary = json.loads((out / "summary.json").read_text())
    frozen = frontier_df[frontier_df["subset"] != "post_cutoff"]
    a, b = np.polyfit(frozen["swe_bench"], frozen["gpqa_diamond"], 1)
    assert summary["frontier_slope"] == pytest.approx(a, rel=1e-9)
    assert summary["frontier_intercept"] == pytest.approx(b, rel=1e-9)


@pytest.mark.slow
def test_p1_polynomial_matches_numpy(quick_run, base_df):
    """The P1 degree-2 polynomial (Pythia → Llama-2), recomputed by hand with numpy."""
    out, _, _ = quick_run
    summary = json.loads((out / "summary.json").read_text())
    py = base_df[base_df["family"] == "Pythia"]
    ll = base_df[base_df["family"] == "Llama-2"].sort_values("params_b").iloc[1:]
    errs, actual = [], []
    for b in cd.BENCHMARKS:
        coef = np.polyfit(np.log10(py["params_b"]) + 9, py[b], 2)
        pred = np.polyval(coef, np.log10(ll["params_b"]) + 9)
        errs += list(np.abs(pred - ll[b]))
        actual += list(ll[b])
    expected = 100 * np.mean(errs) / np.mean(actual)
    assert summary["llama2_rel_mae_pct"]["poly2"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_report_says_quick_and_is_self_contained(quick_run):
    out, _, _ = quick_run
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "QUICK RUN" in md.split("\n## ")[0]           # at the top, before any section
    assert "QUICK RUN" in html[: html.find("<h2>")]
    assert html.count("data:image/png;base64,") == len(re.findall(r"!\[", md))
    assert not re.search(r'src="(?!data:)', html)       # nothing loaded from outside
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (out / link).is_file()
    # every paper reference sits beside a computed value in a "paper" column or row
    assert md.count("paper") >= 10


@pytest.mark.slow
def test_quick_run_uses_the_short_budgets_and_times_every_stage(quick_run):
    out, printed, _ = quick_run
    summary = json.loads((out / "summary.json").read_text())
    quick, full = summary["config"], asdict(report.RunConfig.make(quick=False, seed=3))
    assert quick["quick"] is True and set(quick) == set(full)
    shorter = [k for k, v in quick.items()
               if isinstance(v, int) and not isinstance(v, bool) and k != "seed"
               and isinstance(full[k], int) and v < full[k]]
    assert "n_bootstrap" in shorter, quick
    for k, v in quick.items():  # no budget of the quick run exceeds the full run's
        if isinstance(v, int) and not isinstance(v, bool) and isinstance(full[k], int):
            assert v <= full[k], k
    t = summary["timings_s"]
    stages = [t[s] for s in report.STAGES]
    assert all(v >= 0 for v in stages)
    # stages run one after another inside the total (each rounded to 0.01 s)
    assert t["total"] >= sum(stages) - 0.01 * len(stages)


def test_unwritable_out_fails_before_any_work(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    called = []
    monkeypatch.setattr(report, "_STAGE_FUNCS",
                        {s: (lambda run, s=s: called.append(s)) for s in report.STAGES})
    rc = main(["reproduce", "--quick", "--out", str(blocker / "out")])
    assert rc == 2
    assert called == []  # refused before the first stage ran
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write to output folder" in err
    assert str(blocker / "out") in err
    with pytest.raises(OSError):
        report.reproduce(blocker / "out", quick=True, progress=False)
    assert called == []


def test_bad_seed_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        report.reproduce(tmp_path / "o", seed=1.5, progress=False)


def test_number_formatting():
    assert report.fmt(0.62914) == "0.629"
    assert report.fmt(-5.8861) == "-5.89"
    assert report.fmt(3.5) == "3.50"
    assert report.fmt(176.0) == "176"
    assert report.fmt(float("nan")) == "–" and report.fmt(None) == "–"
    assert report.paper(0.629) == "0.629" and report.paper((3.2, 4.3)) == "[3.2, 4.3]"


def test_markdown_and_html_tables_escape():
    doc = report.Report("t")
    doc.table([{"a": "x|y", "b": 1.5}, {"a": "<b>", "b": None}], caption="c")
    md = doc.to_markdown()
    assert "x\\|y" in md and "| <b> | – |" in md
    html = doc.to_html(Path("."))
    assert "&lt;b&gt;" in html and "<caption>c</caption>" in html
