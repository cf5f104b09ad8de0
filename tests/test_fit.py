"""The CouplingODE estimator, saved fits and the fit/predict CLI.

Fits here are short (tens of Adam steps) and use the default field configuration and the
2-family × 8-point batch bucket, so they share one compilation with test_ode.py."""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import capedyn as cd
from capedyn._jax import x64
from capedyn._state import N_FEATURES, to_state, from_state
from capedyn.cli import main
from capedyn.data import BENCHMARKS, complete_models
from capedyn.fit import (CouplingODE, Population, Trajectory, TransferRule, optimise,
                         predicted_trajectories, stack_trajectories, trainable_mask)
from capedyn.ode import CouplingField, FamilyParams

SHIPPED = ("all_families", "pythia")


@pytest.fixture(autouse=True)
def _float64():
    """capedyn scopes float64 to its own calls; these tests build JAX arrays directly."""
    with x64():
        yield


@pytest.fixture(scope="module")
def pythia_fit(base_df):
    return CouplingODE(steps=40, progress=False).fit(base_df[base_df["family"] == "Pythia"])


# ----------------------------------------------------------------- recovery by simulation

def test_recovers_gamma0_nc_and_h_from_simulated_trajectories():
    """Simulate two families with the module itself (known γ0, Nc_f, h_f and a fixed
    universal field), add 0.05-point noise, refit γ0, Nc_f, h_f with the field frozen."""
    coef = np.zeros((5, N_FEATURES))
    coef[:, 0] = [0.9, -0.1, 0.5, 0.3, 0.2]
    coef[:, 1:6] = -0.15 * np.eye(5)
    field = eqx.tree_at(lambda f: (f.coef, f.gamma0), CouplingField.zeros(),
                        (jnp.asarray(coef), jnp.asarray(0.6, jnp.float64)))
    true = FamilyParams(jnp.asarray([9.2, 9.9]),
                        jnp.asarray([[0.2, 0.0, -0.1, 0.0, 0.1], [-0.1, 0.1, 0.2, 0.0, 0.0]]))
    sizes = np.geomspace(0.07, 70.0, 8)
    starts = np.array([[28.0, 46.0, 22.0, 51.0, 25.5], [35.0, 42.0, 25.0, 53.0, 26.0]])
    trajs = [Trajectory(f"F{i}", tuple(f"m{j}" for j in range(8)), sizes, np.tile(starts[i], (8, 1)))
             for i in range(2)]
    batch = stack_trajectories(trajs)
    clean, ok = predicted_trajectories(Population(field, true, jnp.asarray(9.5)), batch)
    assert bool(jnp.all(ok))
    noisy = np.asarray(clean) + 0.05 * np.random.default_rng(0).standard_normal(clean.shape)
    noisy[:, 0] = starts  # the initial condition is observed exactly
    trajs = [Trajectory(t.family, t.models, sizes, noisy[i]) for i, t in enumerate(trajs)]
    batch = stack_trajectories(trajs)

    start = Population(eqx.tree_at(lambda f: f.gamma0, field, jnp.asarray(0.0, jnp.float64)),
                       FamilyParams(jnp.asarray([9.5, 9.5]), jnp.zeros((2, 5))), jnp.asarray(9.5))
    # The TQA source and log10 Nc are nearly confounded within one family (both shift the TQA
    # rate; only the variation of the HS rate along the trajectory separates them), so the
    # TQA component of h is held at its true value and everything else below is free.
    start = eqx.tree_at(lambda p: p.families.h, start, start.families.h.at[:, 1].set(true.h[:, 1]))
    mask = trainable_mask(start, field=False, mu_nc=False)
    mask = eqx.tree_at(lambda p: p.families.h, mask, mask.families.h.at[:, 1].set(0.0))
    pen = CouplingODE(l2_h=1e-6, l2_nc=1e-6, l2_gamma=0.0)._penalties()
    fit, _, mse = optimise(start, mask, batch, pen, steps=300, learning_rate=0.05, warmup=20,
                           progress=False)
    assert mse < 0.05 ** 2 * 1.5  # at the noise floor
    assert float(fit.field.gamma0) == pytest.approx(0.6, abs=0.03)
    np.testing.assert_allclose(np.asarray(fit.families.log10_nc), [9.2, 9.9], atol=0.05)
    np.testing.assert_allclose(np.asarray(fit.families.h), np.asarray(true.h), atol=0.01)
    np.testing.assert_allclose(np.asarray(fit.field.coef), coef)  # frozen stays frozen


