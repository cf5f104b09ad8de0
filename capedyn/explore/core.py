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
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._jax import scoped_x64

BENCHMARKS = ("hellaswag", "truthfulqa", "arc", "winogrande", "mmlu")
LABELS = {"hellaswag": "HellaSwag", "truthfulqa": "TruthfulQA", "arc": "ARC",
          "winogrande": "WinoGrande", "mmlu": "MMLU", "swe_bench": "SWE-bench Verified",
          "gpqa_diamond": "GPQA Diamond"}
SCALE_FACTORS = (2.0, 4.0, 10.0)
TRANSITION_BAND = 1.0
"""Points: |TQA - TQA_c| at or below this reads as the transition (the classifier cannot
separate the phases closer than one leaderboard score point)."""
BAND_QUANTILES = (0.05, 0.95)
N_BAND_DRAWS = 200
GRID_POINTS = 40
"""Save points of the ODE explorer's trajectories (fixed, so one compilation serves all)."""
POSTERIOR_SETTINGS = {"chains": 2, "samples": 400, "warmup": 400, "seed": 0}
"""NUTS settings of the explorer's coupling posterior (override with the environment
variable CAPEDYN_EXPLORE_POSTERIOR="chains,samples,warmup")."""
FAST_HOLDOUT_METHODS = ("linear_ode", "poly1", "poly2", "poly3", "poly4", "poly1_anchored",
                        "poly2_anchored", "poly3_anchored", "poly4_anchored")
SLOW_HOLDOUT_METHODS = ("coupling_ode", "sindy_ode")


class InputProblem(ValueError):
    """Input typed into a page that cannot be used; the message is shown in the page."""


# --------------------------------------------------------------------------- background jobs

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
            payload = pickle.dumps((self._fn, self._args))
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
                kind, msg = pickle.loads(self._read(size))
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

    def warm_up_async(self) -> threading.Thread | None:
        """Start :meth:`warm_up` in a background thread (once per Explorer). Off when the
        environment sets CAPEDYN_EXPLORE_WARMUP=0 (the tests do: Python 3.11 can fail
        when two threads compile code at once, and AppTest compiles the script per run)."""
        if os.environ.get("CAPEDYN_EXPLORE_WARMUP", "1") == "0":
            return None
        with self._lock:
            if "warm_up" not in self._cache:
                t = threading.Thread(target=self.warm_up, name="capedyn-warm-up", daemon=True)
                self._cache["warm_up"] = t
                _THREADS.append(t)
                t.start()
            return self._cache["warm_up"]

    @scoped_x64
    def warm_up(self) -> float:
        """Load the fit and compile the solves the pages use; returns seconds taken."""
        t0 = time.perf_counter()
        fam = self.fitted_families()[0]
        start = self.family_start(fam)
        analyze(self, ModelInput(start["params_b"], {b: start[b] for b in BENCHMARKS}),
                bands=False)
        p = self.model.families_[fam]
        trajectories(self, start, fam, float(np.asarray(p.log10_nc)), np.asarray(p.h))
        scores0 = np.array([start[b] for b in BENCHMARKS])
        _band(self.model, scores0, start["params_b"],
              np.array([f * start["params_b"] for f in SCALE_FACTORS]),
              np.full(N_BAND_DRAWS, float(self.model.mu_nc_)))
        return time.perf_counter() - t0

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


# --------------------------------------------------------------------------- Analyze

def phase_of(hs: float, tqa: float, params_b: float | None, ex: Explorer) -> dict[str, Any]:
    """Three-way phase: the algebraic classifier's tax/bonus, read as the transition when
    TQA is within :data:`TRANSITION_BAND` points of TQA_c; with a size, also the sign of
    γ12 the population fit gives there."""
    from ..coupling.phase import phase_classifier

    pc = phase_classifier(hs, tqa)
    phase = "transition" if abs(pc.margin) <= TRANSITION_BAND else pc.phase
    side = "above" if pc.margin > 0 else "below"
    reason = (f"TruthfulQA {tqa:g} is {abs(pc.margin):.2f} points {side} the critical "
              f"TQA_c = sqrt(0.187·HS) = {pc.tqa_critical:.2f}")
    if phase == "transition":
        reason += f" (within {TRANSITION_BAND:g} point: at the phase boundary)"
    out = {"phase": phase, "classifier_phase": pc.phase, "tqa_critical": pc.tqa_critical,
           "margin": pc.margin, "reason": reason}
    if params_b is not None:
        fit = ex.coupling_fit
        g = float(fit.predict(params_b))
        out.update(gamma12=g, regime="bonus" if g > 0 else "tax", nc_b=float(fit.nc_b),
                   gamma12_reading=(f"population fit γ12 = {fit.A:.3f}·log10 N {fit.B:+.3f} "
                                    f"gives γ12 = {g:+.3f} at {params_b:g}B "
                                    f"({'bonus' if g > 0 else 'tax'}; Nc = {fit.nc_b:.3g}B)"))
    return out


