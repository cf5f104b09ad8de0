"""The explorer's view model: plain Python over capedyn's API, no Streamlit.

Every number the pages show comes from here, so each view is testable without a browser.
:class:`Explorer` holds the loaded tables and the fitted coupling ODE (loaded once per
process) and the results of the slower computations, which run in background threads
(:class:`Job`): the coupling-level Nc posterior (NumPyro NUTS) and the learned methods of
the held-out benchmark.

Units: scores in percent (0-100), sizes in billions of parameters (``params_b``),
x = log10 N with N in parameters, h in GPQA points (frontier) or latent units per decade
(ODE source terms), Nc in billions.

Posterior bands of the ODE predictions: the ODE-level posterior (``model="ode"``) takes
minutes, so the bands drawn here are cheaper. The coupling-level posterior's predictive
draws of an unseen family's log10 Nc are pushed through the fitted field (source terms
held at the transfer rule's value for the start model) and the band is the 5-95% range
of the resulting scores: it carries the Nc uncertainty, not that of the field or of h.
"""

from __future__ import annotations

import atexit
import math
import os
import pickle
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .._jax import scoped_x64, x64

BENCHMARKS = ("hellaswag", "truthfulqa", "arc", "winogrande", "mmlu")
LABELS = {"hellaswag": "HellaSwag", "truthfulqa": "TruthfulQA", "arc": "ARC",
          "winogrande": "WinoGrande", "mmlu": "MMLU", "swe_bench": "SWE-bench Verified",
          "gpqa_diamond": "GPQA Diamond"}
SCALE_FACTORS = (2.0, 4.0, 10.0)
TRANSITION_BAND = 1.0
"""Points: |TQA - TQA_c| at or below this reads as the transition (the classifier cannot
separate the phases closer than one leaderboard score point)."""
BAND_QUANTILES = (0.05, 0.95)
CONFORMAL_LEVEL = 0.9
"""Nominal level of the Analyze page's band: the fitted ODE's conformal interval for a new
family (:func:`capedyn.conformalize`, leave-one-family-out residuals), all five benchmarks."""
N_BAND_DRAWS = 200
GRID_POINTS = 40
"""Save points of the ODE explorer's trajectories (fixed, so one compilation serves all)."""
POSTERIOR_SETTINGS = {"chains": 2, "samples": 400, "warmup": 400, "seed": 0}
"""NUTS settings of the explorer's coupling posterior (override with the environment
variable CAPEDYN_EXPLORE_POSTERIOR="chains,samples,warmup")."""
CONFORMAL_STEPS_ENV = "CAPEDYN_EXPLORE_CONFORMAL_STEPS"
"""Environment variable capping the optimiser steps of each refit of the Analyze band's
calibration (unset: the fit's own budget; the tests set a few steps so a session's
background job costs seconds, not minutes)."""
FAST_HOLDOUT_METHODS = ("linear_ode", "poly1", "poly2", "poly3", "poly4", "poly1_anchored",
                        "poly2_anchored", "poly3_anchored", "poly4_anchored")
SLOW_HOLDOUT_METHODS = ("coupling_ode", "sindy_ode")


class InputProblem(ValueError):
    """Input typed into a page that cannot be used; the message is shown in the page."""


# --------------------------------------------------------------------------- background jobs

def _unpickle(data: bytes) -> Any:
    """A job's message, its JAX arrays rebuilt in their own dtype (outside a float64 scope
    JAX would rebuild a fit's float64 arrays in float32)."""
    with x64():
        return pickle.loads(data)


