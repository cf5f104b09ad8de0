"""One implementation per piece of numerics, each checked by an independent computation.

* the paired bootstrap shared by the Nc bootstrap and the frontier line, against
  ``np.polyfit`` refits of the very resamples it draws;
* the calibration simulation (``numpyro.infer.Predictive`` on the coupling model), against
  the model's stated distribution of γ12, by moments over many draws;
* the posterior table (``az.summary``), against NumPy quantiles of known draws.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import capedyn as cd
from capedyn.inference import coupling_calibration as cal
from capedyn._stats import BOOTSTRAP_BLOCK, bootstrap_indices, paired_bootstrap
from capedyn.coupling.nc_bootstrap import bootstrap_nc
from capedyn.data.tables import BENCHMARKS
from capedyn.inference.models import CouplingData
from capedyn.inference.result import QUANTILES, _build_table


def _polyfits(x, y, idx):
    """(slope, intercept) of each resample by np.polyfit; NaN where it has one distinct x."""
    out = np.full((len(idx), 2), np.nan)
    for k, i in enumerate(idx):
        if np.ptp(x[i]) > 0:
            out[k] = np.polyfit(x[i], y[i], 1)
    return out


# ----------------------------------------------------------------------------- bootstrap

def test_paired_bootstrap_refits_its_own_resamples():
    rng = np.random.default_rng(4)
    x = rng.uniform(8.0, 11.0, 9)
    y = 0.5 * x - 4.7 + rng.normal(0.0, 0.3, 9)
    lines = paired_bootstrap(x, y, 500, seed=11)
    idx = bootstrap_indices(x.size, 500, seed=11)
    assert idx.shape == (500, 9) and idx.min() >= 0 and idx.max() <= 8
    ref = _polyfits(x, y, idx)
    assert lines.valid.all() and lines.n_degenerate == 0
    np.testing.assert_allclose(lines.slopes, ref[:, 0], rtol=1e-9)
    np.testing.assert_allclose(lines.intercepts, ref[:, 1], rtol=1e-9)


def test_paired_bootstrap_flags_resamples_at_one_x():
    # two of three points share x: a resample drawing only those has no slope
    x, y = np.array([1.0, 1.0, 2.0]), np.array([0.0, 1.0, 3.0])
    lines = paired_bootstrap(x, y, 400, seed=0)
    idx = bootstrap_indices(3, 400, seed=0)
    one_x = np.ptp(x[idx], axis=1) == 0
    assert 0 < one_x.sum() < 400  # (2/3)^3 + (1/3)^3 = 1/3 of the resamples, by chance
    np.testing.assert_array_equal(lines.valid, ~one_x)
    assert lines.n_degenerate == one_x.sum()
    assert np.isnan(lines.slopes[one_x]).all() and np.isnan(lines.intercepts[one_x]).all()
    ref = _polyfits(x, y, idx)
    np.testing.assert_allclose(lines.slopes[~one_x], ref[~one_x, 0], rtol=1e-9)


def test_resample_does_not_depend_on_the_number_drawn():
    x, y = np.linspace(0.0, 1.0, 6), np.array([0.1, 0.5, 0.2, 0.9, 0.7, 1.3])
    n = BOOTSTRAP_BLOCK + 10  # crosses a block boundary
    few, many = paired_bootstrap(x, y, 10, seed=3), paired_bootstrap(x, y, n, seed=3)
    np.testing.assert_array_equal(few.slopes, many.slopes[:10])
    np.testing.assert_array_equal(bootstrap_indices(6, n, 3)[:10], bootstrap_indices(6, 10, 3))
    assert len(many.slopes) == n


def test_nc_bootstrap_is_the_percentiles_of_polyfit_refits():
    rng = np.random.default_rng(8)
    x = np.repeat(rng.uniform(8.5, 10.5, 4), 2)  # pairs sharing a size: some resamples at one x
    x = np.concatenate([x, [8.0]])
    g = 0.6 * (x - 9.4) + rng.normal(0.0, 0.25, x.size)
    res = bootstrap_nc((x, g), n_resamples=600, seed=5)
    ref = _polyfits(x, g, bootstrap_indices(x.size, 600, seed=5))
    keep = np.isfinite(ref[:, 0]) & (ref[:, 0] > 0)  # one x or no upward crossing: dropped
    assert res.n_dropped == int((~keep).sum()) and res.n_valid == int(keep.sum())
    log10_nc_b = -ref[keep, 1] / ref[keep, 0] - 9.0
    q = 10 ** np.percentile(log10_nc_b, [2.5, 16.0, 50.0, 84.0, 97.5])
    np.testing.assert_allclose([res.ci95_b[0], res.ci68_b[0], res.median_b, res.ci68_b[1],
                                res.ci95_b[1]], q, rtol=1e-7)


def test_frontier_line_counts_and_drops_degenerate_resamples():
    df = pd.DataFrame({"model": list("abcd"), "lab": ["L"] * 4,
                       "swe_bench": [20.0, 20.0, 20.0, 60.0],
                       "gpqa_diamond": [40.0, 44.0, 42.0, 70.0]})
    line = cd.population_line(df, n_bootstrap=300, seed=2)
    ref = _polyfits(df["swe_bench"].to_numpy(), df["gpqa_diamond"].to_numpy(),
                    bootstrap_indices(4, 300, seed=2))
    ok = np.isfinite(ref[:, 0])
    assert line.n_degenerate == int((~ok).sum()) > 0  # (3/4)^4 ≈ 32% draw only SWE 20
    assert line.boot_slopes.size == ok.sum()
    np.testing.assert_allclose(line.slope_ci, np.percentile(ref[ok, 0], [2.5, 97.5]), rtol=1e-9)
    assert (line.slope, line.intercept) == pytest.approx(tuple(np.polyfit(
        df["swe_bench"], df["gpqa_diamond"], 1)), rel=1e-12)


# ----------------------------------------------------------------------------- simulation

def _design() -> CouplingData:
    """Three families with 1, 2 and 3 pairs (sizes log10 N, HellaSwag steps in points)."""
    return CouplingData(families=("A", "B", "C"), family_idx=np.array([0, 1, 1, 2, 2, 2]),
                        log10_n=np.array([9.0, 8.5, 9.5, 8.2, 9.1, 10.3]),
                        delta_hs=np.array([4.0, 6.0, 3.0, 2.5, 5.0, 8.0]), gamma12=np.zeros(6),
                        n_models=(2, 3, 4), smallest_b=(0.5, 0.2, 0.1), largest_b=(2.0, 6.0, 40.0))


def test_simulation_gamma12_follows_the_stated_likelihood():
    """With Nc and γ0 pinned (τ, s_γ → 0), γ12 ~ Normal(γ0(x − μ), sqrt(σ_γ² +
    2σ_s²(1 + pred²)/ΔHS²)): the standardised draws are standard normal."""
    truth = {"mu": 9.3, "tau": 1e-9, "log_gamma0_mu": math.log(0.7), "log_gamma0_sd": 1e-9,
             "sigma_gamma": 0.2, "sigma_score": 1.5}
    design = _design()
    data, lnc = cal.simulate_coupling_data(300, seed=3, truth=truth, design=design)
    np.testing.assert_allclose(lnc, 9.3, atol=1e-6)
    pred = 0.7 * (data.log10_n - 9.3)
    scale = np.sqrt(0.2 ** 2 + 2 * 1.5 ** 2 * (1 + pred ** 2) / data.delta_hs ** 2)
    z = (data.gamma12 - pred) / scale
    assert z.size == 600  # 100 copies of each design family (1 + 2 + 3 pairs)
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    assert z.std() == pytest.approx(1.0, abs=0.1)
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_simulation_borrows_real_designs_evenly_and_draws_nc_from_the_population():
    design = _design()
    data, lnc = cal.simulate_coupling_data(400, seed=9, design=design)
    t = cal.CALIBRATION_TRUTH
    assert lnc.mean() == pytest.approx(t["mu"], abs=4 * t["tau"] / math.sqrt(400))
    assert lnc.std() == pytest.approx(t["tau"], rel=0.15)
    # every simulated family carries one real family's pairs, each design used 133 or 134 times
    used = []
    for f in range(400):
        x = data.log10_n[data.family_idx == f]
        match = [s for s in range(3) if np.array_equal(x, design.log10_n[design.family_idx == s])]
        assert len(match) == 1
        np.testing.assert_array_equal(data.delta_hs[data.family_idx == f],
                                      design.delta_hs[design.family_idx == match[0]])
        assert data.n_models[f] == design.n_models[match[0]]
        used.append(match[0])
    assert sorted(np.bincount(used)) == [133, 133, 134]


def test_simulation_refuses_unknown_parameters():
    with pytest.raises(ValueError, match="sigma"):
        cal.simulate_coupling_data(3, seed=0, truth={"sigma": 1.0}, design=_design())


# ----------------------------------------------------------------------------- tables

def _idata(draws: dict, families):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az
    return az.from_dict(posterior=draws, coords={"family": list(families),
                                                 "benchmark": list(BENCHMARKS)},
                        dims={"log10_nc": ["family"], "gamma0": ["family"],
                              "h": ["family", "benchmark"]})


def _meta(families):
    n = len(families)
    return CouplingData(families=tuple(families), family_idx=np.arange(n),
                        log10_n=np.zeros(n), delta_hs=np.ones(n), gamma12=np.zeros(n),
                        n_models=(3,) * n, smallest_b=(1.0,) * n, largest_b=(9.0,) * n)


def test_table_is_numpy_quantiles_of_the_draws():
    rng = np.random.default_rng(0)
    fams = ["F1", "F2", "F3"]
    c, d = 4, 250
    draws = {"log10_nc": 9.0 + rng.standard_normal((c, d, 3)) * [0.2, 0.5, 1.0],
             "gamma0": rng.lognormal(-1.0, 0.3, (c, d, 3)),
             "mu": 9.4 + 0.3 * rng.standard_normal((c, d)),
             "tau": np.abs(rng.standard_normal((c, d)))}
    draws["log10_nc_new"] = draws["mu"] + draws["tau"] * rng.standard_normal((c, d))
    table = _build_table(_idata(draws, fams), "coupling", _meta(fams))
    assert list(table["kind"]) == ["family"] * 3 + ["population", "new_family"]
    sources = [draws["log10_nc"][..., i] for i in range(3)] + [draws["mu"], draws["log10_nc_new"]]
    for (_, row), v in zip(table.iterrows(), sources):
        q = 10 ** (np.quantile(v.reshape(-1), QUANTILES) - 9)
        got = [row["nc_ci95_lo_b"], row["nc_ci68_lo_b"], row["nc_median_b"],
               row["nc_ci68_hi_b"], row["nc_ci95_hi_b"]]
        np.testing.assert_allclose(got, q, rtol=1e-12)
        assert row["log10_nc_median"] == pytest.approx(np.median(v), rel=1e-12)
        # independent draws, well mixed: R-hat near 1 and bulk ESS near the draw count
        assert row["rhat_max"] < 1.02 and row["ess_bulk_min"] > 0.6 * c * d
    for i, f in enumerate(fams):
        assert table.loc[i, "gamma0_median"] == pytest.approx(np.median(draws["gamma0"][..., i]))


def test_table_diagnostics_flag_the_family_whose_chains_disagree():
    rng = np.random.default_rng(1)
    fams = ["ok", "stuck"]
    c, d = 4, 200
    lnc = 9.0 + 0.3 * rng.standard_normal((c, d, 2))
    lnc[..., 1] += np.array([0.0, 0.0, 2.0, 2.0])[:, None]  # two chains in another mode
    h = 0.1 * rng.standard_normal((c, d, 2, len(BENCHMARKS)))
    table = _build_table(_idata({"log10_nc": lnc, "h": h}, fams), "ode", _meta(fams))
    assert len(table) == 2  # no population variables drawn: no population row
    assert table.loc[0, "rhat_max"] < 1.05 < 1.5 < table.loc[1, "rhat_max"]
    for i in range(2):
        np.testing.assert_allclose([table.loc[i, f"h_{b}"] for b in BENCHMARKS],
                                   np.median(h[:, :, i].reshape(-1, len(BENCHMARKS)), axis=0),
                                   rtol=1e-12)