# ----------------------------------------------------------------- estimator behaviour

def test_fit_uses_complete_families_from_their_smallest_model(base_df, pythia_fit):
    assert list(pythia_fit.families_) == ["Pythia"]
    assert pythia_fit.starts_["Pythia"]["model"] == "Pythia-70M"
    assert np.isfinite(pythia_fit.loss_) and pythia_fit.mse_ < 30.0
    # integrating the fitted family from 70M reproduces the start exactly
    row = base_df[base_df["model"] == "Pythia-70M"].iloc[0]
    pred = pythia_fit.predict(row, [0.07], family="Pythia")
    np.testing.assert_allclose(pred[list(BENCHMARKS)].to_numpy()[0],
                               row[list(BENCHMARKS)].to_numpy(float), rtol=1e-9)


def test_single_family_transfer_rule_returns_that_family(pythia_fit):
    rule = pythia_fit.transfer_.predict(to_state(np.array([70.0, 40.0, 50.0, 65.0, 45.0])), 10.0)
    fam = pythia_fit.families_["Pythia"]
    assert float(rule.log10_nc) == pytest.approx(float(fam.log10_nc))
    np.testing.assert_allclose(np.asarray(rule.h), np.asarray(fam.h))


def test_transfer_rule_is_the_ridge_solution():
    """Compare with ridge solved as an augmented least-squares problem (numpy lstsq)."""
    rng = np.random.default_rng(3)
    z0, x0 = rng.normal(size=(7, 5)), rng.uniform(7.5, 10, 7)
    targets = rng.normal(size=(7, 6))
    fams = FamilyParams(jnp.asarray(targets[:, 0]), jnp.asarray(targets[:, 1:]))
    alpha = 0.7
    rule = TransferRule.fit(z0, x0, fams, alpha)
    feats = np.column_stack([z0, x0])
    phi = (feats - feats.mean(0)) / feats.std(0)
    aug = np.vstack([phi, np.sqrt(alpha * 7) * np.eye(6)])
    rhs = np.vstack([targets - targets.mean(0), np.zeros((6, 6))])
    w = np.linalg.lstsq(aug, rhs, rcond=None)[0]
    new_z, new_x = rng.normal(size=5), 9.1
    expect = targets.mean(0) + ((np.r_[new_z, new_x] - feats.mean(0)) / feats.std(0)) @ w
    got = rule.predict(new_z, new_x)
    assert float(got.log10_nc) == pytest.approx(expect[0])
    np.testing.assert_allclose(np.asarray(got.h), expect[1:], rtol=1e-10)


def test_unseen_family_prediction_uses_only_its_initial_model(base_df, pythia_fit):
    """Changing the held-out family's later rows cannot change its prediction."""
    first = base_df[base_df["model"] == "Llama2-7B"].iloc[0]
    a = pythia_fit.predict(first, [13, 70])
    assert list(a.columns) == ["params_b", *BENCHMARKS]
    assert a["params_b"].tolist() == [13.0, 70.0]
    with pytest.raises(ValueError, match="mmlu"):
        pythia_fit.predict({k: first[k] for k in ("params_b", *BENCHMARKS[:4])}, [13])
    with pytest.raises(ValueError, match="outside|percent"):
        pythia_fit.predict({**{b: 50.0 for b in BENCHMARKS}, "hellaswag": 130.0, "params_b": 7}, [13])


