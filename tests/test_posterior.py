"""Posteriors over Nc (capedyn.inference.sampling, SPEC §4).

Expected values come from simulation with known parameters (recovery, calibration), from
the CSV by hand (two-model families), or from a second solver (Diffrax adaptive vs the
fixed grid used inside the NUTS model). Chains and draws are tiny: these check behaviour,
not convergence (the benchmark in the report does that).
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import capedyn as cd
from capedyn.inference import coupling_calibration as cal
from capedyn.inference import sampling as po
from capedyn.cli.entry import main

TINY = dict(chains=2, samples=150, warmup=150, progress=False)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One small coupling-level run through the CLI: JSON, netCDF and PNG outputs."""
    out = tmp_path_factory.mktemp("posterior")
    nc, png = out / "post.nc", out / "forest.png"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["posterior", "--json", "--chains", "2", "--samples", "150", "--warmup",
                     "150", "--no-progress", "--out", str(nc), "--plot", str(png)])
    assert code == 0
    return json.loads(buf.getvalue()), nc, png


# ----------------------------------------------------------------------------- simulation

def test_simulated_families_recovered_small_calibration_run():
    """Known Nc (simulated from the model at the real pair design) inside the intervals."""
    res = cal.calibration_check(n_families=10, seed=5, chains=2, samples=200, warmup=200)
    t = res["table"]
    assert res["n_total"] == 10 and len(t) == 10
    covered = (t["lo95"] <= t["true_log10_nc"]) & (t["true_log10_nc"] <= t["hi95"])
    assert (t["covered95"] == covered).all()
    # nominal 95%: fewer than 8 of 10 covered has probability ~1% when calibrated
    assert covered.sum() >= 8, t
    # families with many pairs are informed: narrower than the prior (±2 decades) and
    # centred near the truth. At least two are simulated whatever the seed: the 10 families
    # borrow the designs of 10 distinct real families, and 5 of the 13 real families with
    # pairs have 5 or more (BLOOM, Cerebras-GPT, OPT, Pythia, Qwen2.5)
    rich = t[t["n_pairs"] >= 5]
    assert len(rich) >= 2
    assert ((rich["hi95"] - rich["lo95"]) < 4.0).all()
    assert np.median(np.abs(rich["median"] - rich["true_log10_nc"])) < 0.6
    assert res["divergences"] == 0


def test_simulation_uses_given_truth():
    data, truth = cal.simulate_coupling_data(200, seed=1)
    assert truth.mean() == pytest.approx(cal.CALIBRATION_TRUTH["mu"], abs=0.15)
    assert truth.std() == pytest.approx(cal.CALIBRATION_TRUTH["tau"], rel=0.2)
    assert data.gamma12.shape == data.log10_n.shape == data.family_idx.shape


# ----------------------------------------------------------------------------- real data

def test_json_shape_and_values(cli_run, base_df):
    res, _, _ = cli_run
    assert set(res) >= {"families", "population", "new_family", "divergences", "model"}
    assert res["model"] == "coupling"
    assert isinstance(res["divergences"], int) and res["divergences"] >= 0
    names = [f["family"] for f in res["families"]]
    # every family with at least one usable pair (|ΔHS| >= 0.5), by hand from the CSV
    expect = []
    for fam, g in base_df.dropna(subset=["hellaswag", "truthfulqa"]).groupby("family", sort=False):
        hs = g.sort_values("params_b")["hellaswag"].to_numpy()
        if np.any(np.abs(np.diff(hs)) >= 0.5):
            expect.append(fam)
    assert sorted(names) == sorted(expect)
    for f in res["families"] + [res["population"], res["new_family"]]:
        assert set(f) >= {"family", "nc_median_b", "nc_ci68_b", "nc_ci95_b", "rhat_max",
                          "ess_bulk_min"}
        lo95, hi95 = f["nc_ci95_b"]
        lo68, hi68 = f["nc_ci68_b"]
        assert 0 < lo95 <= lo68 <= f["nc_median_b"] <= hi68 <= hi95 < math.inf
        assert f["rhat_max"] > 0.9 and f["ess_bulk_min"] > 0


