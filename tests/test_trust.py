"""Input and output you can trust.

Input: short CSV rows, scores given as fractions (API, command line, CSV), sizes ≤ 0 or
non-finite in in-memory tables, and the rule that every error raised on purpose is a
CapedynError. Output: every command that writes checks its destination before any work
and fails fast naming the path the user gave; ``reproduce`` never mixes two runs.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import errno
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capedyn as cd
from capedyn import report
from capedyn._errors import CapedynError, InputError, OutputError
from capedyn._io import atomic_write, check_output_dir, check_output_file
from capedyn.cli.entry import _build_parser, main
from capedyn.data.tables import DataError

HEADER = "model,family,params_b,hellaswag,truthfulqa,arc,winogrande,mmlu"
GOOD = "Acme-7B,Acme,7,75,38,50,70,45"
SCORES = ["hellaswag", "truthfulqa", "arc", "winogrande", "mmlu"]
PKG = Path(cd.__file__).parent


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


# =============================================================================== input

def test_short_csv_row_is_rejected_with_its_row_number(write_csv):
    path = write_csv(f"{HEADER}\n{GOOD}\nAcme-13B,Acme,13,80,40\n")
    with pytest.raises(DataError) as info:
        cd.load_base_models(path)
    err = info.value
    assert err.row == 2 and str(path) in str(err)
    assert "5 fields but the header has 8" in str(err)
    assert "['arc', 'winogrande', 'mmlu']" in str(err)


def test_long_csv_row_is_rejected(write_csv):
    path = write_csv(f"{HEADER}\n{GOOD},extra\n")
    with pytest.raises(DataError, match="row 1 .*9 fields but the header has 8"):
        cd.load_base_models(path)


def test_empty_scores_kept_as_missing(write_csv):
    df = cd.load_base_models(write_csv(f"{HEADER}\n{GOOD}\nAcme-13B,Acme,13,80,40,,,\n"))
    assert df["arc"].isna().tolist() == [False, True]


def test_phase_fractions_rejected_in_api_and_cli():
    with pytest.raises(InputError) as info:
        cd.phase_classifier(hs=0.78, tqa=0.357)
    assert isinstance(info.value, ValueError) and "percent" in str(info.value)
    assert "0.78" in str(info.value) and "78" in str(info.value)
    with pytest.raises(InputError, match="fractions"):
        cd.phase_classifier(np.array([0.5, 0.6]), np.array([0.4, 0.45]))
    # percent input is unaffected: TQA_c = sqrt(0.187 * 0.78) = 0.3819 > 0.357 → tax
    assert cd.phase_classifier(78.0, 35.7).phase == "tax"
    rc, out, err = run_cli("phase", "--hs", "0.78", "--tqa", "0.357")
    assert rc == 2 and out == "" and "percent" in err and len(err.strip().splitlines()) == 1


def test_fraction_row_in_csv_is_rejected(write_csv):
    path = write_csv(f"{HEADER}\n{GOOD}\nAcme-13B,Acme,13,0.80,0.40,0.55,0.72,0.5\n")
    with pytest.raises(DataError) as info:
        cd.load_base_models(path)
    assert info.value.row == 2 and "fractions" in str(info.value)


def test_frontier_fractions_rejected_in_api_and_cli():
    with pytest.raises(InputError, match="fractions"):
        cd.h_field(0.876, 0.942, 0.513, 46.4)
    assert cd.h_field(87.6, 94.2, 0.5, 50.0) == pytest.approx(94.2 - (0.5 * 87.6 + 50.0))
    rc, _, err = run_cli("hfield", "--swe", "0.876", "--gpqa", "0.942")
    assert rc == 2 and "percent" in err


@pytest.mark.parametrize("bad, needle", [(-1.0, "must be positive"), (0.0, "must be positive"),
                                         (np.nan, "value is empty"), (np.inf, "not finite"),
                                         ("7B", "not a number"), (True, "not a number")])
def test_in_memory_sizes_are_checked(base_df, bad, needle):
    df = base_df.copy()
    df["params_b"] = df["params_b"].astype(object)
    df.loc[3, "params_b"] = bad
    with pytest.raises(DataError) as info:
        cd.validate_base_models(df)
    assert (info.value.row, info.value.column) == (4, "params_b") and needle in str(info.value)
    with pytest.raises(DataError) as info:          # not a bare "math domain error"
        cd.running_coupling(df)
    assert info.value.column == "params_b"


def test_validate_accepts_a_typed_table(base_df):
    again = cd.validate_base_models(base_df)
    pd.testing.assert_frame_equal(again, base_df, check_dtype=False)
    with pytest.raises(TypeError) as info:
        cd.validate_base_models([1, 2, 3])
    assert isinstance(info.value, CapedynError)


_cell = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                  st.sampled_from(["", " ", "nan", "inf", "1e400", "50", "0.5", "-1"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.fixed_dictionaries({
    "model": st.one_of(st.text(max_size=5), st.integers(), st.none()),
    "family": st.sampled_from(["F", "G", "", None, 3]),
    "params_b": _cell, **{c: _cell for c in SCORES}}), min_size=0, max_size=6),
    drop=st.sets(st.sampled_from(["model", "params_b", "mmlu"]), max_size=1))
def test_random_in_memory_tables_never_traceback_or_nan(rows, drop):
    df = pd.DataFrame(rows, columns=["model", "family", "params_b", *SCORES]).drop(columns=list(drop))
    try:
        out = cd.validate_base_models(df)
        pairs = cd.running_coupling(df)
    except CapedynError:
        return
    assert np.all(np.isfinite(out["params_b"])) and np.all(out["params_b"] > 0)
    vals = out[SCORES].to_numpy(float)
    assert np.all((vals[~np.isnan(vals)] >= 0) & (vals[~np.isnan(vals)] <= 100))
    used = ~pairs["skipped"].to_numpy(bool)
    assert np.all(np.isfinite(pairs["gamma12"].to_numpy(float)[used]))


# Every module of the library: a raise of a bare built-in exception is a bug.
_CHECKED = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                  if p.name not in ("__init__.py", "_lazy.py", "_moved.py"))
# (package __init__ files and the two modules that build module __getattr__ functions,
# which must raise AttributeError)
_BUILTIN_EXC = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)
                and issubclass(getattr(builtins, n), BaseException)}


@pytest.mark.parametrize("name", _CHECKED)
def test_library_raises_only_capedyn_errors(name):
    tree = ast.parse((PKG / name).read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            f = node.exc.func
            if isinstance(f, ast.Name) and f.id in _BUILTIN_EXC:
                bad.append(f"line {node.lineno}: {f.id}")
    assert not bad, f"{name} raises built-in exceptions: {bad}"


def test_error_classes_keep_builtin_compatibility():
    from capedyn import _errors
    from capedyn.data.ingest import IngestError

    assert issubclass(IngestError, DataError) and issubclass(DataError, ValueError)
    assert issubclass(_errors.InputError, ValueError)
    assert issubclass(_errors.InputTypeError, TypeError)
    assert issubclass(_errors.OutputError, OSError)
    for cls in (IngestError, DataError, _errors.InputError, _errors.InputTypeError,
                _errors.OutputError, _errors.SolveError, _errors.FitFileError):
        assert issubclass(cls, CapedynError)


# =============================================================================== output

@pytest.fixture
def readonly_dir(tmp_path):
    """A folder in which nothing can be created."""
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    # root ignores permission bits; sysfs refuses new files even to root
    if not (os.path.isdir("/sys") and _unwritable(Path("/sys"))):
        pytest.skip("no read-only folder available to root here")
    yield Path("/sys")


def _unwritable(d: Path) -> bool:
    try:
        check_output_dir(d)
    except OutputError:
        return True
    return False


# every (command, option) that writes a file; test_every_writer_is_covered keeps it complete
WRITERS = {
    ("fit", "--out"): ["fit", "--families", "Pythia", "--steps", "1", "--quiet", "--out", "{}"],
    ("posterior", "--out"): ["posterior", "--samples", "5", "--warmup", "5", "--out", "{}"],
    ("posterior", "--plot"): ["posterior", "--samples", "5", "--warmup", "5", "--plot", "{}"],
    ("holdout", "--plot"): ["holdout", "--family", "OPT", "--methods", "poly1", "--plot", "{}"],
    ("crossval", "--plot"): ["crossval", "--methods", "poly1", "--plot", "{}"],
    ("hfield", "--plot"): ["hfield", "--table", "--plot", "{}"],
    ("reproduce", "--out"): ["reproduce", "--quick", "--out", "{}"],
    ("ingest", "--out"): ["ingest", str(Path(__file__).parent / "fixtures" / "lm_eval_v04"
                                       / "acme__acme-1b"), "--out", "{}"],
}
_SUFFIX = {"--plot": "x.png", "--out": "x.csv"}


def _target(cmd: str, opt: str, folder: Path) -> str:
    if cmd in ("fit", "reproduce"):
        return str(folder / "run")
    if (cmd, opt) == ("posterior", "--out"):
        return str(folder / "post.nc")
    return str(folder / _SUFFIX[opt])


def test_every_writer_is_covered():
    parser = _build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    found = set()
    for name, p in sub.choices.items():
        for action in p._actions:
            for opt in action.option_strings:
                if opt in ("--out", "--plot", "--save", "--output"):
                    found.add((name, opt))
    assert found == set(WRITERS)


@pytest.fixture
def no_work(monkeypatch):
    """Replace every expensive entry point by a recorder: a check that runs late shows up."""
    import capedyn.models.coupling_ode
    import capedyn.coupling.frontier
    import capedyn.evaluation.heldout
    import capedyn.data.ingest
    import capedyn.inference.sampling

    calls = []

    def rec(name):
        def f(*a, **k):
            calls.append(name)
            raise AssertionError(f"{name} ran before the destination check")
        return f

    monkeypatch.setattr(capedyn.models.coupling_ode.CouplingODE, "fit", rec("fit"))
    monkeypatch.setattr(capedyn.inference.sampling, "sample_posterior", rec("sample_posterior"))
    monkeypatch.setattr(capedyn.evaluation.heldout, "holdout", rec("holdout"))
    monkeypatch.setattr(capedyn.evaluation.heldout, "crossval", rec("crossval"))
    monkeypatch.setattr(capedyn.coupling.frontier, "population_line", rec("population_line"))
    monkeypatch.setattr(capedyn.data.ingest, "read_results", rec("read_results"))
    monkeypatch.setattr(report.run, "_STAGE_FUNCS", {s: rec(s) for s in report.STAGES})
    return calls


@pytest.mark.parametrize("writer", sorted(WRITERS), ids=lambda w: f"{w[0]} {w[1]}")
@pytest.mark.parametrize("where", ["readonly", "under_a_file"])
def test_unwritable_destination_fails_fast_naming_the_path(writer, where, readonly_dir,
                                                           tmp_path, no_work):
    if where == "readonly":
        folder = readonly_dir
    else:
        blocker = tmp_path / "a_file"
        blocker.write_text("not a folder")
        folder = blocker / "sub"
    target = _target(*writer, folder)
    argv = [a.replace("{}", target) for a in WRITERS[writer]]
    rc, out, err = run_cli(*argv)
    assert rc == 2, err
    assert no_work == []  # failed before any expensive step (each one is a recorder)
    line = err.strip()
    assert len(line.splitlines()) == 1 and target in line, line
    assert ".tmp" not in line and ".capedyn-probe" not in line


def test_fit_out_onto_an_existing_file_fails_before_the_fit(tmp_path, no_work):
    """Decision: --out is a folder; an existing file there is refused at once, and a folder
    already holding a saved fit is refused unless --force (before any fitting)."""
    f = tmp_path / "existing"
    f.write_text("keep me")
    rc, _, err = run_cli(*[a.replace("{}", str(f)) for a in WRITERS[("fit", "--out")]])
    assert rc == 2 and no_work == []
    assert str(f) in err and "existing file" in err
    assert f.read_text() == "keep me"
    d = tmp_path / "old_fit"
    d.mkdir()
    (d / "meta.json").write_text("{}")
    rc, _, err = run_cli(*[a.replace("{}", str(d)) for a in WRITERS[("fit", "--out")]])
    assert rc == 2 and "--force" in err and str(d) in err and no_work == []
    assert check_output_dir(d, holds=("meta.json",), force=True) == d


def test_output_file_checks(tmp_path):
    assert check_output_file(tmp_path / "new" / "f.png", "--plot", (".png",))
    assert not (tmp_path / "new").exists()             # the check creates nothing
    with pytest.raises(OutputError, match="ending in .png"):
        check_output_file(tmp_path / "f.pdf", "--plot", (".png",))
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path, "--out")


def test_full_disk_names_the_file_not_the_temporary(tmp_path):
    def full(p):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    dest = tmp_path / "figs" / "a.png"
    with pytest.raises(OutputError) as info:
        atomic_write(dest, full)
    assert str(dest) in str(info.value) and "No space left" in str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert list((tmp_path / "figs").iterdir()) == []    # no temporary left behind


# ------------------------------------------------------------------ reproduce: one run per folder

class _FakeFigure:
    """Stands in for a matplotlib Figure: ``savefig`` writes ``payload`` (or raises it)."""

    def __init__(self, payload):
        self.payload = payload

    def savefig(self, path, **_):
        if isinstance(self.payload, BaseException):
            raise self.payload
        Path(path).write_bytes(self.payload)


def _fake_stages(monkeypatch, tag: str, fail_at: str | None = None):
    def stage(name):
        def f(run):
            if name == fail_at:
                raise RuntimeError(f"stage {name} failed")
            if name == "coupling":
                run.save_figure("gamma12_vs_n",
                                lambda: _FakeFigure(b"\x89PNG\r\n\x1a\n" + tag.encode()),
                                "a figure")
            run.summary[f"tag_{name}"] = tag
        return f

    monkeypatch.setattr(report.run, "_STAGE_FUNCS", {s: stage(s) for s in report.STAGES})


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_reproduce_refuses_a_previous_run_unless_forced(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _fake_stages(monkeypatch, "first")
    report.reproduce(out, quick=True, progress=False)
    assert json.loads((out / "summary.json").read_text())["tag_data"] == "first"
    (out / "figures" / "from_an_older_version.png").write_bytes(b"\x89PNG")
    ran = []  # the refusal comes before any stage runs
    monkeypatch.setattr(report.run, "_STAGE_FUNCS", {s: (lambda run, s=s: ran.append(s))
                                                 for s in report.STAGES})
    with pytest.raises(OutputError) as info:
        report.reproduce(out, quick=True, progress=False)
    assert ran == [] and str(out) in str(info.value)
    assert "--force" in str(info.value)
    _fake_stages(monkeypatch, "second")
    assert json.loads((out / "summary.json").read_text())["tag_data"] == "first"
    report.reproduce(out, quick=True, progress=False, force=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tag_data"] == "second"
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["gamma12_vs_n.png"]
    assert (out / "figures" / "gamma12_vs_n.png").read_bytes().endswith(b"second")
    assert _siblings(out) == []


def test_reproduce_failure_leaves_the_previous_run_whole(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _fake_stages(monkeypatch, "first")
    report.reproduce(out, quick=True, progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _fake_stages(monkeypatch, "second", fail_at="holdout")
    with pytest.raises(RuntimeError, match="holdout"):
        report.reproduce(out, quick=True, progress=False, force=True)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and _siblings(out) == []
    new = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        report.reproduce(new, quick=True, progress=False)
    assert not new.exists() and _siblings(new) == []


def test_reproduce_refuses_a_folder_of_other_files(tmp_path, monkeypatch):
    _fake_stages(monkeypatch, "x")
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(OutputError, match="holds no capedyn run"):
            report.reproduce(d, quick=True, progress=False, force=force)
    assert (d / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    report.reproduce(empty, quick=True, progress=False)   # an empty folder is fine
    assert (empty / "report.md").is_file()


def test_reproduce_full_disk_names_the_file_under_out(tmp_path, monkeypatch):
    def stage(run):
        full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        run.save_figure("tqa_vs_n", lambda: _FakeFigure(full), "x")

    monkeypatch.setattr(report.run, "_STAGE_FUNCS", {s: (stage if s == "ode" else (lambda run: None))
                                                 for s in report.STAGES})
    out = tmp_path / "run"
    with pytest.raises(OutputError) as info:
        report.reproduce(out, quick=True, progress=False)
    msg = str(info.value)
    assert str(out / "figures" / "tqa_vs_n.png") in msg and "No space left" in msg
    assert info.value.errno == errno.ENOSPC
    assert not out.exists() and _siblings(out) == []
