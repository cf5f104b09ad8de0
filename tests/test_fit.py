"""The CouplingODE estimator, saved fits and the fit/predict CLI.

Fits here are short (at most tens of steps) and use the default field configuration and
the 2-family × 8-point batch bucket, so they share their compilations with test_ode.py and
test_bench.py (the same worker when the suite runs on two; the Pythia fit is the session
fixture ``pythia_fit`` in conftest.py)."""

from __future__ import annotations

import copy
import dataclasses
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
from capedyn.dynamics.state import N_FEATURES, to_state
from capedyn.cli.entry import main
from capedyn.data.tables import BENCHMARKS, complete_models
from capedyn.models.coupling_ode import CouplingODE, TransferRule
from capedyn.dynamics.objective import Population, predicted_trajectories, trainable_mask
from capedyn.dynamics.optimise import optimise
from capedyn.dynamics.trajectory import Trajectory, stack_trajectories
from capedyn.dynamics.field import CouplingField, FamilyParams

SHIPPED = ("all_families", "pythia")
# one worker for this file, test_ode.py and test_bench.py on two workers (tests/conftest.py):
# they fit and differentiate the same Pythia-shaped problem and share its compilations
pytestmark = pytest.mark.xdist_group("fit_ode")


@pytest.fixture(autouse=True)
def _float64():
    """capedyn scopes float64 to its own calls; these tests build JAX arrays directly."""
    with x64():
        yield


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
    est = copy.deepcopy(pythia_fit)  # fit_family adds to the estimator: leave the fixture alone
    coef = np.asarray(est.field_.coef).copy()
    fam = est.fit_family(base_df[base_df["family"] == "OPT"], steps=20)
    np.testing.assert_array_equal(np.asarray(est.field_.coef), coef)
    assert "OPT" in est.families_ and np.isfinite(float(fam.log10_nc))
    assert est.error_summary(base_df[base_df["family"] == "OPT"])["n_pairs"] == 7 * 5