def nearest_models(ex: Explorer, inp: ModelInput, k: int = 5) -> pd.DataFrame:
    """The ``k`` known models closest to the input: base models by the RMS difference over
    the scores given (plus 10 points per decade of size when the size is given), frontier
    models by the distance in (SWE, GPQA)."""
    if inp.scores:
        cols = list(inp.scores)
        rows = ex.base.dropna(subset=cols).copy()
        diff = rows[cols].to_numpy(float) - np.array([inp.scores[c] for c in cols])
        d2 = (diff ** 2).mean(axis=1)
        if inp.params_b is not None:
            d2 = d2 + (10.0 * np.log10(rows["params_b"].to_numpy(float) / inp.params_b)) ** 2
        rows["distance"] = np.sqrt(d2)
        keep = ["model", "family", "params_b", *BENCHMARKS, "distance"]
    else:
        rows = ex.frontier.copy()
        rows["distance"] = np.hypot(rows["swe_bench"] - inp.swe, rows["gpqa_diamond"] - inp.gpqa)
        keep = ["model", "lab", "swe_bench", "gpqa_diamond", "release", "distance"]
    return rows.sort_values("distance", kind="stable").head(k)[keep].reset_index(drop=True)


def hfield_of(ex: Explorer, swe: float, gpqa: float) -> dict[str, Any]:
    from ..coupling.frontier import h_direction, h_field, is_specialist, reading

    line = ex.line
    h = h_field(swe, gpqa, line.slope, line.intercept)
    return {"h": h, "predicted_gpqa": line.slope * swe + line.intercept,
            "reading": reading(h), "direction": h_direction(h), "specialist": is_specialist(h),
            "line": line.label}


@scoped_x64
def ode_prediction(ex: Explorer, inp: ModelInput, bands: bool = True) -> dict[str, Any]:
    """Scores at 2x, 4x and 10x the size from the fitted ODE (an unseen family: Nc and h
    from the transfer rule), with the Nc-posterior band when it is ready."""
    model = ex.model
    start = {"params_b": inp.params_b, **inp.scores}
    sizes = np.array([f * inp.params_b for f in SCALE_FACTORS])
    central = model.predict(start, sizes)
    from ..models._extrapolation import check_prediction

    checks = check_prediction(getattr(model, "training_range_", None),
                              [inp.scores[b] for b in BENCHMARKS], inp.params_b, sizes)
    central["extrapolated"] = [bool(checks["start_outside"]) or float(s) in checks["sizes_outside"]
                               for s in sizes]
    out = {"table": central, "band": None, "band_note": "", "notes": checks["notes"]}
    if not bands:
        return out
    draws = ex.nc_draws(None)
    if draws is None:
        job = ex.posterior_job
        out["band_note"] = (f"posterior band: the Nc posterior is being sampled "
                            f"({job.elapsed:.0f} s so far)" if job.state == "running" else
                            f"posterior band unavailable: {job.error}" if job.state == "failed"
                            else "posterior band: not started")
        return out
    lo, hi = _band(model, np.array([inp.scores[b] for b in BENCHMARKS]), inp.params_b,
                   sizes, draws)
    out["band"] = (lo, hi)
    out["band_note"] = (f"{100 * (BAND_QUANTILES[1] - BAND_QUANTILES[0]):.0f}% band: "
                        f"{draws.size} posterior-predictive Nc draws of an unseen family "
                        "pushed through the fitted field (h at the transfer rule's value); Nc "
                        "enters through TruthfulQA's coupling to HellaSwag, so the other "
                        "bands are narrow")
    return out


