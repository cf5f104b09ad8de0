"""The threads of a held-out sweep: pieces run at the same time, results come back in
order, a fit asked for twice at once runs once, and the held-out numbers are the same on
one thread and on two."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import capedyn.evaluation.heldout as H
from capedyn._errors import InputError
from capedyn._fitmemo import FitMemo
from capedyn._jax import x64
from capedyn._workers import ENV_WORKERS, default_workers, ordered_map


def test_two_workers_run_two_pieces_at_once_and_keep_their_order():
    """A barrier of two parties only opens when both pieces are running at the same time;
    the first piece is made the slower, yet comes back first."""
    barrier = threading.Barrier(2, timeout=20)

    def piece(i):
        barrier.wait()
        time.sleep(0.3 if i == 0 else 0.0)
        return i, threading.current_thread().name

    out = list(ordered_map(piece, [0, 1], workers=2))
    assert [i for i, _ in out] == [0, 1]
    assert len({name for _, name in out}) == 2


def test_one_worker_runs_in_the_calling_thread():
    names = list(ordered_map(lambda _: threading.current_thread().name, range(3), workers=1))
    assert names == [threading.current_thread().name] * 3


def test_thread_context_reaches_the_worker_threads():
    """JAX keeps float64 per thread: without the context a worker computes in float32."""
    import jax.numpy as jnp

    def dtype(_):
        return str(jnp.asarray(1.0).dtype)

    with x64():
        assert set(ordered_map(dtype, range(4), workers=2, thread_context=x64)) == {"float64"}
        assert set(ordered_map(dtype, range(4), workers=2)) == {"float32"}


def test_a_fit_asked_for_by_two_threads_at_once_runs_once():
    memo = FitMemo(10)
    calls = []
    started = threading.Event()

    def fit():
        calls.append(1)
        started.set()
        time.sleep(0.3)  # the second thread asks while this fit runs
        return object()

    def ask(i):
        if i == 1:
            started.wait(10)
        return memo.get_or_fit("key", fit)

    (a, fresh_a), (b, fresh_b) = ordered_map(ask, [0, 1], workers=2)
    assert len(calls) == 1 and a is b and (fresh_a, fresh_b) == (True, False)


def test_bad_worker_counts_are_refused(monkeypatch):
    with pytest.raises(InputError, match="workers"):
        list(ordered_map(str, [1], workers=0))
    monkeypatch.setenv(ENV_WORKERS, "two")
    with pytest.raises(InputError, match=ENV_WORKERS):
        default_workers()
    monkeypatch.setenv(ENV_WORKERS, "3")
    assert default_workers() == 3


def test_crossval_numbers_do_not_depend_on_the_number_of_threads(base_df):
    """Every held-out number, prediction and selection of a small sweep (nested selection
    included) is bitwise the same on one thread and on two."""
    from capedyn.evaluation.selection import clear_cache

    df = base_df[base_df["family"].isin(["Pythia", "OPT", "BLOOM", "GPT-Neo"])]
    methods = ["poly2", "poly_anchored", "logit_rate", "sindy_ode"]
    runs = []
    for workers in (1, 2):
        clear_cache()
        runs.append(H.crossval(df, methods=methods, progress=False, workers=workers))
    one, two = runs
    cols = [c for c in one.table.columns if c != "seconds"]
    assert one.table[cols].equals(two.table[cols])
    assert one.predictions.equals(two.predictions)
    sel = [c for c in one.selections.columns if c != "seconds"]
    assert one.selections[sel].astype(str).equals(two.selections[sel].astype(str))
    assert np.isfinite(one.table["rel_mae_pct"]).all()


def test_coupling_ode_sweep_ignores_threads_and_the_callers_blas_setting(base_df):
    """The coupling ODE's transfer rule solves a 6 x 6 system with LAPACK, whose last bits
    follow BLAS's thread count (measured: predictions moved by 1.6e-7 points). A sweep
    holds BLAS at one thread, so its numbers are bitwise the same whatever the caller set
    and however many threads the sweep uses."""
    from threadpoolctl import ThreadpoolController

    from capedyn.evaluation.selection import clear_cache

    df = base_df[base_df["family"].isin(["Pythia", "OPT", "BLOOM", "GPT-Neo", "Falcon"])]
    runs = []
    for blas, workers in ((2, 1), (1, 1), (2, 2)):
        clear_cache()
        with ThreadpoolController().limit(limits=blas, user_api="blas"):
            runs.append(H.crossval(df, families=["OPT", "BLOOM"], methods=["coupling_ode"],
                                   selection="fixed", progress=False, workers=workers))
    preds = [r.predictions["pred"].to_numpy() for r in runs]
    assert np.isfinite(preds[0]).all()
    assert all(np.array_equal(preds[0], p) for p in preds[1:])


def test_a_fit_alone_ignores_the_callers_blas_setting(base_df):
    """Outside a sweep too: every public fit and prediction holds BLAS at one thread for the
    call (the LM step's Cholesky rounds differently on two threads: measured 2e-15 on a
    fit's MSE), so a fit gives the same bits whatever BLAS setting its caller had, and
    leaves that setting as it found it."""
    from threadpoolctl import ThreadpoolController, threadpool_info

    from capedyn.models.coupling_ode import CouplingODE

    df = base_df[base_df["family"].isin(["Pythia", "OPT", "BLOOM", "GPT-Neo"])]
    start = df[df["family"] == "OPT"].sort_values("params_b").iloc[0]
    runs = []
    for blas in (2, 1):
        with ThreadpoolController().limit(limits=blas, user_api="blas"):
            m = CouplingODE(steps=8, progress=False).fit(df)
            runs.append((m.mse_, m.predict(start, [7.0, 30.0]).to_numpy(float)))
            after = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
            assert after == {blas}
    assert np.isfinite(runs[0][0]) and np.isfinite(runs[0][1]).all()
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