def test_fit_family_freezes_the_population(base_df, pythia_fit):
    est = CouplingODE(steps=40, progress=False).fit(base_df[base_df["family"] == "Pythia"])
    coef = np.asarray(est.field_.coef).copy()
    fam = est.fit_family(base_df[base_df["family"] == "OPT"], steps=20)
    np.testing.assert_array_equal(np.asarray(est.field_.coef), coef)
    assert "OPT" in est.families_ and np.isfinite(float(fam.log10_nc))
    assert est.score(base_df[base_df["family"] == "OPT"])["n_pairs"] == 7 * 5


def test_score_matches_hand_computation(base_df, pythia_fit):
    py = complete_models(base_df[base_df["family"] == "Pythia"]).sort_values("params_b")
    actual = py[list(BENCHMARKS)].to_numpy(float)[1:]
    pred = pythia_fit.predict(py.iloc[0], py["params_b"].to_numpy()[1:], family="Pythia")
    pred = pred[list(BENCHMARKS)].to_numpy()
    per = 100 * np.abs(pred - actual).mean(0) / actual.mean(0)
    s = pythia_fit.score(py)
    np.testing.assert_allclose([s["per_benchmark"][b]["rel_error_pct"] for b in BENCHMARKS], per)
    assert s["mean_rel_error_pct"] == pytest.approx(per.mean())
    assert s["rel_mae_pct"] == pytest.approx(100 * np.abs(pred - actual).sum() / actual.sum())


# ----------------------------------------------------------------- saved fits

def test_save_load_round_trip_gives_identical_predictions(tmp_path, base_df, pythia_fit):
    out = pythia_fit.save(tmp_path / "fit")
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "model.eqx"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["families"][0]["name"] == "Pythia" and meta["field_config"]["n_features"] == 21
    loaded = cd.load_fit(out)
    init = base_df[base_df["model"] == "Llama2-7B"].iloc[0]
    np.testing.assert_array_equal(loaded.predict(init, [13, 70]).to_numpy(),
                                  pythia_fit.predict(init, [13, 70]).to_numpy())
    np.testing.assert_array_equal(np.asarray(loaded.field_.coef), np.asarray(pythia_fit.field_.coef))


