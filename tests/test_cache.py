"""The persistent compilation cache: capedyn's compiled solve is written to disk and read
back by a new process; without the opt-in (or with CAPEDYN_NO_CACHE) the process's JAX
configuration is untouched; a user's own Diffrax solves keep Equinox's run-time errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# One fresh process: optionally opt in, solve the coupling ODE once (compiling its program),
# report what JAX's cache did and the process's cache setting.
_SCRIPT = r"""
import json, sys, collections
import jax
from jax import monitoring
events = collections.Counter()
monitoring.register_event_listener(lambda name, **kw: events.update([name]))
monitoring.register_event_duration_secs_listener(lambda name, secs, **kw: events.update([name]))
import capedyn as cd
folder = cd.enable_compilation_cache() if sys.argv[1] == "opt-in" else None
field = cd.CouplingField.zeros()
fam = cd.FamilyParams.make(9.5, [0.1, 0.2, 0.1, 0.05, 0.3])
zs = cd.solve(field, cd.to_state([40.0, 30.0, 35.0, 55.0, 26.0]), 8.0, [8.5, 9.0, 9.7], fam)
print(json.dumps({"folder": None if folder is None else str(folder),
                  "config_dir": jax.config.jax_compilation_cache_dir,
                  "hits": events["/jax/compilation_cache/cache_hits"],
                  "misses": events["/jax/compilation_cache/cache_misses"],
                  "z_last": [float(v) for v in zs[-1]]}))
"""


def _run(mode: str, env_extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CAPEDYN_CACHE_DIR", "CAPEDYN_NO_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.xdist_group("compilation_cache")
def test_second_process_reads_the_compiled_solve_from_disk(tmp_path):
    folder = tmp_path / "cache"
    first = _run("opt-in", {"CAPEDYN_CACHE_DIR": str(folder)})
    assert first["folder"] == str(folder) == first["config_dir"]
    written = sorted(p.name for p in folder.iterdir())
    # the solve's program holds Diffrax's save-time checks: written only without callbacks
    assert any("solve_unchecked" in name for name in written), written
    assert first["misses"] >= 1
    second = _run("opt-in", {"CAPEDYN_CACHE_DIR": str(folder)})
    assert second["misses"] == 0 and second["hits"] == first["misses"]
    assert second["z_last"] == first["z_last"]  # the cached program computes the same


@pytest.mark.xdist_group("compilation_cache")
def test_no_opt_in_or_switched_off_leaves_jax_alone(tmp_path):
    folder = tmp_path / "cache"
    plain = _run("library", {"CAPEDYN_CACHE_DIR": str(folder)})
    assert plain["config_dir"] is None and plain["folder"] is None
    off = _run("opt-in", {"CAPEDYN_CACHE_DIR": str(folder), "CAPEDYN_NO_CACHE": "1"})
    assert off["config_dir"] is None and off["folder"] is None
    assert not folder.exists()
    assert plain["z_last"] == off["z_last"]


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
    from capedyn._cache import cache_disabled, default_cache_dir

    monkeypatch.setenv("CAPEDYN_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("CAPEDYN_CACHE_DIR")
    assert default_cache_dir().parts[-2:] == ("capedyn", "jax")
    for value, off in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv("CAPEDYN_NO_CACHE", value)
        assert cache_disabled() is off


def test_a_users_own_solve_still_raises_on_bad_save_times():
    """capedyn's solves trace Diffrax's checks in Equinox's "nan" mode; that must not leak
    into a user's solve, which keeps Equinox's run-time error."""
    import diffrax
    import equinox as eqx
    import equinox.internal as eqxi
    import jax.numpy as jnp

    import capedyn as cd

    field = cd.CouplingField.zeros()
    cd.solve(field, cd.to_state([40.0, 30.0, 35.0, 55.0, 26.0]), 8.0, [8.5, 9.0],
             cd.FamilyParams.make())
    import diffrax._integrate as integrate

    assert integrate.eqxi is eqxi  # restored after capedyn's trace

    @eqx.filter_jit
    def users_solve(ts):
        return diffrax.diffeqsolve(diffrax.ODETerm(lambda t, y, a: -y), diffrax.Tsit5(), 0.0,
                                   1.0, 0.1, jnp.ones(2), saveat=diffrax.SaveAt(ts=ts)).ys

    with pytest.raises(Exception, match="saveat.ts must be increasing"):
        users_solve(jnp.array([0.5, 0.2, 0.9]))


def test_cli_has_a_no_cache_flag():
    from capedyn.cli.entry import _build_parser

    assert _build_parser().parse_args(["--no-cache"]).no_cache is True


@pytest.mark.xdist_group("compilation_cache")
def test_bench_stage_timings_count_compilations_cold_warm_and_cached():
    """capedyn bench's per-stage report: a new process with an empty cache compiles, the
    same call again compiles nothing, and a second process reads every program from disk."""
    from capedyn.evaluation.bench_stages import stage_timings

    runs = stage_timings(["solve"], progress=False)["stages"]["solve"]
    cold, warm, cached = runs["cold"], runs["warm"], runs["cached"]
    assert cold["n_compilations"] >= 1 and cold["compile_s"] > 0
    assert warm["n_programs"] == 0 and warm["compile_s"] == 0
    assert cached["n_compilations"] == 0 and cached["cache_hits"] == cold["n_programs"]
    for m in runs.values():
        assert m["run_s"] == pytest.approx(m["wall_s"] - m["compile_s"], abs=1e-9)


def test_bench_rejects_an_unknown_stage_before_any_work():
    from capedyn.cli.entry import main

    assert main(["bench", "--stages", "fit,nonsense", "--stages-only"]) == 2


@pytest.fixture
def session_cache_setting():
    """Gives the session its own compilation-cache folder back after a test that moves it."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    from capedyn._cache import enable_compilation_cache

    before = jax.config.jax_compilation_cache_dir
    yield
    if before:
        enable_compilation_cache(before)
    else:
        jax.config.update("jax_compilation_cache_dir", None)
        cc.reset_cache()


