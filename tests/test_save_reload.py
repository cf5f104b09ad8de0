"""``model.save(dir); cd.load_fit(dir)`` round-trips in a session that never enabled
float64 (the default JAX setting): a shipped fit re-saved and a fit with a family added.
The reloaded parameters are compared with the ones saved, leaf by leaf."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

import capedyn as cd


def _params(model) -> dict:
    out = {"mu_nc": model.mu_nc_, "gamma0": float(model.field_.gamma0),
           "coef": np.asarray(model.field_.coef)}
    for name, fam in model.families_.items():
        out[f"{name}.log10_nc"] = float(fam.log10_nc)
        out[f"{name}.h"] = np.asarray(fam.h)
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=0, err_msg=k)


def test_resaved_shipped_fit_loads_in_a_float32_session(tmp_path):
    assert not jax.config.jax_enable_x64  # the user's default, which save must not depend on
    model = cd.load_fit("pythia")
    model.save(tmp_path / "my_fit")
    again = cd.load_fit(tmp_path / "my_fit")
    _assert_same(_params(model), _params(again))
    assert not jax.config.jax_enable_x64


@pytest.mark.slow
def test_fit_with_a_family_added_round_trips(tmp_path, base_df):
    model = cd.load_fit("pythia")
    opt = base_df[base_df["family"] == "OPT"]
    model.fit_family(opt, "OPT", steps=20)
    model.save(tmp_path / "with_opt")
    again = cd.load_fit(tmp_path / "with_opt")
    assert "OPT" in again.families_
    _assert_same(_params(model), _params(again))
    start = cd.complete_models(opt).iloc[0]
    pd.testing.assert_frame_equal(model.predict(start, [13.0], family="OPT"),
                                  again.predict(start, [13.0], family="OPT"))
