"""Running coupling, population fit, Nc bootstrap, sign test, phase classifier and the
``coupling`` / ``nc`` / ``phase`` commands. Expected values come from the CSV text, from
numpy/scipy as a second method, or from synthetic data with a known answer."""

from __future__ import annotations

import csv
import io
import json
import math
from importlib import resources

import numpy as np
import pandas as pd
import pytest

import capedyn as cd
from capedyn.cli.entry import main
from capedyn.coupling.running import (
    CouplingError, family_couplings, population_fit, running_coupling, sign_test,
)
from capedyn.coupling.nc_bootstrap import bootstrap_nc
from capedyn.coupling.phase import phase_classifier


@pytest.fixture(scope="module")
def raw() -> dict[str, dict[str, str]]:
    """Rows of the shipped base table read straight from the CSV text, by model name."""
    text = resources.files("capedyn.benchmarks_data").joinpath("base_models.csv").read_text("utf-8")
    return {r["model"]: r for r in csv.DictReader(io.StringIO(text))}


@pytest.fixture(scope="module")
def pairs(base_df) -> pd.DataFrame:
    return running_coupling(base_df)


def _row(pairs, a, b):
    hit = pairs[(pairs["model_from"] == a) & (pairs["model_to"] == b)]
    assert len(hit) == 1, (a, b)
    return hit.iloc[0]


def _hand_gamma(raw, a, b) -> float:
    ra, rb = raw[a], raw[b]
    return ((float(rb["truthfulqa"]) - float(ra["truthfulqa"]))
            / (float(rb["hellaswag"]) - float(ra["hellaswag"])))


# ----------------------------------------------------------------------------- pairs

def test_opt_pair_by_hand(pairs):
    r = _row(pairs, "OPT-2.7B", "OPT-6.7B")
    assert r["gamma12"] == pytest.approx((35.12 - 37.43) / (68.66 - 61.43), rel=1e-12)
    assert r["params_b_mid"] == pytest.approx(math.sqrt(2.7 * 6.7))
    assert r["log10_n_mid"] == pytest.approx(math.log10(math.sqrt(2.7e9 * 6.7e9)))
    assert not r["skipped"] and r["reason"] == ""


@pytest.mark.parametrize("a,b", [("Pythia-70M", "Pythia-160M"), ("Llama2-13B", "Llama2-70B"),
                                 ("OLMo-1B", "OLMo-7B"), ("Falcon-7B", "Falcon-40B")])
def test_pairs_match_csv_text(pairs, raw, a, b):
    assert _row(pairs, a, b)["gamma12"] == pytest.approx(_hand_gamma(raw, a, b), rel=1e-12)


def test_pair_count_from_csv_text(pairs, raw):
    per_family: dict[str, int] = {}
    for r in raw.values():
        if r["hellaswag"].strip() and r["truthfulqa"].strip():
            per_family[r["family"]] = per_family.get(r["family"], 0) + 1
    assert len(pairs) == sum(n - 1 for n in per_family.values())


def _synthetic(rows) -> pd.DataFrame:
    text = "model,family,params_b,hellaswag,truthfulqa,arc,winogrande,mmlu\n" + "\n".join(
        f"{m},{f},{n},{hs},{tqa},30,55,26" for m, f, n, hs, tqa in rows)
    return cd.validate_base_models(pd.read_csv(io.StringIO(text), dtype=str,
                                               keep_default_na=False))


def test_skip_rule_and_missing_scores():
    df = _synthetic([
        ("a1", "A", 1.0, 50.0, 40.0),
        ("a2", "A", 2.0, 50.3, 39.0),   # |ΔHS| = 0.3 -> skipped
        ("a3", "A", 4.0, "", 38.0),     # no HS -> left out of the chain
        ("a4", "A", 8.0, 50.8, 37.0),   # ΔHS = 0.5 exactly -> kept
        ("b1", "B", 3.0, 60.0, 30.0),   # single model -> no pair
    ])
    t = running_coupling(df)
    assert list(zip(t["model_from"], t["model_to"])) == [("a1", "a2"), ("a2", "a4")]
    first, second = t.iloc[0], t.iloc[1]
    assert first["skipped"] and math.isnan(first["gamma12"])
    assert "0.30 < 0.5" in first["reason"] and "ill-conditioned" in first["reason"]
    assert not second["skipped"]
    assert second["gamma12"] == pytest.approx((37.0 - 39.0) / (50.8 - 50.3))
    assert running_coupling(df, min_delta_hs=0.2)["skipped"].sum() == 0


