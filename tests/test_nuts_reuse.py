"""One compiled NUTS program per model shape: a second family set, seed or simulated dataset
of the same (padded) shape runs without compiling the sampler again. Compilations are
counted from JAX's own monitoring events (``jit(nuts_sampler)`` is the sampler program of
capedyn.inference.compiled_nuts)."""

from __future__ import annotations

import collections

import jax.monitoring as monitoring
import numpy as np
import pytest

from capedyn.inference import coupling_calibration as cal
from capedyn.inference.models import coupling_data, pad_pairs
from capedyn.inference.sampling import sample_posterior

pytestmark = pytest.mark.xdist_group("nuts_reuse")

_SAMPLER = "jit(nuts_sampler)"
_compiled: collections.Counter = collections.Counter()


def _listen(name, secs, fun_name=None, **_):
    if name == "/jax/core/compile/backend_compile_duration":
        _compiled[fun_name] += 1


monitoring.register_event_duration_secs_listener(_listen)


def _sampler_compiles(fn) -> int:
    before = _compiled[_SAMPLER]
    fn()
    return _compiled[_SAMPLER] - before


def test_two_family_sets_and_two_seeds_share_one_compiled_sampler(base_df):
    a = coupling_data(base_df, ["Pythia", "OPT", "BLOOM"])
    b = coupling_data(base_df, ["Qwen2.5", "Cerebras-GPT", "Falcon"])
    assert len(a.family_idx) != len(b.family_idx)  # different data, padded to one shape
    n = max(len(a.family_idx), len(b.family_idx)) + 3
    kw = dict(chains=2, samples=40, warmup=40, progress=False)
    runs = {}
    first = _sampler_compiles(lambda: runs.setdefault("a0", sample_posterior(pad_pairs(a, n), seed=0, **kw)))
    assert first <= 1  # 0 when an earlier test in this process compiled the same shape
    assert _sampler_compiles(lambda: runs.setdefault("b0", sample_posterior(pad_pairs(b, n), seed=0, **kw))) == 0
    assert _sampler_compiles(lambda: runs.setdefault("a1", sample_posterior(pad_pairs(a, n), seed=1, **kw))) == 0
    # the reused program really ran each dataset and seed: different draws, the families' own names
    assert runs["b0"].families == b.families
    la, lb, la1 = (np.asarray(runs[k].idata.posterior["log10_nc"].values) for k in ("a0", "b0", "a1"))
    assert not np.array_equal(la, la1) and not np.array_equal(la, lb)
    # padding pairs are no family's: the per-family counts are the real ones
    assert [r for r in runs["a0"].family_rows()["n_obs"]] == list(a.n_obs)


def test_calibration_datasets_share_one_compiled_sampler():
    res = {}
    n = _sampler_compiles(lambda: res.update(cal.calibration_check(
        n_families=4, seed=11, n_datasets=3, chains=2, samples=40, warmup=40)))
    assert res["n_total"] == 12
    assert n <= 1, f"{n} sampler compilations for 3 simulated datasets"
