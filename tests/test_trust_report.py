"""Trust, second round: what the input cannot do to the report and to the files a command
writes.

* ``report.html`` is built from the report's structured blocks: a name carrying Markdown,
  HTML or blank lines reaches it as escaped text only, and only the run's own figures
  become images;
* ``posterior --out/--plot`` refuse to replace an existing file unless ``--force``;
* sizes and scores typed as options are plain decimals in the plausible range.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capedyn.cli.entry import main


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


# ============================================================== posterior --out / --plot

_TINY_POSTERIOR = ("posterior", "--chains", "2", "--samples", "5", "--warmup", "5",
                   "--no-progress")


@pytest.fixture
def no_sampling(monkeypatch):
    """Sampling fails loudly: a refusal must come before it."""
    import capedyn.inference.sampling

    def refuse(*a, **k):
        raise AssertionError("sampled before the destination check")

    monkeypatch.setattr(capedyn.inference.sampling, "sample_posterior", refuse)


@pytest.mark.parametrize("option,name", [("--out", "post.nc"), ("--plot", "forest.png")])
def test_posterior_refuses_to_replace_a_file_without_force(tmp_path, no_sampling, option,
                                                            name):
    target = tmp_path / name
    target.write_bytes(b"keep me")
    rc, _, err = run_cli(*_TINY_POSTERIOR, option, str(target))
    assert rc == 2
    assert err.strip() == (f"capedyn posterior: error: {option} '{target}' already exists; "
                           "pass --force to replace it, or choose another file name")
    assert target.read_bytes() == b"keep me"


def test_posterior_force_replaces_both_files(tmp_path):
    out, plot = tmp_path / "post.nc", tmp_path / "forest.png"
    out.write_bytes(b"old posterior")
    plot.write_bytes(b"old plot")
    rc, _, err = run_cli(*_TINY_POSTERIOR, "--out", str(out), "--plot", str(plot), "--force")
    assert rc == 0, err
    assert out.read_bytes()[:4] in (b"\x89HDF", b"CDF\x01", b"CDF\x02")  # netCDF (HDF5 or classic)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ============================================================== numbers typed as options

_PREDICT = ("predict", "--fit", "pythia", "--scores", "50,40,40,50,30")


@pytest.mark.parametrize("value,words", [
    ("1_000", "is not a number"), ("nan", "not a finite number"), ("inf", "not a finite number"),
    ("-inf", "not a finite number"), ("5e-324", "below"), ("1e308", "above"),
    ("7e9", "parameter count"), ("0", "positive"),
])
def test_predict_params_b_is_a_plain_plausible_size(value, words):
    rc, out, err = run_cli(*_PREDICT, f"--params-b={value}", "--sizes", "13")
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err and "--params-b" in err


@pytest.mark.parametrize("argv,option", [
    (("predict", "--fit", "pythia", "--initial", "Pythia-1B", "--sizes", "13,1e308"), "--sizes"),
    (("predict", "--fit", "pythia", "--initial", "Pythia-1B", "--sizes", "nan"), "--sizes"),
    (("family", "--family", "Pythia", "--sizes", "1_0", "missing.csv"),
     "--sizes"),
    (("family", "--family", "Pythia", "--sizes", "inf", "missing.csv"),
     "--sizes"),
    (("phase", "--hs", "5_0", "--tqa", "40"), "--hs"),
    (("phase", "--hs", "50", "--tqa", "nan"), "--tqa"),
    (("phase", "--hs", "50", "--tqa", "40", "--params-b", "1_0"), "--params-b"),
    (("phase", "--hs", "50", "--tqa", "40", "--params-b", "1e-30"), "--params-b"),
    (("hfield", "--swe", "5_0", "--gpqa", "40"), "--swe"),
    (("hfield", "--swe", "50", "--gpqa", "inf"), "--gpqa"),
    (("ingest", "x", "--params-b", "1e-300"), "--params-b"),
])
def test_every_size_and_score_option_refuses_what_the_tables_refuse(argv, option):
    rc, out, err = run_cli(*argv)
    assert rc == 2 and out == ""
    line = err.strip()
    assert len(line.splitlines()) == 1 and option in line, line


# ============================================================== the report: names stay text

EVIL = ("Evil\n\n![x](/etc/hostname)\n\n<script>alert(1)</script> [link](javascript:alert(1)) "
        "<img src=/etc/hostname> **bold** `code`\n# heading")
PNG = b"\x89PNG\r\n\x1a\n-the-run's-own-figure"


class _Page(HTMLParser):
    """Every start tag (with its attributes) and the visible text of an HTML page."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._hidden = 0
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._hidden += tag in ("style", "title", "script")

    def handle_endtag(self, tag):
        self._hidden -= tag in ("style", "title", "script")

    def handle_data(self, data):
        if not self._hidden:
            self.text.append(data)

    @property
    def visible(self) -> str:
        return " ".join("".join(self.text).split())


def _data_result(name: str):
    from capedyn.report.s1_data import DataResult

    base = pd.DataFrame({"model": ["a", "b"], "family": [name, name]})
    front = pd.DataFrame({"model": ["x"], "lab": [name]})
    fams = pd.DataFrame({"family": [name], "models": [2], "complete": [2], "smallest_b": [0.5],
                         "largest_b": [1.0], "source": [name]})
    return DataResult(base=base, frontier=front, complete=base, families=fams)