# ----------------------------------------------------------------------------- fits

def _pair_table(x, g, families=None):
    x = np.asarray(x, float)
    return pd.DataFrame({"family": families or ["S"] * len(x), "log10_n_mid": x,
                         "params_b_mid": 10 ** (x - 9), "gamma12": np.asarray(g, float),
                         "skipped": False, "model_from": "m", "model_to": "n"})


def test_fit_three_points_known_crossing():
    # γ12 = 0.5·(log10 N − 9.5): A = 0.5, B = −4.75, Nc = 10^9.5 = 3.1623B
    x = [8.0, 9.0, 10.0]
    fit = population_fit(_pair_table(x, [-0.75, -0.25, 0.25]))
    assert (fit.A, fit.B, fit.r2, fit.n) == pytest.approx((0.5, -4.75, 1.0, 3))
    assert fit.nc_b == pytest.approx(3.16227766) and fit.crossing == "upward"
    assert fit.robust_nc_b == pytest.approx(3.16227766)
    assert fit.predict(10 ** 0.5) == pytest.approx(0.0, abs=1e-12)


def test_no_upward_crossing_is_explicit():
    fit = population_fit(_pair_table([8.0, 9.0, 10.0], [0.5, 0.0, -0.5]))
    assert fit.A == pytest.approx(-0.5)
    assert math.isnan(fit.nc_b) and fit.crossing.startswith("none")
    assert fit.to_dict()["nc_b"] is None
    with pytest.raises(CouplingError, match="at least 2 usable pairs"):
        population_fit(_pair_table([9.0], [0.1]))
    with pytest.raises(CouplingError, match="same size"):
        population_fit(_pair_table([9.0, 9.0], [0.1, 0.2]))


def test_population_fit_matches_numpy_and_brute_force_theil_sen(pairs):
    fit = population_fit(pairs)
    u = pairs[~pairs["skipped"]]
    x, y = u["log10_n_mid"].to_numpy(), u["gamma12"].to_numpy()
    a, b = np.polyfit(x, y, 1)
    r2 = np.corrcoef(x, y)[0, 1] ** 2
    assert (fit.A, fit.B, fit.r2, fit.n) == pytest.approx((a, b, r2, len(u)))
    assert fit.nc_b == pytest.approx(10 ** (-b / a) / 1e9)
    i, j = np.triu_indices(len(x), 1)
    keep = x[i] != x[j]
    slope = np.median((y[j] - y[i])[keep] / (x[j] - x[i])[keep])
    assert fit.robust_A == pytest.approx(slope)
    assert fit.robust_B == pytest.approx(np.median(y) - slope * np.median(x))


def test_family_coupling_two_pairs_by_hand(pairs, raw):
    # Falcon 1B→7B→40B: two pairs, the line through them is exact
    g1 = _hand_gamma(raw, "Falcon-1B", "Falcon-7B")
    g2 = _hand_gamma(raw, "Falcon-7B", "Falcon-40B")
    x1, x2 = math.log10(math.sqrt(1e9 * 7e9)), math.log10(math.sqrt(7e9 * 40e9))
    gamma0 = (g2 - g1) / (x2 - x1)
    nc_b = 10 ** (x1 - g1 / gamma0) / 1e9
    fams = family_couplings(pairs).set_index("family")
    assert fams.loc["Falcon", "gamma0"] == pytest.approx(gamma0)
    assert fams.loc["Falcon", "nc_b"] == pytest.approx(nc_b)
    assert "OLMo" not in fams.index  # one pair only


def test_sign_test_synthetic():
    t = _pair_table(np.log10([0.5e9, 1e9, 2.9e9, 5e9, 11e9, 20e9, 40e9]) ,
                    [-0.3, 0.0, 0.2, 0.9, 0.4, -0.1, 1.0])
    # below 3B: −0.3 ok, 0.0 ok, 0.2 wrong; 5B not tested; above 10B: 0.4 ok, −0.1 wrong, 1.0 ok
    st = sign_test(t)
    assert (st.correct, st.total) == (4, 6)
    assert sorted(v["gamma12"] for v in st.violations) == [-0.1, 0.2]


