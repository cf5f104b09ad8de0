"""Batched fits (``CouplingODE.fit_batch``) against one fit at a time, and the nested
selection that uses them.

Every batch here has the same shape (two family slots, eight size points, eight problems),
so the file compiles the batched step once and the one-at-a-time step once. Few LM steps
keep it cheap; the comparison holds step by step, so a short run tests the same thing.

Tolerance: a batched fit runs the same operations as its own fit, but batched matrix
products and Cholesky factorisations may round differently in the last bits (~1e-16
relative per operation). Over a few LM steps that stays far below 1e-9 (relative objective)
and 1e-7 points (predictions), while any real difference — a step the batch took or
skipped, a wrong mask, a leaked family — moves the objective by more than 1e-4 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

import capedyn as cd
from capedyn.data.tables import BENCHMARKS
from capedyn.evaluation import selection as sel

pytestmark = pytest.mark.xdist_group("fit_ode")

STEPS = 6


def _est(**kw):
    return cd.CouplingODE(progress=False, steps=STEPS, seed=0, **kw)


@pytest.fixture(scope="module")
def two(base_df):
    return base_df[base_df["family"].isin(["Pythia", "OPT"])].reset_index(drop=True)


def _families(df, *names):
    return df[df["family"].isin(names)].reset_index(drop=True)


def _predict(est, df, family):
    rows = df[df["family"] == family].sort_values("params_b")
    return est.predict(rows.iloc[0], rows["params_b"].to_numpy(float)[1:])[
        list(BENCHMARKS)].to_numpy(float)


def _compile_events():
    """Programs built (JAX's backend-compile events) in this process so far."""
    import jax.monitoring as monitoring

    if not hasattr(_compile_events, "n"):
        _compile_events.n = 0

        def count(name, secs, **_):
            if name == "/jax/core/compile/backend_compile_duration":
                _compile_events.n += 1
        monitoring.register_event_duration_secs_listener(count)
    return _compile_events.n


def test_batch_fit_equals_each_own_fit(two):
    tables = [_families(two, "Pythia"), _families(two, "OPT"), two] * 2
    params = [{"l2": 300.0}] * 3 + [{"l2": 30.0}] * 3
    batch = _est().fit_batch(tables, params)
    for t, p, b in zip(tables, params, batch):
        own = _est(**p).fit(t)
        assert b.n_iter_ == own.n_iter_
        assert b.loss_ == pytest.approx(own.loss_, rel=1e-9)
        assert np.allclose(np.asarray(b.field_.coef), np.asarray(own.field_.coef),
                           rtol=0, atol=1e-9)
        assert list(b.families_) == list(own.families_)
        for name in own.families_:
            assert float(b.families_[name].log10_nc) == pytest.approx(
                float(own.families_[name].log10_nc), abs=1e-9)
        # predicting a family from its smallest model, as the held-out benchmark does
        for fam in ("Pythia", "OPT"):
            assert np.max(np.abs(_predict(b, two, fam) - _predict(own, two, fam))) < 1e-7
    # the two penalties really gave different fits (l2 is a batched argument)
    assert abs(batch[0].loss_ - batch[3].loss_) > 1e-4 * batch[0].loss_


def test_an_absent_family_has_no_influence(two):
    """OPT is in the batch's common arrays (the second fit uses it) but absent from the
    first fit: changing OPT's scores changes the second fit, never the first."""
    pythia = _families(two, "Pythia")
    changed = two.copy()
    opt = changed["family"] == "OPT"
    changed.loc[opt, list(BENCHMARKS)] = changed.loc[opt, list(BENCHMARKS)] * 0.9 + 5.0
    a0, a1 = _est().fit_batch([pythia, two])
    b0, b1 = _est().fit_batch([pythia, changed])
    assert a0.loss_ == pytest.approx(b0.loss_, rel=1e-12)
    assert np.allclose(np.asarray(a0.field_.coef), np.asarray(b0.field_.coef), rtol=0,
                       atol=1e-12)
    assert abs(a1.loss_ - b1.loss_) > 1e-3 * a1.loss_


def test_one_compilation_serves_two_folds(two, base_df):
    """Two different sets of folds of the same bucket (two family slots, up to eight
    models, up to eight fits): the second call builds no program at all."""
    # the first set has as many fits as the second, so that even the small eager programs
    # that stack the fits' inputs exist before the count starts (the test must pass alone)
    _est().fit_batch([_families(two, "Pythia"), _families(two, "OPT"), two], [{"l2": 10.0}] * 3)
    before = _compile_events()
    other = _families(base_df, "BLOOM", "Cerebras-GPT")
    fits = _est().fit_batch([_families(other, "BLOOM"), _families(other, "Cerebras-GPT"), other],
                            [{"l2": 100.0}, {"l2": 1000.0}, {"l2": 300.0}])
    assert _compile_events() == before
    assert all(isinstance(f, cd.CouplingODE) for f in fits)


def test_nested_selection_picks_the_same_point_batched(two):
    grid, inner = {"l2": [300.0, 3.0]}, {"steps": STEPS}
    runs = {}
    for batch in (False, True):
        sel.clear_cache()
        runs[batch] = sel.NestedSelection(_est(), grid, inner_params=inner,
                                          batch=batch).fit(two)
    loop, batched = runs[False], runs[True]
    assert batched.cv_kind_ == loop.cv_kind_ == "lofo"
    assert batched.best_params_ == loop.best_params_
    assert batched.n_inner_fits_ == loop.n_inner_fits_ == 4
    assert np.allclose(batched.cv_results_["cv_error"], loop.cv_results_["cv_error"],
                       rtol=0, atol=1e-7)
    # the grid points differ, so picking the same one is not a tie broken the same way
    errs = loop.cv_results_["cv_error"].to_numpy()
    assert abs(errs[0] - errs[1]) > 1e-4


def test_fit_batch_reports_a_bad_element_and_fits_the_rest(two):
    bad = two.drop(columns=["mmlu"]).assign(mmlu=np.nan)  # no complete model at all
    out = _est().fit_batch([bad, _families(two, "Pythia")])
    assert isinstance(out[0], cd.CapedynError)
    assert isinstance(out[1], cd.CouplingODE)
