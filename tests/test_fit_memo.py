"""The memo of fits behind nested selection: it may only ever hand back a fit of exactly the
same method, settings and training table (row order included), and the held-out numbers
are bitwise the same with and without it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import capedyn.evaluation.heldout as H
from capedyn._fitmemo import FitMemo, array_digest, memo_disabled
from capedyn.data.tables import BENCHMARKS, complete_models
from capedyn.evaluation import selection as S
from capedyn.evaluation.selection import NestedSelection, clear_cache

B = list(BENCHMARKS)


from test_holdout import _Spy as _Counter  # noqa: E402 (records every table it is fitted on)


def test_different_tables_never_share_an_entry(base_df):
    """One changed score, the same rows in another order, a changed non-score column or
    other settings: each is a fresh fit; only the identical table and settings hit."""
    clear_cache()
    _Counter.seen = []
    est = _Counter()
    table = base_df[base_df["family"].isin(["Pythia", "OPT", "BLOOM"])].reset_index(drop=True)
    first, fresh = S._fitted(est, {"knob": 0.0}, table)
    assert fresh
    again, fresh = S._fitted(est, {"knob": 0.0}, table.copy())
    assert not fresh and again is first
    edited = table.copy()
    edited.loc[3, "mmlu"] += 1e-9
    reordered = table.iloc[::-1].reset_index(drop=True)
    relabelled = table.copy()
    relabelled.loc[0, "source"] = "elsewhere"
    for other, params in [(edited, {"knob": 0.0}), (reordered, {"knob": 0.0}),
                          (relabelled, {"knob": 0.0}), (table, {"knob": 1.0})]:
        fit, fresh = S._fitted(est, params, other)
        assert fresh and fit is not first
    assert len(_Counter.seen) == 5
    with memo_disabled():
        _, fresh = S._fitted(est, {"knob": 0.0}, table)
    assert fresh and len(_Counter.seen) == 6


def test_lofo_sweep_fits_each_training_set_once(base_df):
    """Nested leave-one-family-out inside leave-one-family-out: the fits run are exactly
    the distinct (setting, training families) pairs, counted here from the family list:
    every unordered pair {F, G} of eligible families once per grid point, plus each outer
    family's refit on all other families."""
    clear_cache()
    _Counter.seen = []
    fams = ["Pythia", "OPT", "BLOOM", "Falcon"]
    df = base_df[base_df["family"].isin(fams + ["Llama-3", "Mistral"])]
    grid = [0.0, 1.0]
    res = H.crossval(df, families=fams, progress=False,
                     methods={"spy": lambda: NestedSelection(_Counter(), {"knob": grid})})
    assert list(res.table["status"]) == ["ok"] * len(fams)
    n_pairs = len(list(itertools.combinations(fams, 2)))
    assert len(_Counter.seen) == len(grid) * n_pairs + len(fams)
    trained_on = [frozenset(t["family"]) for t in _Counter.seen]
    assert len(set(trained_on)) == n_pairs + len(fams)  # never the same families twice per knob


@pytest.mark.slow
def test_heldout_numbers_identical_with_and_without_memo(base_df):
    """A small P2 with nested selection of two gradient-fitted methods and a peer: every
    prediction, error and selection is bitwise the same when every fit runs afresh."""
    from capedyn.models.shared_ode import SharedLogitODE

    fams = ["Pythia", "OPT", "BLOOM"]
    df = base_df[base_df["family"].isin(fams + ["Cerebras-GPT"])]
    shared = lambda: NestedSelection(
        SharedLogitODE(progress=False, optimizer="lm", state_term=False, scale_term=False,
                       steps=40),
        {"new_family_source": ["transfer", "mean"], "censor_margin": [3.0, None]})
    methods = {"shared_ode": shared, "logit_rate": H.METHODS["logit_rate"],
               "poly_anchored": H.METHODS["poly_anchored"]}
    clear_cache()
    with memo_disabled():
        fresh = H.crossval(df, families=fams, methods=methods, progress=False)
    memo = H.crossval(df, families=fams, methods=methods, progress=False)
    assert list(fresh.table["status"]) == ["ok"] * len(fresh.table)
    np.testing.assert_array_equal(fresh.predictions["pred"].to_numpy(),
                                  memo.predictions["pred"].to_numpy())
    np.testing.assert_array_equal(fresh.table["rel_mae_pct"].to_numpy(),
                                  memo.table["rel_mae_pct"].to_numpy())
    cols = ["family", "method", "cv_kind", "inner_families", "best_params", "cv_error"]
    assert fresh.selections[cols].to_dict("records") == memo.selections[cols].to_dict("records")
    # the memo did work: shared fits were run once, fresh ones each time
    n_fresh = fresh.selections.set_index("method").loc["shared_ode", "n_inner_fits"].sum()
    n_memo = memo.selections.set_index("method").loc["shared_ode", "n_inner_fits"].sum()
    assert n_memo < n_fresh


