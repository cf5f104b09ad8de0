"""Trust, second round: what the input cannot do to the report and to the files a command
writes.

* ``report.html`` is built from the report's structured blocks: a name carrying Markdown,
  HTML or blank lines reaches it as escaped text only, and only the run's own figures
  become images;
* ``posterior --out/--plot`` refuse to replace an existing file unless ``--force``;
* sizes and scores typed as options are plain decimals in the plausible range.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

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
    (("family", "--family", "Pythia", "--sizes", "1_0", "benchmarks_data/base_models.csv"),
     "--sizes"),
    (("family", "--family", "Pythia", "--sizes", "inf", "benchmarks_data/base_models.csv"),
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
