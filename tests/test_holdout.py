"""The held-out family benchmark: no leakage, skipping rules, metrics, failures, CLI shape.
Expected numbers are computed here by hand or with numpy directly from the CSV."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

import capedyn as cd
import capedyn.evaluation.heldout as H
from capedyn.cli import entry as cli
from capedyn._errors import SolveError
from capedyn.data.tables import BENCHMARKS, DataError
from capedyn.evaluation.selection import NestedSelection, clear_cache, inner_splits
from capedyn.models.sindy import SparseCouplingODE

B = list(BENCHMARKS)
EXPENSIVE = ("coupling_ode", "sindy_ode", "sindy_ode_1se", "shared_ode", "ensemble")


def _cheap_coupling():
    from capedyn.models.coupling_ode import CouplingODE

    return CouplingODE(steps=30, warmup=5, progress=False)


def _cheap_sindy():
    from capedyn.models.sindy import SparseCouplingODE

    return SparseCouplingODE(thresholds=(0.0, 0.1), alphas=(1.0,))


def _cheap_shared():
    from capedyn.models.shared_ode import SharedLogitODE

    return SharedLogitODE(steps=20, warmup=5)


def _nested(factory, grid, **kw):
    from capedyn.evaluation.selection import NestedSelection

    return lambda: NestedSelection(factory(), grid, **kw)


def _every_method_cheap() -> dict:
    """Every registered method, the gradient-fitted ones with short budgets; the nested
    selection wrappers are the registry's own for the peers."""
    methods = {m: H.METHODS[m] for m in H.METHODS if m not in EXPENSIVE}
    return {"coupling_ode": _nested(_cheap_coupling, {"l2": [300.0, 30.0]}),
            "sindy_ode": _cheap_sindy,
            "sindy_ode_1se": lambda: SparseCouplingODE(thresholds=(0.0, 0.1), alphas=(1.0,),
                                                       selection="1se"),
            "shared_ode": _nested(_cheap_shared, {"floor_slack": [10.0, 5.0]}),
            "ensemble": _cheap_ensemble,
            **methods}


def _cheap_ensemble():
    from capedyn.evaluation.ensemble import EnsembleMethod

    return EnsembleMethod(members={"coupling_ode": _cheap_coupling, "linear_ode": H.LinearODE,
                                   "poly2_anchored": H.FIXED_METHODS["poly2_anchored"],
                                   "pca_capability": H.FIXED_METHODS["pca_capability"]})


def test_metrics_by_hand():
    pred = [[1.0, 2.0], [3.0, 4.0]]
    actual = [[2.0, 2.0], [1.0, 8.0]]
    # |err| = 1, 0, 2, 4 → mean 1.75; mean(actual) = 13/4
    assert H.mae_points(pred, actual) == pytest.approx(1.75)
    assert H.relative_mae_pct(pred, actual) == pytest.approx(100 * 1.75 / 3.25)


def test_split_holds_out_everything_but_the_initial_model(base_df):
    split = H.make_split(base_df, "OPT")
    assert "OPT" not in set(split.train["family"])
    assert split.initial["model"] == "OPT-125M"
    assert list(split.targets["model"]) == ["OPT-350M", "OPT-1.3B", "OPT-2.7B", "OPT-6.7B",
                                            "OPT-13B", "OPT-30B", "OPT-66B"]
    assert len(split.train) == len(base_df) - 8
    p1 = H.make_split(base_df, "Llama-2", train=["Pythia"])
    assert set(p1.train["family"]) == {"Pythia"} and p1.initial["model"] == "Llama2-7B"


def test_split_rejects_bad_names(base_df):
    with pytest.raises(DataError, match="Known families"):
        H.make_split(base_df, "NoSuchFamily")
    with pytest.raises(ValueError, match="cannot also be a training family"):
        H.make_split(base_df, "OPT", train=["OPT", "Pythia"])
    with pytest.raises(ValueError, match="complete model"):
        H.make_split(base_df, "Mistral")


