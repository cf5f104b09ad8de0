"""One Nc per family in the report: every table of ``capedyn reproduce``'s document that
shows a family's Nc shows the coupling-level posterior's (median, 68% and 95% intervals),
checked against quantiles taken here from the posterior's own draws; any other per-family
quantity named Nc (an ODE field parameter, a family's least-squares crossing, the paper's
value) says in its column header what it is."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from capedyn import report
from capedyn.report.blocks import Table, plain_text

POSTERIOR_COLUMNS = ("Nc median (B)", "coupling Nc median (B)")
"""Headers of the columns that carry the coupling-level posterior's Nc of a family."""
OTHER_NAMES = ("field parameter", "own line", "ODE-implied", "paper")
"""Words that name a per-family Nc that is not the posterior's."""


@pytest.fixture(scope="module")
def quick_results():
    """Stages 1, 2, 4 and 6 of a quick run (the coupling-level posterior is sampled)."""
    from capedyn.report.s1_data import compute_data
    from capedyn.report.s2_coupling import compute_coupling
    from capedyn.report.s4_posterior import compute_posterior
    from capedyn.report.s6_frontier import compute_frontier

    cfg = report.RunConfig.make(quick=True, seed=3)
    data = compute_data(cfg.table)
    coupling = compute_coupling(data, cfg)
    posterior = compute_posterior(data, None, cfg, coupling=coupling)
    frontier = compute_frontier(data, coupling, cfg, posterior=posterior)
    return cfg, {"data": data, "coupling": coupling, "posterior": posterior,
                 "frontier": frontier}


def _document(cfg, results) -> report.Report:
    return report.render_document(results, cfg, version="9.9", generated="2000-01-01 00:00",
                                  stages=report.STAGES, figures={})


def _draw_quantiles(post) -> dict[str, tuple[float, float, float, float, float]]:
    """Family → 2.5, 16, 50, 84, 97.5 % quantiles of Nc in billions, from the raw draws of
    log10 Nc (quantiles taken on the sampled scale, then mapped to billions: with few draws
    the interpolation between two far-apart tail draws differs between the two scales)."""
    draws = post.idata.posterior["log10_nc"]
    return {f: tuple(10.0 ** (np.quantile(draws.sel(family=f).values.ravel(),
                                          [0.025, 0.16, 0.5, 0.84, 0.975]) - 9.0))
            for f in post.families}


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def _interval(text: str) -> tuple[float, float]:
    lo, hi = re.fullmatch(r"\[(.+), (.+)\]", text).groups()
    return _number(lo), _number(hi)


def _family_tables(doc: report.Report):
    """(section heading, header texts, rows of cell texts) of every table with a family
    column."""
    section = ""
    for block in doc.blocks:
        if type(block).__name__ == "Heading":
            section = plain_text(block.spans)
        if isinstance(block, Table):
            head = [plain_text(c) for c in block.columns]
            if "family" in head:
                yield section, head, [[plain_text(c) for c in row] for row in block.rows]


def _nc_columns(head: list[str]) -> list[int]:
    return [j for j, h in enumerate(head) if re.search(r"\bNc", h)]


def test_every_family_nc_in_the_report_is_the_posterior_median(quick_results):
    cfg, results = quick_results
    post = results["posterior"].coupling
    want = _draw_quantiles(post)
    doc = _document(cfg, results)
    seen: set[str] = set()
    for section, head, rows in _family_tables(doc):
        for j in _nc_columns(head):
            if head[j] not in POSTERIOR_COLUMNS:
                assert any(w in head[j] for w in OTHER_NAMES), (section, head[j])
                continue
            for row in rows:
                if row[0] not in want:       # population, new family, paper-only rows
                    continue
                q = want[row[0]]
                assert _number(row[j]) == pytest.approx(q[2], rel=6e-3), (row[0], row[j])
                lo68, hi68 = _interval(row[j + 1])  # the two intervals follow the median
                assert (lo68, hi68) == pytest.approx((q[1], q[3]), rel=6e-3), row[0]
                if head[j + 2].startswith("95%"):
                    assert _interval(row[j + 2]) == pytest.approx((q[0], q[4]), rel=6e-3)
                seen.add(row[0])
    assert seen == set(post.families)        # every family's Nc is shown


def test_the_coupling_section_shows_no_family_nc_and_points_to_section_4(quick_results):
    cfg, results = quick_results
    doc = _document(cfg, results)
    for section, head, rows in _family_tables(doc):
        assert not (section.startswith("2.") and _nc_columns(head)), head
    md = " ".join(doc.to_markdown().split("\n## 3.")[0].split("\n## 2.")[1].split())
    assert "Each family's own Nc, with its 68% and 95% intervals, is in section 4" in md