def test_shared_ode_source_settings_share_one_optimisation(base_df):
    """``new_family_source`` is applied after the optimisation: two fits differing only
    there run the optimiser once, and the memoised field is bitwise a fresh fit's."""
    from capedyn.models import shared_ode as so

    train = base_df[base_df["family"].isin(["Pythia", "OPT", "BLOOM"])]
    kw = dict(progress=False, optimizer="lm", state_term=False, scale_term=False, steps=30)
    clear_cache()
    misses = so._LM_FITS.misses
    a = so.SharedLogitODE(new_family_source="transfer", **kw).fit(train)
    b = so.SharedLogitODE(new_family_source="mean", **kw).fit(train)
    assert so._LM_FITS.misses == misses + 1 and so._LM_FITS.hits >= 1
    with memo_disabled():
        c = so.SharedLogitODE(new_family_source="mean", **kw).fit(train)
    for x, y in [(a.field_.g, c.field_.g), (b.field_.W, c.field_.W), (b.field_.c, c.field_.c)]:
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert a.transfer_ is not None and b.transfer_ is None   # the settings still apply
    # a changed training score is a different optimisation
    edited = train.copy()
    edited.loc[edited.index[0], "hellaswag"] += 0.5
    hits = so._LM_FITS.hits
    so.SharedLogitODE(new_family_source="mean", **kw).fit(edited)
    assert so._LM_FITS.hits == hits


def test_array_digest_sees_dtype_shape_and_bytes():
    a = np.arange(6.0)
    assert array_digest(a) == array_digest(a.copy())
    assert array_digest(a) != array_digest(a.reshape(2, 3))
    assert array_digest(a) != array_digest(a.astype(np.float32))
    assert array_digest(a) != array_digest(a, extra=1)
    memo = FitMemo(2)
    calls = []
    for k in ["x", "y", "x", "z", "y"]:
        memo.get_or_fit(k, lambda k=k: calls.append(k) or k)
    assert calls == ["x", "y", "z", "y"]       # "y" was evicted (least recently used) by "z"


def test_sindy_rules_share_one_cross_validation(base_df):
    """SINDy's two selection rules run one cross-validation between them, and every fitted
    number equals a fit with no memo at all."""
    from capedyn.models import sindy

    train = base_df[~base_df["family"].isin(["Llama-2"])]
    kw = dict(thresholds=(0.0, 0.1, 0.3), alphas=(0.1, 10.0))
    clear_cache()
    a = sindy.SparseCouplingODE(**kw).fit(train)
    misses = sindy._SINDY_FITS.misses
    b = sindy.SparseCouplingODE(selection="1se", **kw).fit(train)
    assert sindy._SINDY_FITS.misses == misses          # the 1se fit ran nothing afresh
    with memo_disabled():
        a0 = sindy.SparseCouplingODE(**kw).fit(train)
        b0 = sindy.SparseCouplingODE(selection="1se", **kw).fit(train)
    for fit, fresh in [(a, a0), (b, b0)]:
        np.testing.assert_array_equal(fit.coef_, fresh.coef_)
        assert (fit.threshold_, fit.alpha_) == (fresh.threshold_, fresh.alpha_)
        np.testing.assert_array_equal(fit.cv_results_["cv_error"], fresh.cv_results_["cv_error"])
    # the memo hands out copies: editing one fit's arrays cannot reach another's
    a.coef_[:] = 0.0
    c = sindy.SparseCouplingODE(**kw).fit(train)
    np.testing.assert_array_equal(c.coef_, a0.coef_)


def test_peer_blas_limit_still_limits_and_restores():
    """The sweep's and the peers' solves run on one BLAS thread (the controller is found once, not per
    call): inside the block every BLAS library reports one thread, after it the old count."""
    from threadpoolctl import threadpool_info

    from capedyn._workers import one_blas_thread

    before = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    with one_blas_thread():
        inside = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    assert inside and set(inside.values()) == {1}
    assert after == before