def test_a_program_without_its_access_time_file_no_longer_blocks_every_write(
        tmp_path, monkeypatch, session_cache_setting):
    """A program file left by a process without the size cap has no ``-atime`` file; JAX's
    capped cache then fails every later write (it reads each program's access time to
    evict). Opting in pairs such files, after which a write goes through."""
    from jax._src.lru_cache import LRUCache

    from capedyn._cache import MAX_BYTES, enable_compilation_cache, pair_orphaned_entries

    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "jit_old-0123-cache").write_bytes(b"a program")  # no jit_old-0123-atime
    with pytest.raises(FileNotFoundError):  # the failure capedyn repairs
        LRUCache(str(folder), max_size=MAX_BYTES).put("jit_new-4567", b"another")
    assert not (folder / "jit_new-4567-cache").exists()
    assert pair_orphaned_entries(folder) == 1 and pair_orphaned_entries(folder) == 0
    LRUCache(str(folder), max_size=MAX_BYTES).put("jit_new-4567", b"another")
    assert (folder / "jit_new-4567-cache").read_bytes() == b"another"
    # opting in runs the repair: a second orphan gets its file too
    (folder / "jit_older-89ab-cache").write_bytes(b"x")
    monkeypatch.delenv("CAPEDYN_NO_CACHE", raising=False)
    assert enable_compilation_cache(folder) == folder
    assert (folder / "jit_older-89ab-atime").is_file()


def _job_cache_folder(progress):
    """Run in an explorer job's process: the compilation cache folder it uses."""
    import jax

    return jax.config.jax_compilation_cache_dir


@pytest.mark.xdist_group("compilation_cache")
def test_explorer_jobs_use_the_cache_folder_of_the_process_that_starts_them(
        tmp_path, monkeypatch, session_cache_setting):
    """An explorer job (its own low-priority process) reads and writes the starting
    process's cache folder, so what one job compiled the next job reads from disk; a
    process without a cache starts jobs without one."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    from capedyn._cache import enable_compilation_cache
    from capedyn.explore.core import Job

    # the job's process unpickles _job_cache_folder from this module
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("CAPEDYN_NO_CACHE", raising=False)
    folder = tmp_path / "cache"

    def job_folder():
        job = Job("cache folder", _job_cache_folder).start()
        job.wait(240)
        assert job.state == "done", job.error
        return job.result

    assert enable_compilation_cache(folder) == folder
    assert job_folder() == str(folder)
    jax.config.update("jax_compilation_cache_dir", None)
    cc.reset_cache()
    assert job_folder() is None
