"""Writers you can trust: no silent loss, no half-written output, one writer at a time.

Every writer (ingest --out, fit --out / CouplingODE.save, reproduce --out, the --plot and
posterior --out files) is made to fail at each of its writes (an exception, a full disk,
Ctrl-C) and must leave its destination byte for byte as it was. Two writers aimed at one
destination: the second fails at once with one line. No real ODE fit runs here: saved
fits come from the shipped ones, reproduce runs with stand-in stages.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import capedyn as cd
from capedyn import _io, _publish, report
from capedyn._errors import OutputError
from capedyn.cli.entry import main

FIXTURES = Path(__file__).parent / "fixtures"
ACME = FIXTURES / "lm_eval_v04" / "acme__acme-1b"


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root``'s parent folder: path → bytes (None for a folder)."""
    base = root.parent
    return {str(p.relative_to(base)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(base.rglob("*"))}


@pytest.fixture(scope="module")
def shipped_fit():
    return cd.load_fit("pythia")


# ============================================================== 1. ingest --out

def test_ingest_refuses_to_overwrite_an_existing_table_unless_forced(tmp_path):
    out = tmp_path / "mine.csv"
    out.write_text("hand,made\n1,2\n")
    rc, stdout, err = run_cli("ingest", str(ACME), "--out", str(out))
    assert rc == 2 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and str(out) in err and "--force" in err
    assert out.read_text() == "hand,made\n1,2\n"
    rc, stdout, err = run_cli("ingest", str(ACME), "--out", str(out), "--force")
    assert rc == 0, err
    assert out.read_text().startswith("model,family,params_b")


def test_ingest_never_replaces_a_file_that_appears_while_it_works(tmp_path, monkeypatch):
    import capedyn.data.ingest

    out = tmp_path / "t.csv"
    real = capedyn.data.ingest.read_results

    def read_then_someone_writes(*a, **k):
        table = real(*a, **k)
        out.write_text("written meanwhile\n")
        return table

    monkeypatch.setattr(capedyn.data.ingest, "read_results", read_then_someone_writes)
    rc, _, err = run_cli("ingest", str(ACME), "--out", str(out))
    assert rc == 2 and str(out) in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "written meanwhile\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


# ============================================================== fault injection

class Boom(Exception):
    pass


FAULTS = {
    "exception": lambda: Boom("injected"),
    "full disk": lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    "ctrl-c": lambda: KeyboardInterrupt(),
}


def _fail_at(monkeypatch, n: int, fault):
    """Make the ``n``-th call of ``atomic_write`` (0-based) raise ``fault`` after the
    temporary file is written; return the list of destinations it was called with."""
    calls: list[str] = []
    real = _io.atomic_write

    def patched(path, writer, **kw):
        calls.append(str(path))
        if len(calls) - 1 == n:
            def failing(p):
                writer(p)
                raise fault
            return real(path, failing, **kw)
        return real(path, writer, **kw)

    monkeypatch.setattr(_io, "atomic_write", patched)
    return calls


def _patch_fit_writes(monkeypatch):
    """fit.py imported the writers by name: point it at the (patched) module functions."""
    import capedyn.models.coupling_ode as fit_mod

    monkeypatch.setattr(fit_mod, "atomic_write", lambda *a, **k: _io.atomic_write(*a, **k))
    monkeypatch.setattr(fit_mod, "atomic_write_json",
                        lambda path, obj: _io.atomic_write_json(path, obj))


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("at", [0, 1])  # model.eqx, meta.json
@pytest.mark.parametrize("previous", [False, True])
def test_save_failing_at_any_write_leaves_the_folder_as_it_was(tmp_path, monkeypatch,
                                                               shipped_fit, fault, at,
                                                               previous):
    dest = tmp_path / "fit"
    if previous:
        shipped_fit.save(dest)
        (dest / "model.eqx").write_bytes(b"previous good fit")  # recognisable bytes
    before = snapshot(dest)
    _patch_fit_writes(monkeypatch)
    calls = _fail_at(monkeypatch, at, FAULTS[fault]())
    with pytest.raises((Boom, OutputError, KeyboardInterrupt)):
        shipped_fit.save(dest)
    assert len(calls) == at + 1
    assert snapshot(dest) == before   # no partial, no lock, no temporary left either


def test_save_is_one_folder_move(tmp_path, shipped_fit, monkeypatch):
    """Both files reach the destination in one rename of a complete folder."""
    dest = tmp_path / "fit"
    shipped_fit.save(dest)
    renames = []
    real = os.rename

    def record(a, b):
        renames.append((Path(a).name, Path(b).name))
        real(a, b)

    monkeypatch.setattr(os, "rename", record)
    shipped_fit.save(dest)
    assert [b for _, b in renames].count("fit") == 1
    assert sorted(p.name for p in dest.iterdir()) == ["meta.json", "model.eqx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit"]


def test_save_refuses_a_folder_of_other_files(tmp_path, shipped_fit):
    d = tmp_path / "notes"
    d.mkdir()
    (d / "todo.txt").write_text("mine")
    with pytest.raises(OutputError, match="not part of a fit"):
        shipped_fit.save(d)
    assert [p.name for p in d.iterdir()] == ["todo.txt"]
    shipped_fit.save(tmp_path / "f", force=False)      # a new folder needs no --force
    with pytest.raises(OutputError, match="--force"):
        shipped_fit.save(tmp_path / "f", force=False)


def _fake_stages(monkeypatch):
    class Fig:
        def savefig(self, path, **_):
            Path(path).write_bytes(b"\x89PNG\r\n\x1a\nnew")

    def stage(name):
        def f(run):
            if name == "coupling":
                run.save_figure("gamma12_vs_n", lambda: Fig(), "a figure")
            run.summary[f"tag_{name}"] = "new"
        return f

    monkeypatch.setattr(report.run, "_STAGE_FUNCS", {s: stage(s) for s in report.STAGES})


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("at", [0, 1, 2, 3])  # the figure, report.md, report.html, summary
def test_reproduce_failing_at_any_write_leaves_the_folder_as_it_was(tmp_path, monkeypatch,
                                                                    fault, at):
    import capedyn.report.run as run_mod

    out = tmp_path / "run"
    _fake_stages(monkeypatch)
    report.reproduce(out, quick=True, progress=False)
    (out / "report.md").write_text("the previous run")
    before = snapshot(out)
    monkeypatch.setattr(run_mod, "atomic_write_text",
                        lambda path, text: _io.atomic_write_text(path, text))
    monkeypatch.setattr(run_mod, "atomic_write_json",
                        lambda path, obj: _io.atomic_write_json(path, obj))
    calls = _fail_at(monkeypatch, at, FAULTS[fault]())
    # (capedyn.plotting.save_figure imports atomic_write from _io at call time)
    with pytest.raises((Boom, OutputError, KeyboardInterrupt)):
        report.reproduce(out, quick=True, progress=False, force=True)
    assert len(calls) == at + 1
    assert snapshot(out) == before


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_ingest_failing_at_its_write_leaves_the_file_as_it_was(tmp_path, monkeypatch, fault):
    out = tmp_path / "t.csv"
    out.write_text("previous\n")
    before = snapshot(out)
    _fail_at(monkeypatch, 0, FAULTS[fault]())
    argv = ("ingest", str(ACME), "--out", str(out), "--force")
    if fault == "exception":       # not an error capedyn raises: it propagates
        with pytest.raises(Boom):
            run_cli(*argv)
    else:
        rc, _, err = run_cli(*argv)
        assert rc == (130 if fault == "ctrl-c" else 2)
        assert len(err.strip().splitlines()) == 1
    assert snapshot(out) == before


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_file_writers_leave_the_file_as_it_was(tmp_path, fault):
    """The --plot PNGs and posterior --out go through atomic_write: the same guarantee."""
    out = tmp_path / "plot.png"
    out.write_bytes(b"old")
    before = snapshot(out)
    exc = FAULTS[fault]()

    def writer(p):
        p.write_bytes(b"half")
        raise exc

    with pytest.raises((Boom, OutputError, KeyboardInterrupt)):
        _io.atomic_write(out, writer)
    assert snapshot(out) == before


# ============================================================== 2 and 4. one writer at a time

def test_two_writers_on_one_folder_the_second_fails_at_once(tmp_path, shipped_fit):
    dest = tmp_path / "fit"
    inside, release = threading.Event(), threading.Event()
    errors = []

    def slow_writer():
        try:
            with _publish.staged_folder(dest) as stage:
                (stage / "meta.json").write_text("{}")
                inside.set()
                release.wait(10)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=slow_writer)
    t.start()
    assert inside.wait(10)
    t0 = time.perf_counter()
    with pytest.raises(OutputError) as info:
        shipped_fit.save(dest)
    assert time.perf_counter() - t0 < 2
    assert str(dest) in str(info.value) and "another capedyn run" in str(info.value)
    release.set()
    t.join()
    assert errors == [] and [p.name for p in dest.iterdir()] == ["meta.json"]