class Job:
    """A slow computation in a separate, low-priority process (:mod:`._worker`), so that it
    neither slows the page down nor holds the interpreter at exit. ``state`` is 'idle',
    'running', 'done' or 'failed'; ``result``/``error`` hold the outcome; ``progress``
    (0-1) is sent by the function through the callback it gets as its last argument.
    ``fn`` must be a module-level function (it is pickled to the worker) and its result
    picklable."""

    def __init__(self, name: str, fn: Callable[..., Any], args: tuple = ()) -> None:
        self.name, self._fn, self._args = name, fn, args
        self.state, self.result, self.error = "idle", None, None
        self.progress, self.started, self.finished = 0.0, None, None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None
        _JOBS.append(self)

    def start(self) -> "Job":
        with self._lock:
            if self.state in ("running", "done"):
                return self
            payload = pickle.dumps((self._fn, self._args, _compilation_cache_dir()))
            self.state, self.error, self.started, self.finished = "running", None, time.time(), None
            self._proc = subprocess.Popen([sys.executable, "-m", "capedyn.explore._worker"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)
            self._thread = threading.Thread(target=self._watch, args=(payload,), daemon=True,
                                            name=f"capedyn-{self.name}-watch")
            self._thread.start()
        return self

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self._proc.stdout.read(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _watch(self, payload: bytes) -> None:
        state, value = "failed", "the job's process ended without a result"
        try:
            self._proc.stdin.write(payload)
            self._proc.stdin.close()
            while True:
                size = int.from_bytes(self._read(8), "little")
                kind, msg = _unpickle(self._read(size))
                if kind == "progress":
                    self.progress = min(max(msg, 0.0), 1.0)
                    continue
                state, value = kind, msg
                break
        except (EOFError, OSError, pickle.UnpicklingError):
            pass
        finally:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if state == "done":
            self.result, self.progress = value, 1.0
        else:
            self.error = value
        self.finished = time.time()
        self.state = state

    def wait(self, timeout: float | None = None) -> Any:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def stop(self) -> None:
        """Terminate the job's process (used when the server stops)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started


_JOBS: "list[Job]" = []


def _compilation_cache_dir() -> str | None:
    """This process's persistent JAX compilation cache folder, or None: a job's process
    reads and writes the same folder, so a program one job (or the page) compiled is not
    compiled again by the next."""
    jax = sys.modules.get("jax")
    return (jax.config.jax_compilation_cache_dir or None) if jax is not None else None


def running_jobs() -> "list[Job]":
    """Background jobs still running in this process."""
    return [j for j in _JOBS if j.state == "running"]


_THREADS: list[threading.Thread] = []


def _stop_jobs() -> None:
    """At exit, stop the job processes this process started, and let a warm-up thread
    finish (a thread killed inside XLA at interpreter shutdown aborts the process)."""
    for job in _JOBS:
        job.stop()
    for t in _THREADS:
        t.join(timeout=120)


atexit.register(_stop_jobs)


# --------------------------------------------------------------------------- input parsing

def parse_value(text: Any, name: str, *, kind: str = "score") -> float | None:
    """A number typed into a field: None when empty; InputProblem with a message saying
    what to type when it is not a number, out of range, or looks like a fraction."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip().rstrip("%").strip().replace(",", ".")
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise InputProblem(f"{name}: '{text}' is not a number") from None
    if not math.isfinite(value):
        raise InputProblem(f"{name}: '{text}' is not a finite number")
    if kind == "size":
        if value <= 0:
            raise InputProblem(f"{name}: {value:g} must be a positive size in billions of "
                               "parameters (e.g. 7 for a 7B model, 0.41 for 410M)")
        if value > 1e5:
            raise InputProblem(f"{name}: {value:g} billion parameters is implausibly large; "
                               "the size is in billions (7 for 7B), not in parameters")
        return value
    if not 0.0 <= value <= 100.0:
        raise InputProblem(f"{name}: {value:g} is outside 0-100; scores are percentages")
    if 0.0 < value <= 1.0:
        raise InputProblem(f"{name}: {value:g} looks like a fraction; scores are percentages "
                           f"(type {100 * value:g} for {value:g})")
    return value


@dataclass(frozen=True)
class ModelInput:
    """A model typed into the Analyze page: size (billions, may be None), any subset of the
    five scores, and optionally SWE-bench Verified and GPQA Diamond (percent)."""

    params_b: float | None
    scores: dict[str, float]
    swe: float | None = None
    gpqa: float | None = None

    @property
    def complete(self) -> bool:
        return self.params_b is not None and all(b in self.scores for b in BENCHMARKS)


def parse_model(size: Any = None, scores: Mapping[str, Any] | None = None,
                swe: Any = None, gpqa: Any = None) -> tuple[ModelInput | None, list[str]]:
    """Validate the Analyze form: (ModelInput, []) or (None, messages)."""
    problems: list[str] = []

    def take(text, name, kind="score"):
        try:
            return parse_value(text, name, kind=kind)
        except InputProblem as exc:
            problems.append(str(exc))
            return None

    p = take(size, "size (billions)", "size")
    got = {b: take((scores or {}).get(b), LABELS[b]) for b in BENCHMARKS}
    got = {b: v for b, v in got.items() if v is not None}
    s, g = take(swe, LABELS["swe_bench"]), take(gpqa, LABELS["gpqa_diamond"])
    if problems:
        return None, problems
    frontier = s is not None or g is not None
    if frontier and (s is None or g is None):
        problems.append("a frontier model needs both SWE-bench Verified and GPQA Diamond")
    if got and p is None:
        problems.append("size missing: type the model's size in billions of parameters "
                        "(e.g. 7 for a 7B model)")
    if not got and not frontier:
        problems.append("type a size and at least one benchmark score (or SWE-bench "
                        "Verified and GPQA Diamond for a frontier model)")
    if problems:
        return None, problems
    return ModelInput(p, got, s, g), []


# --------------------------------------------------------------------------- the resources

def _posterior_settings() -> dict[str, int]:
    out = dict(POSTERIOR_SETTINGS)
    env = os.environ.get("CAPEDYN_EXPLORE_POSTERIOR")
    if env:
        try:
            c, s, w = (int(v) for v in env.split(","))
            out.update(chains=c, samples=s, warmup=w)
        except ValueError:
            pass
    return out


class Explorer:
    """Tables, fitted ODE and cached results behind the pages (one per process and
    configuration; see :func:`get_explorer`)."""

    def __init__(self, fit: str = "all_families", data: str | None = None,
                 frontier: str | None = None) -> None:
        from ..data.tables import load_base_models, load_frontier_models

        self.fit_name, self.data_path, self.frontier_path = fit, data, frontier
        self.base = load_base_models(data)
        self.frontier = load_frontier_models(frontier)
        self._lock = threading.RLock()
        self._cache: dict[str, Any] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self.posterior_job = Job("posterior", _sample_posterior,
                                 (self.base, _posterior_settings()))
        self.holdout_job = Job("holdout", _slow_holdout, (self.base,))
        self.conformal_job = Job("conformal", _conformal_calibration, (self.base, fit))

    # ---- cached pieces
    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per key; concurrent callers of one key wait for the first, other
        keys are not held up."""
        if key in self._cache:
            return self._cache[key]
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if key not in self._cache:
                self._cache[key] = make()
        return self._cache[key]

    @property
    def model(self):
        """The fitted coupling ODE (``capedyn.load_fit``)."""
        from ..models.persistence import load_fit

        return self._cached("model", lambda: load_fit(self.fit_name))

    @property
    def pairs(self) -> pd.DataFrame:
        from ..coupling.running import running_coupling

        return self._cached("pairs", lambda: running_coupling(self.base))

    @property
    def coupling_fit(self):
        from ..coupling.running import population_fit

        return self._cached("coupling_fit", lambda: population_fit(self.pairs))

    @property
    def line(self):
        """The frontier population line, fit as ``capedyn hfield`` fits it by default
        (frozen rows, 2000 bootstrap resamples, seed 0)."""
        from ..coupling.frontier import population_line

        return self._cached("line", lambda: population_line(self.frontier, n_bootstrap=2000,
                                                            seed=0))

    def complete_models(self) -> pd.DataFrame:
        return self.base.dropna(subset=list(BENCHMARKS)).reset_index(drop=True)

    def fitted_families(self) -> list[str]:
        return list(self.model.families_)

    def warm_up_async(self, warm_up: Callable[["Explorer"], float]) -> threading.Thread | None:
        """Start ``warm_up(self)`` (:func:`capedyn.explore.views.warm_up`) in a background
        thread (once per Explorer). Off when the environment sets CAPEDYN_EXPLORE_WARMUP=0
        (the tests do: Python 3.11 can fail when two threads compile code at once, and
        AppTest compiles the script per run)."""
        if os.environ.get("CAPEDYN_EXPLORE_WARMUP", "1") == "0":
            return None
        with self._lock:
            if "warm_up" not in self._cache:
                t = threading.Thread(target=warm_up, args=(self,), name="capedyn-warm-up",
                                     daemon=True)
                self._cache["warm_up"] = t
                _THREADS.append(t)
                t.start()
            return self._cache["warm_up"]

    def family_start(self, family: str) -> dict[str, Any]:
        rows = self.complete_models()
        rows = rows[rows["family"] == family].sort_values("params_b")
        if rows.empty:
            raise InputProblem(f"family '{family}' has no complete model in the table")
        r = rows.iloc[0]
        return {"model": r["model"], "params_b": float(r["params_b"]),
                **{b: float(r[b]) for b in BENCHMARKS}}

    # ---- background computations
    def posterior(self, start: bool = True):
        """The coupling-level NcPosterior when ready, else None (sampling starts, once, if
        asked; a failed run is not retried automatically)."""
        if start and self.posterior_job.state == "idle":
            self.posterior_job.start()
        return self.posterior_job.result if self.posterior_job.state == "done" else None

    def nc_draws(self, family: str | None = None) -> np.ndarray | None:
        """log10 Nc draws (parameters) of a fitted family, or of an unseen family (the
        posterior predictive) when ``family`` is None; None until the posterior is ready."""
        post = self.posterior()
        if post is None:
            return None
        p = post.idata.posterior
        if family is not None and family in post.families:
            draws = p["log10_nc"].sel(family=family).values
        else:
            draws = p["log10_nc_new"].values
        draws = np.asarray(draws, float).reshape(-1)
        # a fixed number of draws (evenly spaced, repeated when there are fewer): one
        # compilation of the band's solve serves every posterior
        idx = np.linspace(0, draws.size - 1, N_BAND_DRAWS).round().astype(int)
        return draws[idx]

    @scoped_x64
    def fast_holdout(self):
        """Leave-one-family-out (P2) for the methods that need no gradient fit (seconds)."""
        from ..evaluation.heldout import crossval

        return self._cached("fast_holdout", lambda: crossval(
            self.base, methods=list(FAST_HOLDOUT_METHODS), progress=False))



@scoped_x64
def _sample_posterior(base: pd.DataFrame, settings: dict[str, int], progress) -> Any:
    """The coupling-level Nc posterior (runs in a job's process)."""
    from ..inference.sampling import sample_posterior

    post = sample_posterior(base, model="coupling", chains=settings["chains"],
                            samples=settings["samples"], warmup=settings["warmup"],
                            seed=settings["seed"], progress=False)
    progress(1.0)
    return post


def _conformal_calibration(base: pd.DataFrame, fit: str, progress) -> Any:
    """The fitted ODE's conformal calibration on its training families of ``base`` (runs in
    a job's process: one refit of the ODE per family, minutes the first time; read back
    from the cache folder afterwards, see :mod:`capedyn.explore.calibration_cache`)."""
    from ..evaluation.conformal import conformalize
    from ..models.persistence import _resolve, load_fit
    from .calibration_cache import cached_calibration, calibration_key

    model = load_fit(fit)
    params = model.get_params(deep=False)
    if "progress" in params:
        model.set_params(progress=False)
    steps = os.environ.get(CONFORMAL_STEPS_ENV, "")
    if steps.isdigit() and int(steps) > 0 and "steps" in params:
        model.set_params(steps=int(steps))
    train = base[base["family"].isin(list(model.families_))].reset_index(drop=True)

    def calibrate():
        conformalize(model, train, fit=False, progress=False,
                     callback=lambda done, total: progress(done / max(total, 1)))
        return model.conformal_

    key = calibration_key(_resolve(fit), train, model.get_params(deep=False))
    return cached_calibration(key, calibrate)


@scoped_x64
def _slow_holdout(base: pd.DataFrame, progress) -> pd.DataFrame:
    """Leave-one-family-out for the learned methods (runs in a job's process; minutes)."""
    from ..evaluation.heldout import crossval

    parts = []
    for i, m in enumerate(SLOW_HOLDOUT_METHODS):
        parts.append(crossval(base, methods=[m], progress=False).table)
        progress((i + 1) / len(SLOW_HOLDOUT_METHODS))
    return pd.concat(parts, ignore_index=True)


_EXPLORERS: dict[tuple, Explorer] = {}
_EXPLORERS_LOCK = threading.Lock()


def get_explorer(fit: str = "all_families", data: str | None = None,
                 frontier: str | None = None) -> Explorer:
    """One :class:`Explorer` per (fit, data, frontier) in this process."""
    key = (fit, data, frontier)
    with _EXPLORERS_LOCK:
        if key not in _EXPLORERS:
            _EXPLORERS[key] = Explorer(fit, data, frontier)
        return _EXPLORERS[key]


def configured() -> dict[str, str | None]:
    """The explorer's configuration from the environment (set by ``capedyn explore``)."""
    return {"fit": os.environ.get("CAPEDYN_EXPLORE_FIT") or "all_families",
            "data": os.environ.get("CAPEDYN_EXPLORE_DATA") or None,
            "frontier": os.environ.get("CAPEDYN_EXPLORE_FRONTIER") or None}
