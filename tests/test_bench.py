"""The SciPy side of `capedyn bench` must compute the same model as the JAX side: the numpy
vector field equals capedyn's Equinox field at random points, and the SciPy objective
equals the JAX fit's objective at its start and at its solution."""

from __future__ import annotations

import json

import numpy as np
import pytest

import capedyn as cd
from capedyn.evaluation import bench
from capedyn._jax import x64

pytestmark = pytest.mark.xdist_group("fit_ode")  # with test_fit.py on two workers


@pytest.fixture(autouse=True)
def _float64():
    """capedyn scopes float64 to its own calls; these tests build JAX arrays directly."""
    with x64():
        yield


@pytest.mark.parametrize("coupling", ["score", "latent", "none"])
@pytest.mark.parametrize("degree", [1, 2])
def test_numpy_field_equals_jax_field(coupling, degree):
    import jax.numpy as jnp

    rng = np.random.default_rng(7 + degree)
    for _ in range(25):
        coef = rng.normal(scale=0.5, size=(5, 21))
        gamma0 = float(rng.normal())
        nc = float(rng.uniform(8.0, 11.0))
        h = rng.normal(scale=0.3, size=5)
        z = rng.normal(scale=2.0, size=5)
        x = float(rng.uniform(7.5, 11.5))
        field = cd.CouplingField(coef=jnp.asarray(coef), gamma0=jnp.asarray(gamma0),
                                 degree=degree, coupling=coupling, kappa_max=4.0)
        fam = cd.FamilyParams.make(log10_nc=nc, h=h)
        want = np.asarray(field(jnp.asarray(x), jnp.asarray(z), fam))
        got = bench.field_numpy(x, z, coef, gamma0, nc, h, degree=degree, coupling=coupling,
                                kappa_max=4.0)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_kappa_cap_is_reached():
    """A TQA score near its ceiling makes s'_TQA tiny: the cap must bind in both codes."""
    import jax.numpy as jnp

    coef = np.zeros((5, 21))
    coef[:, 0] = 1.0
    z = np.array([0.0, 6.0, 0.0, 0.0, 0.0])
    got = bench.field_numpy(10.0, z, coef, 1.0, 9.0, np.zeros(5))
    assert got[1] == pytest.approx(1.0 + 1.0 * 4.0 * 1.0)   # rate + γ12·κmax·rate_HS
    field = cd.CouplingField(coef=jnp.asarray(coef), gamma0=jnp.asarray(1.0))
    want = np.asarray(field(jnp.asarray(10.0), jnp.asarray(z), cd.FamilyParams.make(9.0)))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_scipy_objective_equals_jax_objective(base_df, pythia_fit):
    from capedyn.dynamics.trajectory import trajectories

    py = base_df[base_df["family"] == "Pythia"]
    est = pythia_fit

    trajs = trajectories(py)
    pen = est._penalties()
    pen_np = {k: np.asarray(getattr(pen, k)) for k in (
        "l2", "l2_const", "l2_gamma", "l2_h", "l2_nc", "nc_prior_mean", "nc_prior_sd", "h_center")}
    sp = bench.ScipyCouplingFit(trajs, pen_np)
    start = est._initial_population(trajs, len(trajs))
    theta0 = sp.pack(*bench._population_arrays(start, len(trajs)))
    assert sp.objective(theta0) == pytest.approx(est.history_[0], rel=1e-5)  # the two solvers agree to ~rtol
    theta = sp.pack(*bench._population_arrays(est.population(), len(trajs)))
    assert sp.objective(theta) == pytest.approx(est.loss_, rel=1e-5)  # the two solvers agree to ~rtol
    # packing round-trips
    parts = sp.unpack(theta)
    np.testing.assert_array_equal(sp.pack(*parts), theta)


def test_bench_cli_passes_its_options_to_run_bench(capsys, monkeypatch):
    """`capedyn bench` hands --quick, --seed and the matched --families to run_bench and
    prints its result: as JSON with --json, through format_bench otherwise."""
    from capedyn.cli.entry import main

    calls = []

    def fake_run_bench(**kw):
        calls.append(kw)
        return _bench_result()

    from capedyn.evaluation import bench_stages

    stage_calls = []

    def fake_stage_timings(stages):
        stage_calls.append(list(stages))
        return _stage_result()

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    monkeypatch.setattr(bench_stages, "stage_timings", fake_stage_timings)
    assert main(["bench", "--quick", "--seed", "3", "--families", "pythia,OPT", "--json"]) == 0
    assert calls == [{"quick": True, "seed": 3, "progress": True, "families": ["Pythia", "OPT"]}]
    out = json.loads(capsys.readouterr().out)
    assert out["fit"]["problem"]["n_params"] == 113 and out["nuts"]["rows"][0]["ess_per_s"] == 12.5
    assert out["stage_timings"]["stages"]["fit"]["cold"]["n_compilations"] == 43
    assert main(["bench"]) == 0
    assert calls[-1] == {"quick": False, "seed": 0, "progress": True, "families": None}
    assert stage_calls == [["fit"], ["fit"]]  # the default fit's cold/warm timings by default
    assert capsys.readouterr().out.strip() == (
        bench.format_bench(_bench_result()).strip() + "\n\n"
        + bench_stages.format_stage_timings(_stage_result()).strip())
    assert main(["bench", "--stages", "none", "--json"]) == 0  # skipped on request
    assert "stage_timings" not in json.loads(capsys.readouterr().out)
    assert main(["bench", "--stages-only", "--json"]) == 0  # only the stages
    assert set(json.loads(capsys.readouterr().out)) == {"stage_timings"}
    assert len(calls) == 3 and stage_calls[-1] == ["fit"]