def test_sign_test_paper_families():
    # From the authors' table (base_models_paper.csv): Pythia pairs centred below 3B are
    # 70M→160M, 160M→410M, 410M→1B, 1B→1.4B (ΔTQA = 0) and 1.4B→2.8B, all ΔTQA ≤ 0 with
    # ΔHS > 0; above 10B only Llama-1 13B→65B and Llama-2 13B→70B, both ΔTQA > 0.
    paper = running_coupling(cd.load_base_models(variant="paper"))
    st = sign_test(paper, families=["Pythia", "Llama-1", "Llama-2"])
    assert (st.correct, st.total) == (7, 7)


def test_sign_test_paper_families_measured(pairs):
    # From base_models.csv: the standard Pythia run has no 1B, so its pairs centred below
    # 3B are 70M→160M (TQA 47.06→44.26), 160M→410M (→41.22), 410M→1.4B (→38.85) and
    # 1.4B→2.8B (→35.4), all ΔTQA < 0 with ΔHS > 0; 2.8B→6.9B and 6.9B→12B are centred
    # between 3B and 10B (untested); above 10B the same two Llama pairs, ΔTQA > 0.
    st = sign_test(pairs, families=["Pythia", "Llama-1", "Llama-2"])
    assert (st.correct, st.total) == (6, 6)


# ----------------------------------------------------------------------------- classifier

def test_phase_classifier_by_hand():
    # OLMo-1B: sqrt(0.187 × 0.635) = sqrt(0.118745) = 0.344594; TQA 36.4% > 34.46% -> bonus
    r = phase_classifier(63.5, 36.4)
    assert r.tqa_critical_fraction == pytest.approx(0.344594, abs=1e-6)
    assert r.tqa_critical == pytest.approx(34.4594, abs=1e-4)
    assert r.phase == "bonus" and r.margin == pytest.approx(36.4 - 34.4594, abs=1e-4)
    # OLMo-7B: sqrt(0.187 × 0.78) = 0.381916 > 0.357 -> tax
    v = phase_classifier(np.array([63.5, 78.0, 50.0]), np.array([36.4, 35.7, 10.0]))
    assert list(v.phase) == ["bonus", "tax", "tax"]
    assert v.tqa_critical_fraction[1] == pytest.approx(0.381916, abs=1e-6)
    # at the boundary: HS = 18.7% gives TQA_c = sqrt(0.187 × 0.187) = 18.7% -> tax
    assert phase_classifier(18.7, 18.7).phase == "tax"
    with pytest.raises(ValueError, match="hs"):
        phase_classifier(101.0, 30.0)


# ----------------------------------------------------------------------------- bootstrap

@pytest.fixture(scope="module")
def synthetic_known_nc():
    """γ12 = 0.6·(log10 N − log10 4e9) + noise; true Nc = 4B."""
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(8.0, 11.0, 30))
    g = 0.6 * (x - math.log10(4e9)) + rng.normal(0.0, 0.15, x.size)
    return x, g


def test_bootstrap_covers_known_nc_and_is_reproducible(synthetic_known_nc):
    res = bootstrap_nc(synthetic_known_nc, n_resamples=2000, seed=3)
    assert res.ci95_b[0] < 4.0 < res.ci95_b[1]
    assert res.ci95_b[0] <= res.ci68_b[0] <= res.median_b <= res.ci68_b[1] <= res.ci95_b[1]
    assert res.n_valid + res.n_dropped == res.n_resamples == 2000
    a, b = np.polyfit(*synthetic_known_nc, 1)
    assert res.nc_b == pytest.approx(10 ** (-b / a) / 1e9)
    assert bootstrap_nc(synthetic_known_nc, n_resamples=2000, seed=3) == res
    other = bootstrap_nc(synthetic_known_nc, n_resamples=2000, seed=4)
    assert other.median_b != res.median_b


def test_bootstrap_weighted_ols_matches_numpy(synthetic_known_nc):
    from capedyn._jax import x64
    from capedyn._stats import weighted_ols

    x, g = synthetic_known_nc
    counts = np.random.default_rng(0).multinomial(x.size, np.ones(x.size) / x.size)
    with x64():
        a, b, ok = weighted_ols(counts.astype(float), x, g, 1e-12)
    assert bool(ok)
    # polyfit weights multiply residuals, so sqrt(counts) gives count-weighted least squares
    ea, eb = np.polyfit(x, g, 1, w=np.sqrt(counts))
    assert (float(a), float(b)) == pytest.approx((ea, eb), rel=1e-10)


