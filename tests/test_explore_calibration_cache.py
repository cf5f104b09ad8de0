"""The explorer's conformal calibration is read back from disk in a later session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import capedyn as cd
from capedyn.evaluation.heldout import FIXED_METHODS
from capedyn.evaluation.splits import make_split
from capedyn.explore.calibration_cache import (
    cached_calibration, calibration_dir, calibration_key,
)

B = ["hellaswag", "truthfulqa", "arc", "winogrande", "mmlu"]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPEDYN_CACHE_DIR", str(tmp_path / "jax"))
    monkeypatch.delenv("CAPEDYN_NO_CACHE", raising=False)
    return tmp_path


def test_second_session_reads_the_calibration_back_bitwise(cache_dir):
    split = make_split(cd.load_base_models(), "Llama-2")
    calls = []

    def calibrate():
        calls.append(1)
        return cd.conformalize(FIXED_METHODS["poly2"](), split.train, progress=False).conformal_

    first = cached_calibration("k1", calibrate)
    again = cached_calibration("k1", calibrate)
    assert len(calls) == 1 and (calibration_dir() / "k1.pkl").is_file()
    assert calibration_dir().parent == cache_dir
    est = FIXED_METHODS["poly2"]().fit(split.train)
    sizes = split.targets["params_b"].to_numpy(float)
    bounds = []
    for cal in (first, again):
        est.conformal_ = cal
        bounds.append(est.predict(split.initial, sizes, interval=0.9)[
            [f"{b}_{s}_90" for b in B for s in ("lo", "hi")]].to_numpy())
    np.testing.assert_array_equal(bounds[0], bounds[1])


def test_unreadable_entry_is_recomputed_and_no_cache_means_no_file(cache_dir, monkeypatch):
    calibration_dir().mkdir(parents=True)
    (calibration_dir() / "bad.pkl").write_bytes(b"not a pickle")
    assert cached_calibration("bad", lambda: {"x": 1}) == {"x": 1}
    assert cached_calibration("bad", lambda: {"x": 2}) == {"x": 1}  # the rewritten entry
    monkeypatch.setenv("CAPEDYN_NO_CACHE", "1")
    assert cached_calibration("off", lambda: 3) == 3
    assert not (calibration_dir() / "off.pkl").exists()


def test_the_key_changes_with_the_table_the_fit_and_the_settings(tmp_path):
    fit = tmp_path / "fit"
    fit.mkdir()
    (fit / "meta.json").write_text("{}")
    table = pd.DataFrame({"family": ["A", "B"], "hellaswag": [40.0, 41.0]})
    key = calibration_key(fit, table, {"steps": 3})
    assert key == calibration_key(fit, table.copy(), {"steps": 3})
    changed = table.copy()
    changed.loc[1, "hellaswag"] = 41.5
    assert calibration_key(fit, changed, {"steps": 3}) != key
    assert calibration_key(fit, table, {"steps": 4}) != key
    (fit / "meta.json").write_text('{"a": 1}')
    assert calibration_key(fit, table, {"steps": 3}) != key



def test_a_job_message_keeps_float64_arrays():
    # the band's fold models travel from the job's process by pickle
    import pickle

    import jax.numpy as jnp

    from capedyn._jax import x64
    from capedyn.explore.core import _unpickle

    with x64():
        sent = pickle.dumps(("done", jnp.asarray(1.0, jnp.float64) / 3.0))
    kind, third = _unpickle(sent)
    assert kind == "done" and third.dtype == np.float64 and float(third) == 1.0 / 3.0