def test_the_family_nc_span_is_of_posterior_medians(quick_results):
    """Section 4's sentence and the cascade's Nc1 row give the smallest and largest
    posterior median among the families whose median lies within their tested sizes."""
    cfg, results = quick_results
    post = results["posterior"].coupling
    want = _draw_quantiles(post)
    base = results["data"].base
    inside = []
    for fam in post.families:
        sizes = base.loc[base["family"] == fam, "params_b"]
        if sizes.min() <= want[fam][2] <= sizes.max():
            inside.append(want[fam][2])
    assert inside, "no family's median lies within its tested sizes"
    md = " ".join(_document(cfg, results).to_markdown().split())
    m = re.search(r"The posterior medians that lie within their family's tested sizes span "
                  r"(\S+)B to (\S+)B", md)
    assert m and (_number(m[1]), _number(m[2])) == pytest.approx(
        (min(inside), max(inside)), rel=6e-3)
    row = re.search(r"\| Nc1 \|[^\n]*?\| ([\d.]+)–([\d.]+)B \(coupling-level posterior "
                    r"medians", md)
    assert row and (_number(row[1]), _number(row[2])) == pytest.approx(
        (min(inside), max(inside)), rel=6e-3)


def _stub_ode(families: list[str]):
    """An ODE stage result over the shipped all-family fit (no fitting: the labels are
    what is checked), with the fit's own field parameters as the table's Nc_f."""
    import capedyn as cd
    from capedyn.data.tables import BENCHMARKS
    from capedyn.report.s3_ode import OdeResult

    fit = cd.load_fit("all_families")
    rows = [{"family": f, "models": len(fit.starts_[f]["models"]),
             "start": fit.starts_[f]["model"], "nc_b": fit.families_[f].critical_scale_b,
             "h_norm": float(np.linalg.norm(np.asarray(fit.families_[f].h))),
             "mae": 1.0, "rel_mae_pct": 2.0} for f in families if f in fit.families_]
    errs = {"per_benchmark": {b: {"rel_error_pct": 2.0, "mae": 1.0} for b in BENCHMARKS},
            "mean_rel_error_pct": 2.0, "mae": 1.0}
    shown = SimpleNamespace(families_=fit.families_, field_=fit.field_, mu_nc_=fit.mu_nc_,
                            n_iter_=1, optimizer_="lm", loss_=1.0, mse_=1.0)
    return OdeResult(base=cd.load_base_models(), all_families=shown, families=pd.DataFrame(rows),
                     in_sample={"n_pairs": 10, "mae": 1.0, "rel_mae_pct": 2.0}, pythia=fit,
                     pythia_errors=errs, per_phase=None)


def test_ode_field_parameters_are_named_so_wherever_they_appear(quick_results):
    """With the ODE section and an ODE-level posterior in the document, their per-family
    Nc_f is a "field parameter" in every header, never a bare Nc, and no paper Nc sits
    beside it."""
    import dataclasses

    cfg, results = quick_results
    fams = list(results["posterior"].coupling.families)
    ode_post = SimpleNamespace(
        model="ode", divergences=0, runtime_s=1.0, notes=[],
        config=SimpleNamespace(chains=2, samples=10, warmup=10),
        table=pd.DataFrame({"family": fams, "kind": "family", "n_obs": 3,
                            "nc_median_b": 0.03, "nc_ci68_lo_b": 0.01, "nc_ci68_hi_b": 0.1,
                            "nc_ci95_lo_b": 0.001, "nc_ci95_hi_b": 1.0, "rhat_max": 1.0,
                            "ess_bulk_min": 100.0}))
    results = {**results, "ode": _stub_ode(fams),
               "posterior": dataclasses.replace(results["posterior"], ode=ode_post)}
    doc = _document(cfg, results)
    field_tables = 0
    for section, head, rows in _family_tables(doc):
        cols = _nc_columns(head)
        if any("field parameter" in head[j] for j in cols):
            field_tables += 1
            assert not any("paper" in h for h in head), head
        for j in cols:
            assert head[j] in POSTERIOR_COLUMNS or any(w in head[j] for w in OTHER_NAMES), head
    assert field_tables == 2                 # section 3's fit and section 4's ODE-level model
    md = " ".join(doc.to_markdown().split())
    assert "population field parameter Nc =" in md