def test_load_refuses_missing_corrupt_and_foreign_fits(tmp_path, pythia_fit):
    good = pythia_fit.save(tmp_path / "good")

    def copy(name):
        dst = tmp_path / name
        shutil.copytree(good, dst)
        return dst

    missing = copy("missing_meta")
    (missing / "meta.json").unlink()
    with pytest.raises(cd.FitFileError, match="meta.json is missing"):
        cd.load_fit(missing)

    corrupt = copy("corrupt")
    blob = bytearray((corrupt / "model.eqx").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (corrupt / "model.eqx").write_bytes(bytes(blob))
    with pytest.raises(cd.FitFileError, match="corrupt"):
        cd.load_fit(corrupt)

    truncated = copy("truncated")
    (truncated / "model.eqx").write_bytes((truncated / "model.eqx").read_bytes()[:100])
    meta = json.loads((truncated / "meta.json").read_text())
    meta.pop("model_sha256")  # without the checksum the decoder itself must refuse
    (truncated / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(cd.FitFileError, match="cannot be read"):
        cd.load_fit(truncated)

    foreign = copy("foreign")
    meta = json.loads((foreign / "meta.json").read_text())
    meta["field_config"]["n_features"] = 28
    meta["field_config"]["coef_shape"] = [5, 28]
    (foreign / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(cd.FitFileError, match="different field configuration"):
        cd.load_fit(foreign)

    other_degree = copy("other_degree")
    meta = json.loads((other_degree / "meta.json").read_text())
    meta["config"]["degree"] = 1  # config says degree 1, field_config says degree 2
    (other_degree / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(cd.FitFileError, match="different field configuration"):
        cd.load_fit(other_degree)

    with pytest.raises(cd.FitFileError, match="no fit"):
        cd.load_fit(tmp_path / "nowhere")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_fit_reproduces_its_recorded_metrics(name, base_df):
    est = cd.load_fit(name)
    meta = est.meta_
    csv = resources.files("capedyn.benchmarks_data").joinpath("base_models.csv").read_text("utf-8")
    assert meta["data"]["csv_sha256"] == hashlib.sha256(csv.encode()).hexdigest()
    fams = [f["name"] for f in meta["families"]]
    # recompute every (model, benchmark) error directly from the CSV rows
    errs, actuals = {b: [] for b in BENCHMARKS}, {b: [] for b in BENCHMARKS}
    for fam in fams:
        rows = complete_models(base_df[base_df["family"] == fam]).sort_values("params_b")
        pred = est.predict(rows.iloc[0], rows["params_b"].to_numpy()[1:], family=fam)
        for b in BENCHMARKS:
            actual = rows[b].to_numpy(float)[1:]
            errs[b] += list(np.abs(pred[b].to_numpy() - actual))
            actuals[b] += list(actual)
    for b in BENCHMARKS:
        rel = 100 * np.mean(errs[b]) / np.mean(actuals[b])
        assert rel == pytest.approx(meta["metrics"]["per_benchmark"][b]["rel_error_pct"], rel=1e-6)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_fit_stays_in_range_out_to_a_trillion_parameters(name, base_df):
    est = cd.load_fit(name)
    full = complete_models(base_df)
    for fam in dict.fromkeys(full["family"]):
        first = full[full["family"] == fam].sort_values("params_b").iloc[0]
        pred = est.predict(first, [first["params_b"] * 3, 1000.0])[list(BENCHMARKS)].to_numpy()
        assert np.all(np.isfinite(pred)) and np.all(pred >= 0) and np.all(pred <= 100), fam


# ----------------------------------------------------------------- CLI

def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_predict_json(capsys):
    code, out, _ = _run(capsys, "predict", "--fit", "pythia", "--initial", "Llama2-7B",
                        "--sizes", "13,70", "--json")
    assert code == 0
    preds = json.loads(out)["predictions"]
    assert [p["params_b"] for p in preds] == [13.0, 70.0]
    assert set(preds[0]) == {"params_b", *BENCHMARKS}
    est = cd.load_fit("pythia")
    direct = est.predict({"params_b": 7.0, "hellaswag": 77.2, "truthfulqa": 38.8, "arc": 52.9,
                          "winogrande": 69.5, "mmlu": 45.3}, [13, 70])
    assert preds[1]["mmlu"] == pytest.approx(float(direct["mmlu"].iloc[1]))


def test_cli_bad_initial_lists_close_matches(capsys):
    code, _, err = _run(capsys, "predict", "--fit", "pythia", "--initial", "Llama2-7b-chat",
                        "--sizes", "13")
    assert code == 2 and "Llama2-7B" in err and "Traceback" not in err
    code, _, err = _run(capsys, "predict", "--fit", "pythia", "--initial", "Gemma-3-4B",
                        "--sizes", "13")
    assert code == 2 and "lacks" in err


@pytest.mark.parametrize("scores,needle", [
    ("77,38,52,69", "exactly five"),
    ("77,38,52,69,45,1", "exactly five"),
    ("77,abc,52,69,45", "not a number"),
    ("77,38,152,69,45", "outside 0-100"),
    ("77,38,-1,69,45", "outside 0-100"),
])
def test_cli_malformed_scores(capsys, scores, needle):
    code, _, err = _run(capsys, "predict", "--fit", "pythia", "--scores", scores,
                        "--params-b", "7", "--sizes", "13")
    assert code == 2 and needle in err and "Traceback" not in err


def test_cli_scores_need_params_b_and_valid_sizes(capsys):
    code, _, err = _run(capsys, "predict", "--fit", "pythia", "--scores", "77,38,52,69,45",
                        "--sizes", "13")
    assert code == 2 and "--params-b" in err
    code, _, err = _run(capsys, "predict", "--fit", "pythia", "--scores", "77,38,52,69,45",
                        "--params-b", "7", "--sizes", "13,x")
    assert code == 2 and "--sizes" in err