def test_bootstrap_drops_resamples_without_crossing():
    rng = np.random.default_rng(2)
    x = rng.uniform(8, 11, 12)
    flat = rng.normal(0.0, 0.3, 12)  # no trend: about half the resamples have A <= 0
    res = bootstrap_nc((x, flat), n_resamples=1000, seed=0)
    assert 100 < res.n_dropped < 900
    with pytest.raises(CouplingError, match="upward crossing"):
        bootstrap_nc((x, -2.0 * x), n_resamples=200, seed=0)


# ----------------------------------------------------------------------------- CLI

def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_coupling_json(capsys, pairs):
    code, out, _ = _run(capsys, "coupling", "--json")
    assert code == 0
    r = json.loads(out)
    u = pairs[~pairs["skipped"]]
    a, b = np.polyfit(u["log10_n_mid"], u["gamma12"], 1)
    assert (r["A"], r["B"]) == pytest.approx((a, b))
    assert r["nc_b"] == pytest.approx(10 ** (-b / a) / 1e9)
    assert len(r["pairs"]) == len(pairs) and {"correct", "total"} <= set(r["sign_test"])
    code, out, _ = _run(capsys, "coupling", "--family", "OLMo", "--json")
    r = json.loads(out)
    assert code == 0 and r["A"] is None and "at least 2" in r["fit_note"]
    assert r["pairs"][0]["gamma12"] == pytest.approx((35.7 - 36.4) / (78.0 - 63.5))
    code, out, err = _run(capsys, "coupling", "--family", "Nope", "--json")
    assert code == 2 and out == "" and "Nope" in err and "Pythia" in err


def test_cli_nc_json(capsys):
    code, out, _ = _run(capsys, "nc", "--families", "Pythia,Llama-1,Llama-2",
                        "--bootstrap", "500", "--seed", "2", "--json")
    assert code == 0
    r = json.loads(out)
    assert r["n_resamples"] == 500 and r["n_pairs"] == 10  # 6 + 2 + 2 consecutive pairs
    assert r["ci95_b"][0] <= r["ci68_b"][0] <= r["median_b"] <= r["ci68_b"][1] <= r["ci95_b"][1]
    code, out2, _ = _run(capsys, "nc", "--families", "@paper14", "--bootstrap", "500",
                         "--seed", "2", "--json")
    assert json.loads(out2)["median_b"] == r["median_b"]
    # the authors' table: 8 Pythia sizes, so 7 + 2 + 2 pairs
    code, out3, _ = _run(capsys, "nc", "--data", "@paper", "--families", "@paper14",
                         "--bootstrap", "500", "--seed", "2", "--json")
    assert code == 0 and json.loads(out3)["n_pairs"] == 11


def test_cli_phase_json(capsys):
    code, out, _ = _run(capsys, "phase", "--hs", "63.5", "--tqa", "36.4", "--json")
    r = json.loads(out)
    assert code == 0 and r["phase"] == "bonus"
    assert r["tqa_critical"] == pytest.approx(34.4594, abs=1e-4)
    code, out, _ = _run(capsys, "phase", "--hs", "78", "--tqa", "35.7", "--params-b", "100",
                        "--json")
    r = json.loads(out)
    assert r["phase"] == "tax" and r["population_fit"]["regime"] in ("tax", "bonus")
    assert (r["population_fit"]["gamma12"] > 0) == (r["population_fit"]["regime"] == "bonus")
    code, _, err = _run(capsys, "phase", "--hs", "0.8", "--tqa", "130")
    assert code == 2 and "--tqa" in err and "[0, 100]" in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["coupling"], ["nc", "--bootstrap", "10"],
                                     ["phase", "--hs", "50", "--tqa", "40", "--params-b", "7"]])
def test_cli_bad_data_file(capsys, write_csv, command):
    path = write_csv("model,family,params_b,hellaswag,truthfulqa,arc,winogrande,mmlu\n"
                     "x-1B,X,1.0,50,40,30,55,26\nx-2B,X,two,55,39,31,56,27\n")
    code, out, err = _run(capsys, *command, "--data", str(path))
    assert code == 2 and out == ""
    assert str(path) in err and "row 2" in err and "'params_b'" in err and "not a number" in err
    assert "Traceback" not in err