def test_two_model_family_gets_wide_finite_interval(cli_run, base_df):
    res, _, _ = cli_run
    by = {f["family"]: f for f in res["families"]}
    two = [f for f, g in base_df.groupby("family") if len(g) == 2 and f in by]
    assert two, "the shipped table has two-model families (OLMo, Llama-3, EleutherAI)"
    widest_many = max(math.log10(by[f]["nc_ci95_b"][1] / by[f]["nc_ci95_b"][0])
                      for f in ("Falcon", "Phi"))
    for f in two:
        lo, hi = by[f]["nc_ci95_b"]
        assert by[f]["n_obs"] == 1
        assert math.isfinite(lo) and math.isfinite(hi) and hi > lo > 0
        # one pair constrains little: wider than families whose pairs straddle the crossing
        assert math.log10(hi / lo) > widest_many


def test_netcdf_round_trip(cli_run):
    res, nc, png = cli_run
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az
        idata = az.from_netcdf(str(nc))
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 150
    assert list(idata.posterior["log10_nc"].coords["family"].values) == \
        [f["family"] for f in res["families"]]
    loaded = po.load_posterior(nc)
    for f in res["families"]:
        row = loaded.row(f["family"])
        assert row["nc_median_b"] == pytest.approx(f["nc_median_b"], rel=1e-9)
        assert row["rhat_max"] == pytest.approx(f["rhat_max"], rel=1e-9)
    # the median recomputed straight from the stored draws
    draws = idata.posterior["log10_nc"].sel(family="OPT").values.reshape(-1)
    assert loaded.row("OPT")["nc_median_b"] == pytest.approx(10 ** (np.median(draws) - 9))
    assert loaded.divergences == res["divergences"]
    assert not list(nc.parent.glob(".*.tmp"))


def test_posterior_family_two_models_with_population_prior(cli_run):
    _, nc, _ = cli_run
    pop = po.load_posterior(nc)
    new = pd.DataFrame({"model": ["New-1B", "New-7B"], "family": ["NewFam", "NewFam"],
                        "params_b": [1.0, 7.0], "hellaswag": [60.0, 75.0],
                        "truthfulqa": [38.0, 36.0], "arc": [np.nan] * 2,
                        "winogrande": [np.nan] * 2, "mmlu": [np.nan] * 2})
    out = po.posterior_family(pop, new, **TINY, seed=3)
    row = out.row("NewFam")
    assert row["n_obs"] == 1
    assert 0 < row["nc_ci95_lo_b"] < row["nc_median_b"] < row["nc_ci95_hi_b"] < math.inf
    # γ12 = -2/15 < 0 at the pair's geometric mean (sqrt(7) B): tax, so Nc lies above it
    assert row["nc_median_b"] > math.sqrt(7.0)
    with pytest.raises(po.PosteriorError, match="already part"):
        po.posterior_family(pop, pd.concat([new.assign(family="OPT")]), **TINY)


def test_posterior_family_without_data_needs_allow_prior(cli_run):
    """A one-model family has no pair: an error by default; with allow_prior=True the
    result is the population's prior prediction and says so."""
    _, nc, _ = cli_run
    pop = po.load_posterior(nc)
    one = pd.DataFrame({"model": ["Solo-7B"], "family": ["Solo"], "params_b": [7.0],
                        "hellaswag": [75.0], "truthfulqa": [36.0], "arc": [np.nan],
                        "winogrande": [np.nan], "mmlu": [np.nan]})
    with pytest.raises(po.PosteriorError, match="allow_prior"):
        po.posterior_family(pop, one, **TINY)
    out = po.posterior_family(pop, one, **TINY, allow_prior=True)
    assert out.config["prior_only"] is True and out.to_dict()["prior_only"] is True
    assert any("PRIOR PREDICTION" in n for n in out.notes)


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("kw, match", [
    (dict(chains=0), "chains"), (dict(samples=2), "samples"), (dict(warmup=-1), "warmup"),
    (dict(chains=2.5), "chains"), (dict(model="bogus"), "model"),
])
def test_invalid_sampler_settings_raise(kw, match):
    with pytest.raises(po.PosteriorError, match=match):
        po.sample_posterior(**{"progress": False, **kw})


def test_unknown_family_raises(base_df):
    with pytest.raises(cd.DataError, match="Atlantis"):
        po.sample_posterior(base_df, families=["Atlantis"], progress=False)