_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from capedyn import _publish
    with _publish.staged_folder(sys.argv[1]) as stage:
        (stage / "report.md").write_text("first")
        print("inside", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def test_two_processes_fit_and_reproduce_on_one_out(tmp_path, monkeypatch):
    """The issue's case: two commands aimed at one --out a second apart; the later one
    fails with one line instead of silently replacing the earlier."""
    out = tmp_path / "shared"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(out), "20"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "inside"
        _fake_stages(monkeypatch)
        with pytest.raises(OutputError, match=f"pid {proc.pid}"):
            report.reproduce(out, quick=True, progress=False)
        rc, _, err = run_cli("fit", "--families", "Pythia", "--steps", "1", "--quiet",
                             "--out", str(out))
        assert rc == 2 and "another capedyn run" in err and len(err.strip().splitlines()) == 1
    finally:
        proc.kill()
        proc.wait()
    # the killed writer's lock died with it; its staging folder is swept by the next run
    leftovers = [p.name for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert len(leftovers) == 1 and str(proc.pid) in leftovers[0]
    report.reproduce(out, quick=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]


def test_recheck_at_move_time_refuses_a_run_that_appeared(tmp_path):
    """The destination rule is checked again just before the move."""
    out = tmp_path / "run"
    state = {"n": 0}

    def rule():
        state["n"] += 1
        if state["n"] > 1 and (out / "summary.json").exists():
            raise OutputError("holds a previous run")

    with pytest.raises(OutputError, match="previous run"):
        with _publish.staged_folder(out, recheck=rule) as stage:
            (stage / "summary.json").write_text("new")
            out.mkdir()
            (out / "summary.json").write_text("appeared")
    assert (out / "summary.json").read_text() == "appeared"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# ============================================================== 9. stale staging folders

def test_sweep_removes_only_leftovers_of_dead_writers(tmp_path):
    out = tmp_path / "run"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f".run.partial-{dead.pid}-aaaa"
    alive = tmp_path / f".run.partial-{os.getppid()}-bbbb"
    other = tmp_path / f".other.partial-{dead.pid}-cccc"
    legacy_old = tmp_path / ".run.partial-zz9_x1"         # no owner recorded, 2 days old
    legacy_new = tmp_path / ".run.partial-zz9_x2"         # no owner recorded, fresh
    for d in (gone, alive, other, legacy_old, legacy_new):
        d.mkdir()
        (d / "report.md").write_text("x")
    old = time.time() - 2 * 86400
    os.utime(legacy_old, (old, old))
    link = tmp_path / f".run.partial-{dead.pid}-link"
    link.symlink_to(alive)
    swept = _publish.sweep_stale(out)
    assert sorted(p.name for p in swept) == sorted([gone.name, legacy_old.name])
    assert not gone.exists() and not legacy_old.exists()
    assert alive.exists() and other.exists() and legacy_new.exists() and link.is_symlink()


def test_sweep_restores_a_previous_folder_moved_aside_by_a_killed_writer(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    aside = tmp_path / f".run.old-{dead.pid}-abcd"
    aside.mkdir()
    (aside / "summary.json").write_text("the previous run")
    _publish.sweep_stale(tmp_path / "run")
    assert (tmp_path / "run" / "summary.json").read_text() == "the previous run"


def test_lock_file_is_removed_and_reusable(tmp_path):
    out = tmp_path / "x"
    with _publish.destination_lock(out):
        assert (tmp_path / ".x.lock").read_text() == str(os.getpid())
        with _publish.destination_lock(out):   # re-entrant in one thread
            pass
    assert list(tmp_path.iterdir()) == []
    with _publish.destination_lock(out):
        pass