@pytest.mark.slow
def test_no_leak_poisoned_family_gives_identical_predictions(base_df):
    """Replacing the held-out family's later models by absurd (still valid) scores must
    not change any method's predictions nor any selected hyper-parameter: they can only
    have seen the initial model."""
    poisoned = base_df.copy()
    later = (poisoned["family"] == "Llama-2") & (poisoned["model"] != "Llama2-7B")
    assert later.sum() == 2
    poisoned.loc[later, B] = 99.0
    methods = _every_method_cheap()
    assert set(methods) == set(H.METHODS)          # every registered method is covered
    # two training families: every inner fold then trains on one family, so each
    # gradient-fitted method compiles one padded shape only
    kw = dict(train=["Pythia", "OPT"], methods=methods, curves=False)
    clean = H.holdout(base_df, "Llama-2", **kw)
    clear_cache()  # the dirty run must not be able to reuse a memoised inner fit
    dirty = H.holdout(poisoned, "Llama-2", **kw)
    assert list(clean.table["status"]) == ["ok"] * len(methods), clean.table["message"].tolist()
    assert set(clean.predictions["method"]) == set(methods)
    np.testing.assert_array_equal(clean.predictions["pred"].to_numpy(), dirty.predictions["pred"].to_numpy())
    # selections: the nested wrappers and SINDy's own CV chose the same settings, same CV errors
    sel = ["family", "method", "cv_kind", "best_params", "cv_error"]
    assert {"coupling_ode", "shared_ode", "logit_rate", "latent_skill", "pca_capability",
            "poly_anchored", "sindy_ode", "sindy_ode_1se"} <= set(clean.selections["method"])
    assert clean.selections[sel].to_dict("records") == dirty.selections[sel].to_dict("records")
    # the poison did reach the scoring side: the actuals and the errors differ
    assert not np.allclose(clean.predictions["actual"], dirty.predictions["actual"])
    assert not np.allclose(clean.table["rel_mae_pct"], dirty.table["rel_mae_pct"])


class _Spy:
    """Records every table it is fitted on; predicts the initial scores (persistence)."""

    seen: list = []

    def __init__(self, knob: float = 0.0):
        self.knob = knob

    def get_params(self, deep=True):
        return {"knob": self.knob}

    def set_params(self, **p):
        self.knob = p.get("knob", self.knob)
        return self

    def fit(self, df):
        _Spy.seen.append(df.copy())
        return self

    def predict(self, initial, sizes):
        from capedyn.models.baselines import prediction_frame

        return prediction_frame(sizes, np.tile(initial[B].to_numpy(float) + self.knob, (len(sizes), 1)))


def test_nested_selection_never_sees_the_held_out_family(base_df):
    """Every inner fit of the nested selection gets a table without the outer held-out
    family, and the inner folds hold out each qualifying training family in turn."""
    _Spy.seen = []
    clear_cache()
    res = H.crossval(base_df, families=["OPT", "Falcon"], progress=False,
                     methods={"spy": lambda: NestedSelection(_Spy(), {"knob": [0.0, 1.0]})})
    assert list(res.table["status"]) == ["ok", "ok"]
    counts = base_df.dropna(subset=B).groupby("family").size()
    for outer in ("OPT", "Falcon"):
        row = res.selections.set_index("family").loc[outer]
        assert row["cv_kind"] == "lofo"
        expected = sorted(f for f, n in counts.items() if n >= 3 and f != outer)
        assert sorted(row["inner_families"]) == expected
    seen_families = [set(df["family"]) for df in _Spy.seen]
    # each fit excludes OPT or Falcon (the outer family), inner fits also an inner family
    assert all(("OPT" not in s) or ("Falcon" not in s) for s in seen_families)
    assert len(_Spy.seen) > 2 * 2 * 8


