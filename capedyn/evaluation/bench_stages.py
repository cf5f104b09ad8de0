"""Cold and warm timings per stage: where a user's seconds go, compilation against running.

For each stage (a callable that does what a user runs, e.g. the default coupling-ODE fit on
the shipped table) three runs are timed:

``cold``
    a new Python process with an empty compilation cache: what a first-time user waits.
``warm``
    the same call again in that process: every program compiled already.
``cached``
    a second new process sharing the first one's cache folder: what a returning user waits
    (:mod:`capedyn._cache`), the programs read from disk instead of compiled.

Each run reports wall seconds; compile seconds split into tracing (Python building the
program), lowering (to XLA's input) and XLA's backend compilation, all read from
``jax.monitoring``'s duration events; ``run_s`` = wall − compile; the number of programs
built (``n_programs``), of them read from the persistent cache (``cache_hits``) and
compiled by XLA (``n_compilations``). The counts do not depend on the machine's load;
the seconds do (the report carries the one-minute load average).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_BACKEND = "/jax/core/compile/backend_compile_duration"
_HITS = "/jax/compilation_cache/cache_hits"


def _fit_default() -> None:
    from ..data.tables import load_base_models
    from ..models.coupling_ode import CouplingODE

    CouplingODE(seed=0, progress=False).fit(load_base_models())


def _solve_once() -> None:
    from ..dynamics.field import CouplingField, FamilyParams, predict_scores

    predict_scores(CouplingField.zeros(), FamilyParams.make(9.5, [0.1, 0.2, 0.1, 0.05, 0.3]),
                   [40.0, 30.0, 35.0, 55.0, 26.0], 0.1, [0.4, 1.0, 7.0])


NESTED_FAMILIES = ("Pythia", "OPT", "BLOOM", "Cerebras-GPT", "Qwen2.5")
NESTED_HELD_OUT = ("Pythia", "BLOOM")
"""The fixed subset of the ``nested`` stages: a five-family table, two families held out."""


def _nested_selection(batch):
    """coupling_ode's nested selection as the benchmark runs it (its grid and its inner
    budget, if it has one), batched or not."""
    from ..models.coupling_ode import CouplingODE
    from .heldout import INNER_PARAMS, SELECTION_GRIDS
    from .selection import NestedSelection

    return NestedSelection(CouplingODE(progress=False), SELECTION_GRIDS["coupling_ode"],
                           inner_params=INNER_PARAMS.get("coupling_ode"), batch=batch)


def _nested(batch) -> None:
    """coupling_ode's nested selection in ``crossval`` on the fixed subset; the memo of
    inner fits is cleared first, so a warm run refits them."""
    from ..data.tables import load_base_models
    from .heldout import crossval
    from .selection import clear_cache

    df = load_base_models()
    clear_cache()
    crossval(df[df["family"].isin(NESTED_FAMILIES)], families=list(NESTED_HELD_OUT),
             methods={"coupling_ode": lambda: _nested_selection(batch)}, progress=False)


def _posterior(model: str) -> None:
    """The shipped table's posterior at the model's default NUTS settings."""
    from ..inference.sampling import sample_posterior

    sample_posterior(model=model, progress=False)


STAGES: dict[str, Callable[[], None]] = {
    "fit": _fit_default, "solve": _solve_once,
    "nested": lambda: _nested(False), "nested_batched": lambda: _nested(True),
    "posterior": lambda: _posterior("coupling"), "posterior_ode": lambda: _posterior("ode")}
"""Stage name → what is timed (one call): ``fit`` the default coupling-ODE fit on the
shipped table, ``solve`` one prediction from a fixed field (a seconds-long smoke stage),
``nested`` coupling_ode's nested selection in ``crossval`` on :data:`NESTED_FAMILIES` with
:data:`NESTED_HELD_OUT` held out (as ``crossval`` runs it: inner fits one after another),
``nested_batched`` the same with the inner fits batched (``fit_batch``), ``posterior`` and
``posterior_ode`` the coupling- and ODE-level posteriors as ``capedyn posterior`` samples
them (default settings, shipped table and fit)."""

SAMPLING_STAGES = frozenset({"posterior", "posterior_ode"})
"""Stages whose process shows the CPU to JAX as the command line's sampling commands do
(two devices on two or more cores); the others keep JAX's default, as a library user's
new process does."""


def _stage_devices(stage: str, environ=None, cores: int | None = None,
                   jax_running: bool | None = None) -> int:
    """Set up a stage's process's devices (:data:`SAMPLING_STAGES`) before JAX starts;
    returns the device count set (1: none). ``environ``, ``cores`` and ``jax_running``
    default to this process's."""
    if stage not in SAMPLING_STAGES:
        return 1
    from .._devices import cpu_devices_for_own_process

    return cpu_devices_for_own_process(environ, cores, jax_running, spare_threads=False)


