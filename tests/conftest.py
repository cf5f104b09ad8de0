"""Shared fixtures. Tests compute expected values independently (by hand from the CSV,
by a second method, or by simulation with known parameters).

The whole suite (``python -m pytest -q`` with no paths) runs on two pytest-xdist workers
(``-n 2 --dist loadgroup``): every test file is one group that runs on one worker in its
own order (module fixtures are built once), a few long tests form groups of their own
(``@pytest.mark.xdist_group``), and the costliest groups start first so that both workers
finish together. Naming files or tests, ``-n 0`` or ``-p no:xdist`` runs in this process
as usual."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import capedyn as cd
from capedyn._cache import enable_for_own_process

# The suite compiles the same programs on every run and in both workers: keep them on disk
# (capedyn's cache folder, or $CAPEDYN_CACHE_DIR; CAPEDYN_NO_CACHE=1 compiles everything).
enable_for_own_process()

WORKERS = 2  # the CI machine and the developers' machines have two cores

# Groups by cost on two idle cores, costliest first (measured with --durations; a group not
# listed runs after these, in file order). Starting the long ones first keeps one worker
# from ending alone on a long file.
COSTLIEST_FIRST = (
    "test_reproduce.py", "posterior_ode_recovery", "test_ode_nc.py", "posterior_ode",
    "test_posterior.py",
    "readme_python", "test_readme_runs.py",  # the documentation, executed
    "fit_ode", "test_ingest.py", "examples_notebook", "test_shared_ode_censor.py",
    "test_intervals.py", "test_intervals_predict.py", "test_examples.py", "test_explore.py", "test_holdout.py",
    "test_latent_ode.py", "test_family_nc.py",
)


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
    names its own, and the groups in COSTLIEST_FIRST order (every worker collects the same
    order)."""
    worker = getattr(config, "workerinput", None)
    if not worker or not (worker.get("capedyn_loadgroup") or config.getoption("loadgroup")):
        return
    config.option.loadgroup = True  # xdist then appends "@group" to each test's id
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
    rank = {name: i for i, name in enumerate(COSTLIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.get_closest_marker("xdist_group").args[0],
                                         len(rank)))


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