def _coupling_result(name: str):
    """The hand-built coupling result of test_reproduce, its family renamed."""
    from test_reproduce import _hand_built_coupling

    r = _hand_built_coupling()
    sign = dataclasses.replace(r.sign_all, violations=(
        {"family": name, "model_from": name, "model_to": "a2", "gamma12": -0.2},))
    fams = r.family_nc.assign(family=[name])
    return dataclasses.replace(r, sign_all=sign, family_nc=fams, usable_pairs_by_family={name: 2})


def _report(tmp_path: Path, name: str):
    """A whole report (intro, data, coupling with one saved figure captioned ``name``,
    run details) in which ``name`` is every family, model, lab and source."""
    from capedyn import report

    (tmp_path / "figures").mkdir(exist_ok=True)
    (tmp_path / "figures" / "gamma12_vs_n.png").write_bytes(PNG)
    cfg = report.RunConfig.make(quick=True, seed=1)
    return report.render_document(
        {"data": _data_result(name), "coupling": _coupling_result(name)}, cfg, version="9.9",
        generated="2000-01-01 00:00", stages=report.STAGES,
        figures={"gamma12_vs_n": f"caption {name}"})


def _markdown_page(md: str) -> _Page:
    """report.md as a CommonMark renderer with tables (and raw HTML on) shows it."""
    import markdown_it  # declared in the dev extra: this check must not be skipped

    return _Page(markdown_it.MarkdownIt("commonmark").enable("table").render(md))


def _structure(page: _Page) -> list:
    return [(tag, sorted(attrs)) for tag, attrs in page.tags]


def test_a_hostile_name_reaches_report_html_only_as_text(tmp_path):
    doc = _report(tmp_path, EVIL)
    page = _Page(doc.to_html(tmp_path))
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "a" not in tags
    assert not any("href" in attrs for _, attrs in page.tags)
    images = [attrs["src"] for t, attrs in page.tags if t == "img"]
    assert images == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
    # the same report with a harmless name has exactly the same elements
    assert _structure(page) == _structure(_Page(_report(tmp_path, "F1").to_html(tmp_path)))
    assert " ".join(EVIL.split()) in page.visible          # shown, as text
    assert not any("/etc/hostname" in v for _, attrs in page.tags
                   for k, v in attrs.items() if k != "alt")    # an alt text is text too


def test_a_hostile_name_reaches_report_md_only_as_text(tmp_path):
    md = _report(tmp_path, EVIL).to_markdown()
    shown = _markdown_page(md)
    clean = _markdown_page(_report(tmp_path, "F1").to_markdown())
    assert _structure(shown) == _structure(clean)
    assert not any(t in ("script", "a") or "href" in a for t, a in shown.tags)
    assert [a["src"] for t, a in shown.tags if t == "img"] == ["figures/gamma12_vs_n.png"]
    assert " ".join(EVIL.split()) in shown.visible


def test_report_md_is_unchanged_for_plain_names(tmp_path):
    """Plain names and every number are written as they are: escaping adds nothing."""
    md = _report(tmp_path, "Pythia-deduped").to_markdown()
    assert "| Pythia-deduped | 2 | 2 | 0.500 | 1.00 | Pythia-deduped |" in md
    assert "\\" not in md.replace("\\|", "")


_PRINTABLE = st.text(alphabet=st.characters(blacklist_categories=(
    "Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")), min_size=1, max_size=24).map(str.strip).filter(bool)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(name=_PRINTABLE)
def test_any_printable_name_is_text_in_both_files(tmp_path, name):
    from capedyn.report.document import code

    doc = _report(tmp_path, name)
    doc.heading(name)
    doc.para(name)
    doc.callout(name)
    doc.bullets([name])
    doc.para(code(name))
    html_page = _Page(doc.to_html(tmp_path))
    baseline = _report(tmp_path, "F1")
    for add in (baseline.heading, baseline.para, baseline.callout):
        add("F1")
    baseline.bullets(["F1"])
    baseline.para(code("F1"))
    assert _structure(html_page) == _structure(_Page(baseline.to_html(tmp_path)))
    assert "".join(html_page.text).count(name) >= 8
    md_page = _markdown_page(doc.to_markdown())
    assert _structure(md_page) == _structure(_markdown_page(baseline.to_markdown()))
    assert "".join(md_page.text).count(name) >= 8


# ============================================================== figures: the run's own only

@pytest.mark.parametrize("path", ["figures/../secret.png", "../secret.png", "/etc/hostname",
                                  "figures/sub/x.png", "figures/x.svg", "figures/a b.png"])
def test_a_figure_path_outside_figures_is_refused(path):
    from capedyn._errors import InputError
    from capedyn.report.document import Report

    with pytest.raises(InputError, match="figures/"):
        Report("t").figure(path, "c")


def test_a_figure_that_links_out_of_figures_is_refused(tmp_path):
    from capedyn._errors import InputError
    from capedyn.report.document import Report

    (tmp_path / "figures").mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"SECRET")
    (tmp_path / "figures" / "out.png").symlink_to(secret)
    (tmp_path / "figures" / "in.png").symlink_to(tmp_path / "figures" / "real.png")
    (tmp_path / "figures" / "real.png").write_bytes(PNG)
    doc = Report("t")
    doc.figure("figures/out.png", "c")
    with pytest.raises(InputError, match="does not resolve"):
        doc.to_html(tmp_path)
    missing = Report("t")
    missing.figure("figures/none.png", "c")
    with pytest.raises(InputError, match="does not resolve"):
        missing.to_html(tmp_path)
    inside = Report("t")
    inside.figure("figures/in.png", "c")                # a link that stays inside is fine
    assert base64.b64encode(PNG).decode() in inside.to_html(tmp_path)
