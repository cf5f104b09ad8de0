"""Shared fixtures. Tests compute expected values independently (by hand from the CSV,
by a second method, or by simulation with known parameters).

The whole suite (``python -m pytest -q`` with no paths) runs on two pytest-xdist workers
(``-n 2 --dist loadgroup``): every test file is one group that runs on one worker in its
own order (module fixtures are built once), a few long tests form groups of their own
(``@pytest.mark.xdist_group``), groups that compile the same programs are merged
(RUN_TOGETHER), and the costliest groups start first so that both workers finish together. Naming files or tests, ``-n 0`` or ``-p no:xdist`` runs in this process
as usual."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import capedyn as cd
from capedyn._cache import enable_for_own_process
from capedyn._compile_flags import fast_compile_for_own_process

# The suite compiles the same programs on every run and in both workers: keep them on disk
# (capedyn's cache folder, or $CAPEDYN_CACHE_DIR; CAPEDYN_NO_CACHE=1 compiles everything).
enable_for_own_process()
# ... and compile them with XLA's quicker CPU emitters, as the command line does (the xdist
# workers and the commands the tests start inherit the setting)
fast_compile_for_own_process()

WORKERS = 2  # the CI machine and the developers' machines have two cores

if os.environ.get("PYTEST_XDIST_WORKER"):
    # the xdist workers already use every core: a held-out sweep in a worker runs its fits
    # one after another and a sampling command keeps one device (tests that ask for
    # threads or devices name them; subprocesses inherit this)
    os.environ.setdefault("CAPEDYN_WORKERS", "1")
    os.environ.setdefault("CAPEDYN_CPU_DEVICES", "1")

# Groups by cost (CPU seconds measured per test with --durations and a per-test CPU clock),
# costliest first; a group not listed runs after these, in file order. Starting the long
# ones first keeps one worker from ending alone on a long group. The names of RUN_TOGETHER
# groups also order the tests inside a merged group (the one that compiles first, first).
COSTLIEST_FIRST = (
    "coupling_nuts",  # ~290 s of CPU: reproduce --quick, posterior, the documentation
    "test_reproduce.py", "test_posterior.py", "readme_python", "test_readme_runs.py",
    "ode_nuts",  # ~200 s
    "posterior_ode_recovery", "test_ode_nc.py",
    "fit_ode", "test_shared_ode_censor.py", "posterior_ode", "test_explore.py",
    "test_examples.py", "examples_notebook", "test_ingest.py", "test_holdout.py",
    "test_family_nc.py", "test_intervals.py", "test_intervals_predict.py", "compilation_cache",
    "test_latent_ode.py",
)

# Groups that compile the same XLA programs run as one group, on one worker, so each program
# is compiled once in the session (the persistent cache spares another worker the XLA
# compilation but not the tracing and lowering, which for a NUTS program over a Diffrax
# solve is a large part of it).
RUN_TOGETHER = {
    # the coupling-level NUTS at 2 chains x 150 (+150) draws on the shipped table (reproduce
    # --quick, `capedyn posterior` in test_posterior.py, the README's sample_posterior), the
    # new-family sampler at the same settings (posterior_family), and `capedyn family` /
    # cd.family_nc at 1 x 100 (+100) on the shipped table plus a three-model family
    "test_reproduce.py": "coupling_nuts", "test_posterior.py": "coupling_nuts",
    "readme_python": "coupling_nuts", "test_readme_runs.py": "coupling_nuts",
    # the ODE-level NUTS at 2 chains x 100 (+100) draws on two families of eight sizes (the
    # recovery test and the implied-Nc simulation check)
    "posterior_ode_recovery": "ode_nuts", "test_ode_nc.py": "ode_nuts",
}


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Default to ``-n 2 --dist loadgroup`` for a whole-suite run when pytest-xdist is there."""
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if (config.option.numprocesses is None and whole_suite
            and not config.getoption("collectonly") and not config.getoption("usepdb")):
        config.option.numprocesses = WORKERS
        config.option.tx = ["popen"] * WORKERS
        if config.option.dist == "no":
            config.option.dist = "loadgroup"
            config.option.loadscopereorder = False  # keep the order set below


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Tell the workers (which parse the command line, not the options set above) that the
    tests are distributed by group."""
    node.workerinput["capedyn_loadgroup"] = node.config.getoption("dist") == "loadgroup"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """On an xdist worker distributing by group: one group per test file unless a test
    names its own, the groups of RUN_TOGETHER merged, and the groups in COSTLIEST_FIRST
    order (every worker collects the same order)."""
    worker = getattr(config, "workerinput", None)
    if not worker or not (worker.get("capedyn_loadgroup") or config.getoption("loadgroup")):
        return
    config.option.loadgroup = True  # xdist then appends "@group" to each test's id
    natural = {}
    for item in items:
        marker = item.get_closest_marker("xdist_group")
        natural[item.nodeid] = marker.args[0] if marker else item.path.name
    for item in items:  # xdist joins every xdist_group marker: keep one per test
        for node in item.listchain():
            node.own_markers[:] = [m for m in node.own_markers if m.name != "xdist_group"]
    for item in items:
        group = natural[item.nodeid]
        item.add_marker(pytest.mark.xdist_group(RUN_TOGETHER.get(group, group)))
    rank = {name: i for i, name in enumerate(COSTLIEST_FIRST)}
    items.sort(key=lambda item: (rank.get(item.get_closest_marker("xdist_group").args[0],
                                          len(rank)),
                                 rank.get(natural[item.nodeid], len(rank))))


@pytest.fixture(scope="session")
def base_df() -> pd.DataFrame:
    return cd.load_base_models()


@pytest.fixture(scope="session")
def frontier_df() -> pd.DataFrame:
    return cd.load_frontier_models()


@pytest.fixture(scope="session")
def pythia_fit(base_df):
    """The default CouplingODE (Levenberg-Marquardt, at most 40 steps) fitted on Pythia: one
    fit for every test that needs a fitted estimator and does not change it."""
    return cd.CouplingODE(steps=40, progress=False).fit(base_df[base_df["family"] == "Pythia"])


@pytest.fixture
def write_csv(tmp_path: Path):
    """write_csv(text_or_dataframe, name='t.csv') -> Path of a CSV in a temporary folder."""

    def _write(content, name: str = "t.csv") -> Path:
        path = tmp_path / name
        if isinstance(content, pd.DataFrame):
            content.to_csv(path, index=False)
        else:
            path.write_text(content)
        return path

    return _write


def pytest_sessionfinish(session, exitstatus):
    # an xdist worker can leave without running atexit hooks: stop the explorer's
    # background job processes here, so none outlives the run and slows the next one
    import sys

    core = sys.modules.get("capedyn.explore.core")
    if core is not None:
        core._stop_jobs()