def test_inner_splits_forward_when_one_family():
    """With Pythia alone (the paper's split) selection validates forward inside Pythia: its
    smaller half trains, its larger half is predicted from its smallest model. The
    authors' table has 8 Pythia sizes: 4 train, 4 are predicted."""
    paper = cd.load_base_models(variant="paper")
    kind, splits = inner_splits(paper[paper["family"] == "Pythia"])
    assert kind == "forward" and len(splits) == 1
    sp = splits[0]
    assert list(sp.train["model"]) == ["Pythia-70M", "Pythia-160M", "Pythia-410M", "Pythia-1B"]
    assert sp.initial["model"] == "Pythia-70M"
    assert list(sp.targets["model"]) == ["Pythia-1.4B", "Pythia-2.8B", "Pythia-6.9B", "Pythia-12B"]


def test_inner_splits_forward_on_the_measured_standard_run(base_df):
    """The standard run has 7 sizes (no 1B): the smaller half rounds up to 4."""
    kind, splits = inner_splits(base_df[base_df["family"] == "Pythia"])
    assert kind == "forward" and len(splits) == 1
    sp = splits[0]
    assert list(sp.train["model"]) == ["Pythia-70M", "Pythia-160M", "Pythia-410M", "Pythia-1.4B"]
    assert sp.initial["model"] == "Pythia-70M"
    assert list(sp.targets["model"]) == ["Pythia-2.8B", "Pythia-6.9B", "Pythia-12B"]


def test_nested_selection_picks_the_best_grid_point_by_hand(base_df):
    """With a persistence spy offset by ``knob`` points, the inner error of each knob is
    computable by hand; the selection must pick the smaller one."""
    train = base_df[base_df["family"].isin(["Pythia", "OPT", "BLOOM"])]
    est = NestedSelection(_Spy(), {"knob": [3.0, 0.5]}).fit(train)
    by_hand = {}
    for knob in (3.0, 0.5):
        errs = []
        for fam in ("BLOOM", "OPT", "Pythia"):
            rows = train[train["family"] == fam].sort_values("params_b")
            actual = rows[B].to_numpy(float)[1:]
            pred = np.tile(rows[B].to_numpy(float)[0] + knob, (len(actual), 1))
            errs.append(100 * np.abs(pred - actual).mean() / actual.mean())
        by_hand[knob] = np.mean(errs)
    assert est.best_params_ == {"knob": min(by_hand, key=by_hand.get)}
    cv = est.cv_results_.set_index("knob")["cv_error"]
    for knob, v in by_hand.items():
        assert cv[knob] == pytest.approx(v, rel=1e-12)


def test_default_training_set_is_every_other_family(base_df):
    res = H.holdout(base_df, "Falcon", methods=["poly1"], curves=False)
    trained = set(res.splits["train_families"].iloc[0])
    assert trained == set(base_df["family"]) - {"Falcon"}


def test_poly2_p1_score_matches_direct_computation(base_df):
    pythia = base_df[base_df["family"] == "Pythia"]
    llama = base_df[base_df["family"] == "Llama-2"].sort_values("params_b")
    x_train = np.log10(pythia["params_b"].to_numpy() * 1e9)
    x_pred = np.log10(llama["params_b"].to_numpy()[1:] * 1e9)
    pred = np.column_stack([np.polyval(np.polyfit(x_train, pythia[b], 2), x_pred) for b in B])
    actual = llama[B].to_numpy()[1:]
    expected_rel = 100 * np.abs(pred - actual).mean() / actual.mean()
    res = H.p1(base_df, methods=["poly2"], curves=False)
    row = res.table.iloc[0]
    assert row["n_points"] == 10
    assert row["rel_mae_pct"] == pytest.approx(expected_rel, rel=1e-9)
    assert row["mae_pp"] == pytest.approx(np.abs(pred - actual).mean(), rel=1e-9)


def test_crossval_skips_small_families_with_reason(base_df):
    res = H.crossval(base_df, families=["Llama-2", "OLMo", "Gemma-3"], methods=["poly1"], progress=False)
    assert list(res.table["family"]) == ["Llama-2"]
    skipped = res.skipped.set_index("family")
    assert skipped.loc["OLMo", "n_complete"] == 2 and "min_models=3" in skipped.loc["OLMo", "reason"]
    assert skipped.loc["Gemma-3", "n_complete"] == 0