def _stage_result() -> dict:
    """A stage_timings result with distinct numbers."""
    run = {"wall_s": 9.0, "compile_s": 7.0, "run_s": 2.0, "trace_s": 1.0, "lower_s": 0.5,
           "backend_compile_s": 5.5, "n_programs": 45, "cache_hits": 2, "n_compilations": 43}
    return {"loadavg_1min": 1.5, "cpu_count": 2,
            "stages": {"fit": {"cold": run, "warm": {**run, "n_compilations": 0},
                               "cached": {**run, "cache_hits": 45, "n_compilations": 0}}}}


def test_time_to_loss_uses_the_running_minimum():
    times = np.array([0.0, 1.0, 2.0, 3.0])
    values = np.array([5.0, 3.0, 4.0, 1.0])
    assert bench._time_to(3.5, times, values) == 1.0
    assert bench._time_to(1.0, times, values) == 3.0
    assert bench._time_to(0.5, times, values) is None


def _bench_result() -> dict:
    """A run_bench result with distinct, recognisable numbers."""
    m = {"label": "x", "settings": "s", "seconds": 2.0, "seconds_with_compile": 30.0,
         "final_objective": 0.5}
    eq = {"loss": 0.5, "jax_s": 2.0, "scipy_s": 40.0, "ratio": 20.0, "note": ""}
    return {"quick": False, "cpu_count": 2, "loadavg_1min": 1.0, "seconds_total": 99.0,
            "fit": {"problem": {"families": ["Pythia"], "n_models": 8, "n_params": 113,
                                "n_residuals": 148},
                    "checks": {k: 1.0 for k in ("start_objective_jax", "start_objective_scipy",
                                                "adam_solution_objective_jax",
                                                "adam_solution_objective_scipy")},
                    "methods": {"default": m, "jax_adam": m, "jax_lm": m,
                                "scipy": {**m, "seconds_with_compile": None}},
                    "equal_loss": {"default_vs_scipy": {**eq, "ratio": 31.0,
                                                        "ratio_with_compile": 1.3},
                                   "jax_adam_vs_scipy": eq, "jax_lm_vs_scipy": eq}},
            "nuts": {"rows": [{"model": "coupling", "ess_per_s": 12.5}]}}


def test_format_bench_prints_every_figure():
    text = bench.format_bench(_bench_result())
    assert "SciPy/JAX = 20×" in text and "ess_per_s" in text and "113 parameters" in text
    assert "default fit" in text and "SciPy/JAX = 31×; incl. compilation 1.3×" in text


@pytest.mark.parametrize("batch", [False, True])
def test_the_nested_bench_stage_times_the_benchmarks_own_selection(batch):
    """The bench's nested stage builds coupling_ode's selection as the benchmark's method
    table does (same grid, same inner settings), batched or not; nothing is fitted."""
    from capedyn.evaluation.bench_stages import _nested_selection
    from capedyn.evaluation.heldout import METHODS

    timed, benchmark = _nested_selection(batch), METHODS["coupling_ode"]()
    assert timed.param_grid == benchmark.param_grid and timed.batch is batch
    assert timed.inner_params == benchmark.inner_params


def test_sampling_stages_get_the_command_lines_devices_and_the_others_do_not():
    from capedyn.evaluation import bench_stages

    assert bench_stages.SAMPLING_STAGES <= set(bench_stages.STAGES)
    flag = "--xla_force_host_platform_device_count=2"
    # the stage's process inherits the pool `capedyn bench` sized for its own threads
    parent = {"PJRT_NPROC": "4", "CAPEDYN_SIZED_PJRT_NPROC": "4"}
    for stage in bench_stages.STAGES:
        env = dict(parent)
        set_ = bench_stages._stage_devices(stage, env, cores=2, jax_running=False)
        if stage in ("posterior", "posterior_ode"):  # as `capedyn posterior` on two cores:
            assert set_ == 2 and flag in env["XLA_FLAGS"], (stage, env)
            assert env["PJRT_NPROC"] == "2", (stage, env)  # one pool thread per core
        else:  # a library user's new process: JAX's own default
            assert set_ == 1 and env == parent, (stage, env)