_BAND_FN: dict[str, Any] = {}


def _band_solver():
    if "fn" not in _BAND_FN:
        import equinox as eqx
        import jax

        from ..dynamics.field import FamilyParams, solve_unchecked

        def many(field, z0, x0, xs, log10_nc, h):
            def one(lnc):
                return solve_unchecked(field, z0, x0, xs, FamilyParams(lnc, h))
            return jax.vmap(one)(log10_nc)

        _BAND_FN["fn"] = eqx.filter_jit(many)
    return _BAND_FN["fn"]


@scoped_x64
def _band(model, scores0: np.ndarray, p0: float, sizes: np.ndarray, draws: np.ndarray):
    import jax.numpy as jnp

    from ..dynamics.state import from_state, to_state
    from ..data.tables import log10_params

    fam = model.family_params(scores0, p0)
    xs = jnp.asarray(log10_params(np.sort(sizes)))
    pad = jnp.concatenate([xs, jnp.full((-xs.shape[0]) % 8, xs[-1])])
    zs, ok = _band_solver()(model.field_, jnp.asarray(to_state(scores0)),
                            jnp.asarray(float(log10_params(p0))), pad,
                            jnp.asarray(draws, float), jnp.asarray(fam.h))
    zs, ok = np.asarray(zs)[:, : xs.shape[0]], np.asarray(ok)
    if not ok.any():
        raise InputProblem("every ODE solve of the posterior band failed")
    scores = np.asarray(from_state(zs[ok]))  # (draws, sizes, 5)
    lo, hi = np.quantile(scores, BAND_QUANTILES, axis=0)
    return lo, hi


def analyze(ex: Explorer, inp: ModelInput, bands: bool = True) -> dict[str, Any]:
    """Everything the Analyze page shows for one model (messages instead of exceptions)."""
    out: dict[str, Any] = {"input": inp, "phase": None, "hfield": None, "ode": None,
                           "notes": []}
    if "hellaswag" in inp.scores and "truthfulqa" in inp.scores:
        out["phase"] = phase_of(inp.scores["hellaswag"], inp.scores["truthfulqa"],
                                inp.params_b, ex)
    elif inp.scores:
        out["notes"].append("phase: needs HellaSwag and TruthfulQA")
    if inp.swe is not None and inp.gpqa is not None:
        out["hfield"] = hfield_of(ex, inp.swe, inp.gpqa)
    out["nearest"] = nearest_models(ex, inp) if (inp.scores or inp.swe is not None) else None
    if inp.complete:
        try:
            out["ode"] = ode_prediction(ex, inp, bands=bands)
        except Exception as exc:  # a failed solve is a message, not a trace
            out["notes"].append(f"ODE prediction failed: {exc}")
    elif inp.scores:
        missing = [LABELS[b] for b in BENCHMARKS if b not in inp.scores]
        out["notes"].append("ODE prediction at 2x, 4x, 10x: needs the size and all five "
                            f"scores (missing: {', '.join(missing) or 'size'})")
    return out


# --------------------------------------------------------------------------- ODE explorer

def nc_bounds(ex: Explorer) -> tuple[float, float]:
    """Slider range of log10 Nc in billions: 0.01B-1000B, widened to hold every fitted
    family's value with half a decade to spare."""
    v = np.array([float(np.asarray(p.log10_nc)) - 9.0 for p in ex.model.families_.values()])
    return (float(min(-2.0, np.floor(2 * (v.min() - 0.5)) / 2)),
            float(max(3.0, np.ceil(2 * (v.max() + 0.5)) / 2)))


def source_bounds(ex: Explorer) -> tuple[float, float]:
    """Slider range of the source terms h: the fitted families' range, widened."""
    h = np.stack([np.asarray(p.h) for p in ex.model.families_.values()])
    m = float(max(1.0, 1.5 * np.abs(h).max()))
    return -round(m, 1), round(m, 1)