def test_failing_method_is_recorded_not_raised(base_df):
    class Broken:
        def fit(self, df):
            return self

        def predict(self, initial, sizes):
            raise SolveError("ODE solve failed for family 'Llama-2': test")

    res = H.crossval(base_df, families=["Llama-2", "Falcon"],
                     methods={"broken": Broken, "poly1": H.METHODS["poly1"]}, progress=False)
    broken = res.table[res.table["method"] == "broken"]
    assert list(broken["status"]) == ["failed", "failed"]
    assert broken["message"].str.contains("SolveError").all()
    assert (res.table[res.table["method"] == "poly1"]["status"] == "ok").all()
    summary = res.summary.set_index("method")
    assert summary.loc["broken", "n_failed"] == 2 and np.isnan(summary.loc["broken", "mean_rel_mae_pct"])


def test_summary_mean_and_median_by_hand(base_df):
    res = H.crossval(base_df, families=["Llama-2", "Falcon", "OPT"], methods=["poly1"], progress=False)
    vals = res.table["rel_mae_pct"].to_numpy()
    s = res.summary.iloc[0]
    assert s["mean_rel_mae_pct"] == pytest.approx(vals.sum() / 3)
    assert s["median_rel_mae_pct"] == pytest.approx(sorted(vals)[1])


def test_unknown_method_lists_valid_ones(base_df):
    with pytest.raises(ValueError, match="valid methods: coupling_ode, sindy_ode, linear_ode"):
        H.holdout(base_df, "Llama-2", methods=["poly9"])


def test_figures_are_png(base_df, tmp_path):
    res = H.p1(base_df, methods=["poly2", "poly2_anchored", "linear_ode"])
    from capedyn.plotting import plot_holdout_trajectories, plot_method_errors, save_figure

    fig = plot_holdout_trajectories(res, "Llama-2")
    assert len(fig.axes) == 5  # one panel per benchmark
    ax = plot_method_errors(res.summary)
    assert len(ax.patches) == 2 * len(res.summary)  # mean and median bar per method
    p = save_figure(fig, tmp_path / "traj.png")
    q = save_figure(ax.figure, tmp_path / "bars.png")
    for path in (p, q):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bars.png", "traj.png"]  # no temp files left


def _run_cli(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_holdout_json_shape(capsys, tmp_path):
    png = tmp_path / "p1.png"
    code, out, _ = _run_cli(capsys, ["holdout", "--family", "Llama-2", "--train", "Pythia",
                                     "--methods", "poly1,poly2_anchored", "--plot", str(png), "--json"])
    assert code == 0
    result = json.loads(out)
    assert [r["method"] for r in result["rows"]] == ["poly1", "poly2_anchored"]
    assert {"family", "method", "n_points", "mae_pp", "rel_mae_pct"} <= set(result["rows"][0])
    assert [set(s) >= {"method", "mean_rel_mae_pct", "median_rel_mae_pct"} for s in result["summary"]] == [True, True]
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_crossval_custom_csv(capsys, base_df, write_csv):
    small = base_df[base_df["family"].isin(["Pythia", "OPT", "OLMo", "Llama-2"])]
    path = write_csv(small.drop(columns=["source", "flags"]))
    code, out, _ = _run_cli(capsys, ["crossval", "--data", str(path), "--methods", "poly1", "--json"])
    assert code == 0
    result = json.loads(out)
    assert sorted(r["family"] for r in result["rows"]) == ["Llama-2", "OPT", "Pythia"]
    assert [s["family"] for s in result["skipped"]] == ["OLMo"]
    code, out, _ = _run_cli(capsys, ["crossval", "--data", str(path), "--methods", "poly1"])
    assert code == 0 and "mean_rel_mae_pct" in out and "OLMo" in out


def test_cli_bad_names_are_clear_errors(capsys):
    code, _, err = _run_cli(capsys, ["holdout", "--family", "Llama-2", "--methods", "poly7"])
    assert code == 2 and "valid methods" in err and "poly4_anchored" in err
    code, _, err = _run_cli(capsys, ["crossval", "--families", "Nope", "--methods", "poly1"])
    assert code == 2 and "Nope" in err and "Traceback" not in err