@pytest.mark.parametrize("argv, match", [
    (["--chains", "0"], "chains"), (["--samples", "-5"], "samples"),
    (["--warmup", "-1"], "warmup"), (["--family", "Atlantis"], "Atlantis"),
    (["--family", "Qwen3"], "no data"), (["--model", "ode", "--family", "Gemma-3"], "no data"),
    (["--chains", "many"], "invalid int"),
])
def test_cli_errors_exit_2(argv, match, capsys):
    try:
        code = main(["posterior", "--no-progress", *argv])
    except SystemExit as exc:  # argparse rejects non-integers itself
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert match in err and "Traceback" not in err


# ----------------------------------------------------------------------------- ODE level

def _toy_field():
    """A small, stable field: constant drift plus weak damping, coupling on."""
    import jax.numpy as jnp

    from capedyn.dynamics.field import CouplingField

    f = CouplingField.zeros()
    coef = np.zeros((5, 21))
    coef[:, 0] = [0.6, -0.1, 0.4, 0.3, 0.1]
    coef[np.arange(5), 1 + np.arange(5)] = -0.05
    import equinox as eqx
    f = eqx.tree_at(lambda m: m.coef, f, jnp.asarray(coef))
    return eqx.tree_at(lambda m: m.gamma0, f, jnp.asarray(0.3))


@pytest.mark.xdist_group("posterior_ode")  # its own group on two workers (tests/conftest.py)
def test_fixed_grid_solve_matches_adaptive_diffrax(base_df):
    import jax.numpy as jnp

    from capedyn._jax import x64

    data = po.trajectory_data(base_df)
    rng = np.random.default_rng(0)
    with x64():  # the arrays built here are float64, as inside capedyn
        cd_fit_field = _toy_field()
        lnc = jnp.asarray(9.5 + rng.normal(0, 0.7, len(data.families)))
        h = jnp.asarray(rng.normal(0, 0.3, (len(data.families), 5)))
        args = (cd_fit_field, jnp.asarray(data.z0), jnp.asarray(data.x0), jnp.asarray(data.xs),
                lnc, h)
        ref, ok_ref = po.solve_families(*args, solver="adaptive")
        fixed, ok = po.solve_families(*args, solver="fixed", steps=5)
    assert bool(ok_ref.all()) and bool(ok.all())
    err = np.abs(cd.from_state(np.asarray(fixed)) - cd.from_state(np.asarray(ref)))
    assert err.max() < 0.02  # points; the score noise is ~1-3 points


@pytest.mark.xdist_group("posterior_ode")
def test_ode_model_runs_and_reports(base_df):
    sub = base_df[base_df["family"].isin(["Pythia", "OLMo"])]
    post = po.sample_posterior(sub, model="ode", fit=_toy_field(), chains=1, samples=15,
                               warmup=15, progress=False)
    fam = post.family_rows()
    assert list(fam["family"]) == ["OLMo", "Pythia"]
    assert list(fam["n_obs"]) == [1, 6]  # models after the start: OLMo 2 - 1, Pythia (standard run) 7 - 1
    assert (fam["nc_ci95_lo_b"] > 0).all() and np.isfinite(fam["nc_ci95_hi_b"]).all()
    assert {f"h_{b}" for b in cd.BENCHMARKS} <= set(fam.columns)
    assert post.idata.posterior["h"].shape[-2:] == (2, 5)
    # the smallest model is a measurement too: its true scores are sampled around it
    start = post.idata.posterior["start_scores"].values.reshape(-1, 2, 5)
    observed = post.data.scores[:, 0]
    assert np.all(start.std(axis=0) > 0.05)
    assert np.all(np.abs(np.median(start, axis=0) - observed) < 15.0)
    # a family outside the fit, with the population frozen: the same start treatment
    new = po.posterior_family(post, base_df[base_df["family"] == "Falcon"], chains=1,
                              samples=15, warmup=15)
    assert new.config["new_family"] == "Falcon"
    assert new.idata.posterior["start_scores"].shape[-2:] == (1, 5)