def test_score_matches_hand_computation(base_df, pythia_fit):
    py = complete_models(base_df[base_df["family"] == "Pythia"]).sort_values("params_b")
    actual = py[list(BENCHMARKS)].to_numpy(float)[1:]
    pred = pythia_fit.predict(py.iloc[0], py["params_b"].to_numpy()[1:], family="Pythia")
    pred = pred[list(BENCHMARKS)].to_numpy()
    per = 100 * np.abs(pred - actual).mean(0) / actual.mean(0)
    s = pythia_fit.error_summary(py)
    np.testing.assert_allclose([s["per_benchmark"][b]["rel_error_pct"] for b in BENCHMARKS], per)
    assert s["mean_rel_error_pct"] == pytest.approx(per.mean())
    # score(): one float, the negative mean relative error in percent (greater is better)
    assert pythia_fit.score(py) == pytest.approx(-per.mean())
    table = pythia_fit.error_table(py)
    assert len(table) == (len(py) - 1) * 5  # every model after the start, five benchmarks
    np.testing.assert_allclose(table["abs_err"].sum(), np.abs(pred - actual).sum())
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
    # with a checksum that matches the truncated file, the decoder itself must refuse
    meta["model_sha256"] = hashlib.sha256((truncated / "model.eqx").read_bytes()).hexdigest()
    (truncated / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(cd.FitFileError, match="cannot be read"):
        cd.load_fit(truncated)
    meta.pop("model_sha256")  # and a fit without its checksum is refused before reading
    (truncated / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(cd.FitFileError, match="model_sha256"):
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
    assert set(preds[0]) == {"params_b", "extrapolated", *BENCHMARKS}
    # Llama2-7B's HellaSwag (77.2) lies above every Pythia model's: an extrapolation
    pythia_hs = cd.load_base_models().query("family == 'Pythia'")["hellaswag"].max()
    assert pythia_hs < 77.2 and all(p["extrapolated"] for p in preds)
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


# ----------------------------------------------------------------- default optimiser (LM)

def _small_problem(base_df, families=("Pythia", "OLMo")):
    """Two families (one long, one short) in the 2-family × 8-point bucket."""
    from capedyn.dynamics.objective import _float64
    from capedyn.dynamics.trajectory import trajectories

    est = CouplingODE(progress=False)
    trajs = trajectories(base_df[base_df["family"].isin(families)])
    batch = _float64(stack_trajectories(trajs))
    pop = _float64(est._initial_population(trajs, batch.x0.shape[0]))
    return est, trajs, batch, pop, _float64(est._penalties())


def test_residual_vector_squares_to_the_objective(base_df):
    from capedyn.dynamics.objective import objective, residual_vector

    _, _, batch, pop, pen = _small_problem(base_df)
    r = residual_vector(pop, batch, pen)
    assert float(r @ r) == pytest.approx(float(objective(pop, batch, pen)[0]), rel=1e-10)


def test_lm_jacobian_matches_central_finite_differences(base_df):
    """The Jacobian the LM step uses on adaptive solves (residual_jacobian: jacfwd through
    the diffrax.ForwardMode solve, family by family) against central differences of the
    residuals, along random directions."""
    from jax.flatten_util import ravel_pytree

    from capedyn.dynamics.objective import _float64, residual_jacobian
    from capedyn.dynamics.optimise import _masked_residuals

    _, _, batch, pop, pen = _small_problem(base_df)
    pop = eqx.tree_at(lambda p: p.field.gamma0, pop, jnp.asarray(0.2))  # coupling active
    args = (batch, pen, _float64(trainable_mask(pop)), pop)
    flat, unravel = ravel_pytree(pop)
    _, jac = residual_jacobian(pop, *args)
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = rng.standard_normal(flat.size)
        eps = 1e-4  # the adaptive solve is smooth only to ~rtol (1e-7): keep eps well above
        plus = _masked_residuals(unravel(flat + eps * v), args)
        minus = _masked_residuals(unravel(flat - eps * v), args)
        fd = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(np.asarray(jac @ v), np.asarray(fd), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("jacobian", ["forward", "auto"])
def test_family_block_jacobian_equals_the_dense_jacobian(base_df, jacobian):
    """residual_jacobian builds the Jacobian family by family (each family's rows pushed
    through its solve with the field's and its own tangents only); plain jax.jacfwd over
    every parameter of the whole residual vector must give the same matrix, frozen leaves,
    absent (padding) families and penalty rows included; in forward mode and with "auto"
    (reverse mode here: 8 padded models × 5 benchmarks = 40 rows per family)."""
    import jax
    from jax.flatten_util import ravel_pytree

    from capedyn.dynamics.objective import residual_jacobian, residual_vector, with_frozen

    _, trajs, batch, pop, pen = _small_problem(base_df, ("Pythia", "OLMo", "BLOOM"))
    batch = dataclasses.replace(batch, lm_solve_steps=4, jacobian=jacobian)
    assert batch.x0.shape[0] > len(trajs)  # the bucket pads: a padding family is in play
    flat, unravel = ravel_pytree(pop)
    rng = np.random.default_rng(1)
    y = unravel(flat + 0.05 * rng.standard_normal(flat.size))
    y = eqx.tree_at(lambda p: p.field.gamma0, y, jnp.asarray(0.3))  # coupling active
    start = unravel(flat + 0.05 * rng.standard_normal(flat.size))
    frozen = trainable_mask(pop, gamma0=False)
    frozen = eqx.tree_at(lambda p: p.families.h, frozen, frozen.families.h.at[1].set(0.0))
    args = (batch, pen, frozen, start)
    r, jac = residual_jacobian(y, *args)
    dense = jax.jacfwd(lambda t: residual_vector(with_frozen(unravel(t), frozen, start), batch, pen))
    expected = dense(ravel_pytree(y)[0])
    assert jac.shape == expected.shape
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(np.asarray(jac), np.asarray(expected), rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(np.asarray(r), np.asarray(residual_vector(with_frozen(y, frozen, start),
                                                                         batch, pen)),
                               rtol=0, atol=1e-12)
    assert np.all(np.asarray(jac)[:, 105] == 0.0)  # γ0 frozen: its column is exactly zero


def test_family_jacobian_mode_follows_rows_against_parameters():
    """With jacobian="auto": reverse mode for a family block with fewer than 2/3 as many
    residual rows as parameters on a fixed-step solve (8 padded models × 5 benchmarks = 40
    rows against the field's 106 coefficients, γ0, log10 Nc and 5 sources = 113, as in the
    block test above); forward mode for 24 models (120 rows), for any adaptive solve, and
    always with jacobian="forward"."""
    from capedyn.dynamics.objective import _family_jacobian_mode

    wrt = (jnp.zeros(106), jnp.zeros(()), jnp.zeros(()), jnp.zeros(5))
    assert _family_jacobian_mode(40, wrt, 4, "auto") == "reverse"
    assert _family_jacobian_mode(75, wrt, 4, "auto") == "reverse"
    assert _family_jacobian_mode(76, wrt, 4, "auto") == "forward"
    assert _family_jacobian_mode(120, wrt, 4, "auto") == "forward"
    assert _family_jacobian_mode(40, wrt, None, "auto") == "forward"
    assert _family_jacobian_mode(40, wrt, 4, "forward") == "forward"


def test_lm_reaches_the_scipy_least_squares_objective(base_df, two_family_fits):
    """The default fit (optimistix LM) ends at the objective SciPy's trust-region least
    squares reaches on the same residuals (SciPy driven by its own 2-point Jacobian)."""
    import jax
    from scipy.optimize import least_squares
    from jax.flatten_util import ravel_pytree

    from capedyn.dynamics.objective import residual_vector

    est, trajs, batch, pop, pen = _small_problem(base_df)
    fit = two_family_fits[4]
    # the residuals the default fit minimises: each family solved on its fixed Tsit5 grid
    batch = dataclasses.replace(batch, lm_solve_steps=fit.lm_solve_steps)
    flat, unravel = ravel_pytree(pop)
    res = jax.jit(lambda t: residual_vector(unravel(t), batch, pen, adjoint="reverse"))
    n_real = len(trajs)
    # only real families' parameters are free (padding rows carry no data or penalty)
    free = np.ones(flat.size, bool)
    padded = ravel_pytree(eqx.tree_at(
        lambda p: (p.field.coef, p.field.gamma0, p.families.log10_nc, p.families.h, p.mu_nc),
        pop, (jnp.zeros_like(pop.field.coef), jnp.zeros(()),
              jnp.zeros_like(pop.families.log10_nc).at[n_real:].set(1.0),
              jnp.zeros_like(pop.families.h).at[n_real:].set(1.0), jnp.zeros(()))))[0]
    free &= np.asarray(padded) == 0
    x0 = np.asarray(flat)

    def fun(theta):
        full = x0.copy()
        full[free] = theta
        return np.asarray(res(jnp.asarray(full)))

    sp = least_squares(fun, x0[free], method="trf", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    scipy_obj = float(sp.fun @ sp.fun)
    assert fit.loss_ <= scipy_obj * (1 + 1e-6)
    assert fit.loss_ == pytest.approx(scipy_obj, rel=1e-5)
    assert fit.optimizer_ == "lm" and fit.n_iter_ < 200


@pytest.fixture(scope="module")
def two_family_fits(base_df):
    """Pythia and OLMo fitted three ways: the default (4 fixed Tsit5 steps per family inside
    LM), on the adaptive solve, and on a 1-step grid."""
    df = base_df[base_df["family"].isin(["Pythia", "OLMo"])]
    return {steps: CouplingODE(progress=False, lm_solve_steps=steps).fit(df)
            for steps in (4, None, 1)}


def _predictions(est, base_df):
    """Each fitted family's models from its smallest, and OPT's from its smallest through the
    transfer rule (percent, one row per model)."""
    out = []
    for fam in ("Pythia", "OLMo", "OPT"):
        rows = complete_models(base_df[base_df["family"] == fam]).sort_values("params_b")
        known = fam if fam in est.families_ else None
        out.append(est.predict(rows.iloc[0], rows["params_b"].to_numpy()[1:], family=known)
                   [list(BENCHMARKS)].to_numpy())
    return np.vstack(out)


def test_default_fit_agrees_with_the_fit_on_adaptive_solves(two_family_fits, base_df):
    """The default fit solves each family on 4 fixed Tsit5 steps; the same fit on the
    adaptive solve (a second method) gives the same model: predictions within 1e-3 points,
    the data MSE within 1e-4 points²."""
    fixed, adaptive = two_family_fits[4], two_family_fits[None]
    assert CouplingODE().lm_solve_steps == 4
    assert fixed.mse_ == pytest.approx(adaptive.mse_, abs=1e-4)
    np.testing.assert_allclose(_predictions(fixed, base_df), _predictions(adaptive, base_df),
                               atol=1e-3, rtol=0)


def test_a_fixed_grid_too_coarse_is_finished_on_the_adaptive_solve(two_family_fits, base_df):
    """One Tsit5 step per family is far from the adaptive solve (the premise, checked at the
    adaptive fit); a fit asked to use it must still end at the adaptive fit's model."""
    from capedyn.dynamics.objective import FIXED_STEP_TOLERANCE, _float64, fixed_step_gap
    from capedyn.dynamics.trajectory import trajectories

    adaptive = two_family_fits[None]
    trajs = trajectories(base_df[base_df["family"].isin(["Pythia", "OLMo"])])
    one_step = _float64(stack_trajectories(trajs, lm_solve_steps=1))
    gap, _ = fixed_step_gap(_float64(adaptive.population()), one_step)
    assert float(gap) > 2 * FIXED_STEP_TOLERANCE
    np.testing.assert_allclose(_predictions(two_family_fits[1], base_df),
                               _predictions(adaptive, base_df), atol=1e-3, rtol=0)


def test_the_grid_error_from_a_fits_residuals_equals_solving_both_grids(two_family_fits, base_df):
    """A fit estimates its grid's error from its own residuals (one solve, on the finer
    grid); solving both grids afresh gives the same error and the same data MSE."""
    from capedyn.dynamics.objective import _float64, fixed_step_gap, residual_vector
    from capedyn.dynamics.trajectory import trajectories

    est = two_family_fits[4]
    trajs = trajectories(base_df[base_df["family"].isin(["Pythia", "OLMo"])])
    batch = _float64(stack_trajectories(trajs, lm_solve_steps=est.lm_solve_steps))
    pop = _float64(est.population())
    residuals = eqx.filter_jit(residual_vector)(pop, batch, _float64(est._penalties()))
    from_residuals = [float(v) for v in fixed_step_gap(pop, batch, residuals)]
    solved = [float(v) for v in fixed_step_gap(pop, batch)]
    assert 0 < solved[0] < 1e-4
    assert from_residuals[0] == pytest.approx(solved[0], rel=1e-6)
    assert from_residuals[1] == solved[1] == pytest.approx(est.mse_, rel=1e-12)


def test_adam_stays_available(base_df):
    est = CouplingODE(optimizer="adam", steps=5, progress=False).fit(
        base_df[base_df["family"] == "Pythia"])
    assert est.optimizer_ == "adam" and est.n_iter_ == 5 and np.isfinite(est.loss_)


# ----------------------------------------------------------------- scikit-learn form

def test_get_params_set_params_clone_and_one_source_of_settings(tmp_path, base_df):
    from sklearn.base import clone

    est = CouplingODE(l2=7.0, steps=3, progress=False)
    params = est.get_params()
    assert params["l2"] == 7.0 and params["steps"] == 3 and params["optimizer"] == "lm"
    copy = clone(est)
    assert copy.get_params() == params and copy is not est
    est.set_params(l2_h=2.0)
    assert est.l2_h == 2.0 and est.get_params()["l2_h"] == 2.0
    assert "l2=7.0" in repr(est) and "steps=3" in repr(est)
    est.l2 = 5.0  # plain attribute assignment is the setting fit and save use
    assert float(est._penalties().l2) == 5.0
    est.fit(base_df[base_df["family"] == "Pythia"])
    assert not any(k.endswith("_") for k in clone(est).__dict__)  # no fitted state copied
    meta = json.loads((est.save(tmp_path / "f") / "meta.json").read_text())
    assert meta["config"]["l2"] == 5.0 and meta["config"]["l2_h"] == 2.0
    assert cd.load_fit(tmp_path / "f").l2 == 5.0


def test_family_params_repr_shows_values():
    text = repr(FamilyParams.make(9.544068, [0.1, -0.2, 0.0, 0.0, 0.3]))
    assert "log10_nc=9.5441" in text and "Nc=3.5B" in text and "-0.2" in text


# ----------------------------------------------------------------- rejections

@pytest.mark.parametrize("kw, needle", [
    (dict(steps=0), "steps"), (dict(steps=-5), "steps"), (dict(steps=2.5), "steps"),
    (dict(l2=-1.0), "l2"), (dict(tol=0.0), "tol"), (dict(optimizer="bfgs"), "optimizer"),
    (dict(degree=3), "degree"), (dict(coupling="weird"), "coupling"),
    (dict(nc_prior_sd=float("nan")), "nc_prior_sd"),
])
def test_bad_settings_are_rejected_naming_the_argument(base_df, kw, needle):
    from capedyn.models.coupling_ode import ConfigError

    with pytest.raises(ConfigError, match=rf"CouplingODE\({needle}=") as info:
        CouplingODE(progress=False, **kw).fit(base_df[base_df["family"] == "Pythia"])
    assert isinstance(info.value, ValueError) and isinstance(info.value, cd.CapedynError)
    assert "ODE" not in str(info.value).replace("CouplingODE", "")


@pytest.mark.parametrize("column, value, needle", [
    ("params_b", -1.0, "params_b"), ("params_b", 0.0, "params_b"),
    ("params_b", float("inf"), "params_b"), ("hellaswag", 150.0, "hellaswag"),
    ("mmlu", -3.0, "mmlu"),
])
def test_bad_table_values_are_rejected_naming_row_and_column(base_df, column, value, needle):
    table = base_df[base_df["family"] == "Pythia"].reset_index(drop=True).copy()
    table.loc[2, column] = value
    with pytest.raises(cd.DataError, match=needle) as info:
        CouplingODE(steps=3, progress=False).fit(table)
    assert "row" in str(info.value) and "math domain" not in str(info.value)