@scoped_x64
def trajectories(ex: Explorer, start: Mapping[str, float], family: str | None,
                 log10_nc: float, h: Sequence[float], up_to_b: float | None = None) -> pd.DataFrame:
    """The ODE's trajectory from ``start`` (params_b + five scores) with the fitted field and
    the given family parameters (log10 Nc in parameters, h per benchmark), on
    :data:`GRID_POINTS` sizes up to ``up_to_b`` (default: the family's largest model or
    100x the start). Long table: params_b, benchmark, score."""
    from ..dynamics.field import FamilyParams, predict_scores

    p0 = float(start["params_b"])
    if up_to_b is None:
        fam_rows = ex.base[ex.base["family"] == family] if family else ex.base.iloc[:0]
        up_to_b = max(100.0 * p0, float(fam_rows["params_b"].max()) if len(fam_rows) else 0.0)
    sizes = np.geomspace(p0, up_to_b, GRID_POINTS)
    fam = FamilyParams.make(float(log10_nc), np.asarray(h, float))
    scores0 = np.array([float(start[b]) for b in BENCHMARKS])
    pred = predict_scores(ex.model.field_, fam, scores0, p0, sizes, name=family or "start")
    wide = pd.DataFrame(pred, columns=list(BENCHMARKS))
    wide.insert(0, "params_b", sizes)
    return wide.melt(id_vars="params_b", var_name="benchmark", value_name="score")


# --------------------------------------------------------------------------- other views

def phase_map(ex: Explorer) -> dict[str, Any]:
    """Base models on HellaSwag x TruthfulQA with their classifier phase, the boundary
    TQA_c(HS), and γ12 per pair with the population fit against size."""
    from ..coupling.phase import phase_classifier

    pts = ex.base.dropna(subset=["hellaswag", "truthfulqa"]).copy()
    pc = phase_classifier(pts["hellaswag"].to_numpy(), pts["truthfulqa"].to_numpy())
    pts["phase"] = np.asarray(pc.phase)
    pts["margin"] = np.asarray(pc.margin)
    hs = np.linspace(max(0.0, pts["hellaswag"].min() - 3), min(100.0, pts["hellaswag"].max() + 3), 151)
    boundary = pd.DataFrame({"hellaswag": hs, "truthfulqa": 100 * np.sqrt(0.187 * hs / 100)})
    pairs = ex.pairs[~ex.pairs["skipped"]].copy()
    fit = ex.coupling_fit
    n = np.geomspace(pairs["params_b_mid"].min(), pairs["params_b_mid"].max(), 60)
    curve = pd.DataFrame({"params_b": n, "gamma12": fit.predict(n)})
    return {"points": pts, "boundary": boundary, "pairs": pairs, "fit": fit, "fit_curve": curve}


def frontier_view(ex: Explorer) -> dict[str, Any]:
    from ..coupling.frontier import lab_summary, model_fields

    line = ex.line
    models = pd.DataFrame(model_fields(ex.frontier, line))
    labs = pd.DataFrame([{k: v for k, v in e.items() if k != "trajectory"}
                         for e in lab_summary(ex.frontier, line)])
    x = np.linspace(max(0.0, models["swe_bench"].min() - 3), min(100.0, models["swe_bench"].max() + 3), 100)
    lo, hi = line.band(x)
    band = pd.DataFrame({"swe_bench": x, "gpqa": line.predict(x), "lo": lo, "hi": hi})
    return {"models": models, "labs": labs, "line": line, "band": band}


def nc_forest(ex: Explorer) -> pd.DataFrame | None:
    """The posterior table (Nc median, 68% and 95% intervals in billions), or None until
    the posterior is ready."""
    post = ex.posterior()
    if post is None:
        return None
    return post.table.copy()


def holdout_matrix(ex: Explorer) -> pd.DataFrame:
    """Relative MAE % of every method (rows) on every held-out family (columns): the fast
    methods always, the learned ones once their background run has finished."""
    table = ex.fast_holdout().table
    if ex.holdout_job.state == "done":
        table = pd.concat([ex.holdout_job.result, table], ignore_index=True)
    ok = table[table["status"] == "ok"]
    mat = ok.pivot_table(index="method", columns="family", values="rel_mae_pct", sort=False)
    mat["mean"] = mat.mean(axis=1)
    return mat.sort_values("mean")


def predictions(ex: Explorer, on=None) -> pd.DataFrame:
    from ..evaluation.predictions import evaluate

    return ex._cached(f"predictions-{on}", lambda: pd.DataFrame(
        evaluate(ex.base, ex.frontier, on=on)))