def test_solve_families_takes_each_familys_own_gamma0(base_df):
    """Per-family γ0 gives, family by family, the solve of a field whose γ0 is that value
    (the field rebuilt and solved one family at a time)."""
    import equinox as eqx
    import jax.numpy as jnp

    from capedyn._jax import x64
    from capedyn.dynamics.field import FamilyParams, solve_unchecked

    data = po.trajectory_data(base_df, ["Pythia", "OLMo", "Falcon"])
    g = np.array([0.05, 0.4, 1.2])
    with x64():
        field = _toy_field()
        lnc, h = jnp.asarray([9.0, 9.5, 10.0]), jnp.zeros((3, 5))
        zs, ok = po.solve_families(field, jnp.asarray(data.z0), jnp.asarray(data.x0),
                                   jnp.asarray(data.xs), lnc, h, gamma0=jnp.asarray(g),
                                   solver="adaptive")
        one = [solve_unchecked(eqx.tree_at(lambda f: f.gamma0, field, jnp.asarray(g[i])),
                               jnp.asarray(data.z0[i]), data.x0[i], jnp.asarray(data.xs[i]),
                               FamilyParams(lnc[i], h[i]), rtol=1e-6, atol=1e-8, max_steps=1024)
               for i in range(3)]
    assert bool(ok.all())
    for i in range(3):
        np.testing.assert_allclose(np.asarray(zs[i]), np.asarray(one[i][0]), atol=1e-9)


@pytest.mark.slow
@pytest.mark.xdist_group("posterior_ode_recovery")
def test_ode_posterior_recovers_simulated_nc_and_h():
    """Two families simulated from a field with a strong running coupling (γ0 = 1.5) at
    known log10 Nc and h, 0.3-point noise; the ODE-level posterior (field held at the
    truth) covers the true values and centres near them. 2 chains x 100 (+100) draws: the
    log10 Nc posterior sd is ~0.03-0.07 here, so the quantiles and medians are well
    inside the tolerances; the centring is also checked in units of that sd. The field is
    float64, as the fields capedyn fits are (and as test_ode_nc.py's simulation check, which
    then shares this test's compiled NUTS program)."""
    import jax.numpy as jnp

    from capedyn._jax import x64
    from capedyn.dynamics.state import from_state, to_state
    from capedyn.dynamics.field import FamilyParams, solve_unchecked
    import equinox as eqx

    with x64():
        field = eqx.tree_at(lambda m: m.gamma0, _toy_field(), jnp.asarray(1.5))
    true_lnc = np.array([9.0, 10.0])
    true_h = np.array([[0.2, 0.0, -0.1, 0.1, 0.0], [-0.1, 0.15, 0.1, 0.0, 0.05]])
    sizes = np.geomspace(0.1, 60.0, 8)
    xs = np.log10(sizes * 1e9)
    starts = np.array([[30.0, 44.0, 23.0, 51.0, 25.5], [33.0, 42.0, 25.0, 52.0, 26.0]])
    rng = np.random.default_rng(4)
    scores = np.zeros((2, len(xs), 5))
    with x64():
        for i in range(2):
            zs, ok = solve_unchecked(field, jnp.asarray(to_state(starts[i])), xs[0],
                                     jnp.asarray(xs), FamilyParams(jnp.asarray(true_lnc[i]),
                                                                   jnp.asarray(true_h[i])))
            assert bool(ok)
            scores[i] = np.asarray(from_state(zs))
    scores[:, 1:] += rng.normal(0, 0.3, scores[:, 1:].shape)
    mask = np.ones((2, len(xs)), bool)
    mask[:, 0] = False
    data = po.TrajectoryData(families=("A", "B"), x0=xs[[0, 0]], z0=np.asarray(to_state(starts)),
                             xs=np.tile(xs, (2, 1)), scores=scores, mask=mask,
                             n_models=(8, 8), smallest_b=(0.1, 0.1), largest_b=(60.0, 60.0))
    post = po.sample_posterior(data, model="ode", fit=field, chains=2, samples=100, warmup=100,
                               seed=1, progress=False)
    p = post.idata.posterior
    lnc = p["log10_nc"].values.reshape(-1, 2)
    h = p["h"].values.reshape(-1, 2, 5)
    for i in range(2):
        lo, hi = np.quantile(lnc[:, i], [0.025, 0.975])
        assert lo <= true_lnc[i] <= hi
        assert abs(np.median(lnc[:, i]) - true_lnc[i]) < 0.5
        assert abs(np.median(lnc[:, i]) - true_lnc[i]) < 4 * lnc[:, i].std()
        np.testing.assert_allclose(np.median(h[:, i], axis=0), true_h[i], atol=0.08)
    assert post.divergences == 0