class _Events:
    """Running totals of JAX's compile events in this process (listeners registered once)."""

    def __init__(self):
        import jax.monitoring as monitoring

        self.count: collections.Counter = collections.Counter()
        self.seconds: collections.Counter = collections.Counter()
        monitoring.register_event_listener(self._event)
        monitoring.register_event_duration_secs_listener(self._duration)

    def _event(self, name: str, **_: Any) -> None:
        self.count[name] += 1

    def _duration(self, name: str, secs: float, **_: Any) -> None:
        self.count[name] += 1
        self.seconds[name] += secs

    def snapshot(self) -> tuple[dict, dict]:
        return dict(self.count), dict(self.seconds)


def _timed(fn: Callable[[], None], events: _Events) -> dict[str, Any]:
    import jax

    c0, s0 = events.snapshot()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    c1, s1 = events.snapshot()
    sec = {k: s1.get(k, 0.0) - s0.get(k, 0.0) for k in (_TRACE, _LOWER, _BACKEND)}
    compile_s = sum(sec.values())
    return {"wall_s": wall, "devices": jax.device_count(), "compile_s": compile_s,
            "run_s": max(wall - compile_s, 0.0),
            "trace_s": sec[_TRACE], "lower_s": sec[_LOWER], "backend_compile_s": sec[_BACKEND],
            "n_programs": c1.get(_BACKEND, 0) - c0.get(_BACKEND, 0),
            "cache_hits": c1.get(_HITS, 0) - c0.get(_HITS, 0),
            "n_compilations": (c1.get(_BACKEND, 0) - c0.get(_BACKEND, 0))
                              - (c1.get(_HITS, 0) - c0.get(_HITS, 0))}


def _child(stage: str, repeats: int) -> list[dict[str, Any]]:
    """Inside the measuring process: opt in to the cache folder given by the parent, run
    the stage ``repeats`` times."""
    _stage_devices(stage)  # before JAX starts
    events = _Events()  # before anything compiles
    from .._cache import enable_compilation_cache

    enable_compilation_cache()
    return [_timed(STAGES[stage], events) for _ in range(repeats)]


def _run_child(stage: str, repeats: int, cache_dir: str) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if k not in ("CAPEDYN_NO_CACHE",
                                                          "JAX_COMPILATION_CACHE_DIR")}
    env["CAPEDYN_CACHE_DIR"] = cache_dir
    code = ("import json, sys; from capedyn.evaluation.bench_stages import _child; "
            f"print(json.dumps(_child({stage!r}, {int(repeats)})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        from .._errors import CapedynError

        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CapedynError(f"bench stage '{stage}' failed in its own process: {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_stages(stages) -> None:
    """Raise :class:`~capedyn._errors.InputError` naming any stage not in :data:`STAGES`."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        from .._errors import InputError

        raise InputError(f"unknown bench stage(s) {', '.join(unknown)}; known: "
                         f"{', '.join(STAGES)}")


def stage_timings(stages=("fit",), *, progress: bool = True) -> dict[str, Any]:
    """Cold, warm and cached timings of each stage in ``stages`` (names of :data:`STAGES`),
    each cold run in a new process with an empty, temporary cache folder (removed after)."""
    check_stages(stages)
    out: dict[str, Any] = {"loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg")
                           else None, "cpu_count": os.cpu_count(), "stages": {}}
    for stage in stages:
        with tempfile.TemporaryDirectory(prefix="capedyn-bench-cache-") as cache:
            if progress:
                print(f"bench stage {stage}: cold and warm (new process, empty cache)",
                      file=sys.stderr, flush=True)
            cold, warm = _run_child(stage, 2, cache)
            if progress:
                print(f"bench stage {stage}: new process, cache filled", file=sys.stderr,
                      flush=True)
            (cached,) = _run_child(stage, 1, cache)
        out["stages"][stage] = {"cold": cold, "warm": warm, "cached": cached}
    return out


def format_stage_timings(r: dict[str, Any]) -> str:
    """One table row per (stage, run)."""
    from .._table import format_table

    rows = []
    for stage, runs in r.get("stages", {}).items():
        for kind, m in runs.items():
            rows.append({"stage": stage, "run": kind, "devices": m.get("devices"),
                         "wall s": round(m["wall_s"], 2),
                         "compile s": round(m["compile_s"], 2),
                         "(trace/lower/XLA)": f"{m['trace_s']:.1f}/{m['lower_s']:.1f}/"
                                              f"{m['backend_compile_s']:.1f}",
                         "run s": round(m["run_s"], 2), "programs": m["n_programs"],
                         "compiled": m["n_compilations"], "from cache": m["cache_hits"]})
    load = r.get("loadavg_1min")
    head = f"per stage (load average {load:.1f} on {r.get('cpu_count')} cores)" if load else ""
    return "\n".join(x for x in (head, format_table(rows)) if x)
