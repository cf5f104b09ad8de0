"""The authors' falsifiable predictions, encoded as data and checked against the tables.

Each :class:`Prediction` holds an ``id``, the ``claim`` in words, a ``deadline`` (a date, or
None when the authors gave none), the data it needs, and a ``test``: a function of the
base-model and frontier tables that returns an :class:`Outcome`. The status is never
stored; :func:`evaluate` computes it every time from the tables it is given (by default
the ones shipped with capedyn):

``confirmed``
    the test is met by the data;
``refuted``
    the data contradict the claim, or the deadline has passed without the test being met;
``pending``
    not met yet and the deadline not reached (or open-ended);
``untestable``
    the data needed are not in the tables; the evidence says which.

Units: scores in percent (0-100), sizes in billions of parameters, γ12 in TruthfulQA
points per HellaSwag point, h in GPQA points.

Choices made where the claim is stated in words only (each is written into the evidence):

* A γ12 "of exactly zero" is taken as a TruthfulQA change no larger than one score point
  (:data:`SCORE_RESOLUTION`, the resolution of a leaderboard score) across a well
  conditioned HellaSwag step (at least :data:`MIN_HS_STEP` points).
* "Saturated" is the saturation rule of :func:`capedyn.saturation`: the top five models
  sit within 2 points.
* "Activation" of a pair of benchmarks is a positive Pearson correlation across frontier
  models, one-sided p < 0.05 (:data:`ALPHA`), on at least :data:`MIN_MODELS_CORR` models.
* Lab trajectories are read on the h-field of the frozen population line (fit on the
  rows before the paper's freeze); the releases after the freeze are the out-of-sample
  test.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .._errors import InputError
from .._jax import scoped_x64

__all__ = ["Prediction", "Outcome", "PREDICTIONS", "STATUSES", "evaluate", "evaluate_one",
           "today"]

STATUSES = ("confirmed", "refuted", "pending", "untestable")
SCORE_RESOLUTION = 1.0
"""Points: a TruthfulQA change at or below this is indistinguishable from zero."""
MIN_HS_STEP = 5.0
"""Points: the HellaSwag step a zero-coupling check needs to be well conditioned."""
ALPHA = 0.05
"""One-sided significance level of the correlation tests."""
MIN_MODELS_CORR = 5
"""Models with both scores a correlation test needs."""
EXCURSION_DROP = 5.0
"""GPQA points: a release whose h falls this much below its predecessor's is an excursion."""
CLAIMED_LLAMA2_REL_MAE = 5.6
"""Percent: the held-out Llama-2 error the authors claim for their ODE."""


@dataclass(frozen=True)
class Outcome:
    """What a test found. ``met`` True: the claim holds on the data; ``contradicted`` True:
    the data falsify it now (deadline or not); ``missing``: a reason the test cannot run
    (then the status is ``untestable``). ``evidence`` says what was computed."""

    evidence: str
    met: bool = False
    contradicted: bool = False
    missing: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """One falsifiable prediction: ``test(ctx)`` → :class:`Outcome` (see :class:`Tables`)."""

    id: str
    claim: str
    deadline: _dt.date | None
    needs: str
    rule: str
    test: Callable[["Tables"], Outcome]


def today() -> _dt.date:
    """The current date (UTC)."""
    return _dt.datetime.now(_dt.timezone.utc).date()


# --------------------------------------------------------------------------- data access

class Tables:
    """The tables a test may read, loaded once: ``base`` and ``frontier`` DataFrames, the
    label of each, and a cache shared by the tests of one evaluation."""

    def __init__(self, base=None, frontier=None, progress: bool = False) -> None:
        from ..data.tables import load_base_models, load_frontier_models

        self.base_path = base if isinstance(base, (str, Path)) else None
        self.base = base if isinstance(base, pd.DataFrame) else load_base_models(base)
        self.frontier = (frontier if isinstance(frontier, pd.DataFrame)
                         else load_frontier_models(frontier))
        self.cache: dict[str, Any] = {}
        self.progress = progress


def _numeric_column(df: pd.DataFrame, column: str) -> np.ndarray | None:
    """A column as float (NaN where empty), or None when the table lacks it. A value that is
    not a number raises a DataError naming the row."""
    from ..data.tables import DataError

    if column not in df.columns:
        return None
    raw = df[column]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    for i, (r, v) in enumerate(zip(raw.tolist(), vals)):
        blank = r is None or (isinstance(r, float) and math.isnan(r)) or str(r).strip() == ""
        if math.isnan(v) and not blank:
            raise DataError(f"'{r}' is not a number", file=str(df.attrs.get("label", "<table>")),
                            row=i + 1, column=column, hint="Use plain decimal numbers")
        if not math.isnan(v) and not 0.0 <= v <= 100.0:
            raise DataError(f"score {v:g} is outside [0, 100]",
                            file=str(df.attrs.get("label", "<table>")), row=i + 1,
                            column=column, hint="Scores are percentages from 0 to 100")
    return vals


# --------------------------------------------------------------------------- the tests

def _olmo_zero(t: Tables) -> Outcome:
    from ..coupling.phase import phase_classifier

    rows = t.base[(t.base["family"] == "OLMo")].dropna(subset=["hellaswag", "truthfulqa"])
    rows = rows.sort_values("params_b", kind="stable")
    if len(rows) < 2:
        return Outcome("", missing=f"needs two OLMo models with HellaSwag and TruthfulQA; the "
                       f"base table has {len(rows)}")
    a, b = rows.iloc[0], rows.iloc[-1]
    dhs = float(b["hellaswag"] - a["hellaswag"])
    dtqa = float(b["truthfulqa"] - a["truthfulqa"])
    if abs(dhs) < MIN_HS_STEP:
        return Outcome("", missing=f"OLMo's HellaSwag step {a['model']} -> {b['model']} is "
                       f"{dhs:+.2f} points, under {MIN_HS_STEP:g}: gamma12 is ill-conditioned")
    g = dtqa / dhs
    pc = phase_classifier(float(b["hellaswag"]), float(b["truthfulqa"]))
    ok = abs(dtqa) <= SCORE_RESOLUTION
    ev = (f"{a['model']} -> {b['model']}: HS {a['hellaswag']:g} -> {b['hellaswag']:g}, TQA "
          f"{a['truthfulqa']:g} -> {b['truthfulqa']:g}; gamma12 = {g:+.3f} (|dTQA| = "
          f"{abs(dtqa):.2f} points {'<=' if ok else '>'} {SCORE_RESOLUTION:g}); classifier at "
          f"{b['model']}: TQA_c = {pc.tqa_critical:.2f}, margin {pc.margin:+.2f} points")
    return Outcome(ev, met=ok, contradicted=not ok,
                   values={"gamma12": g, "delta_tqa": dtqa, "delta_hs": dhs})


def _fit_matches(est, train: pd.DataFrame) -> bool:
    """True when ``train`` (one family's rows) are the rows ``est`` was trained on: the same
    start model, size and scores, the same models, and ``est.error_summary(train)`` reproduces the
    in-sample metrics saved with the fit."""
    from ..data.tables import BENCHMARKS, complete_models

    rows = complete_models(train).sort_values("params_b", kind="stable")
    starts = getattr(est, "starts_", {}) or {}
    saved = getattr(est, "metrics_", None) or {}
    fam = "Pythia"
    if fam not in starts or not saved.get("per_benchmark") or len(rows) < 2:
        return False
    st = starts[fam]
    first = rows.iloc[0]
    if (list(st.get("models", [])) != list(rows["model"]) or st.get("model") != first["model"]
            or not np.isclose(float(st.get("params_b", -1)), float(first["params_b"]))
            or not np.allclose(st.get("scores", []), first[list(BENCHMARKS)].to_numpy(float))):
        return False
    now = est.error_summary(rows)["per_benchmark"]
    return all(np.isclose(now[b]["mae"], saved["per_benchmark"][b]["mae"], rtol=1e-9, atol=1e-9)
               and now[b]["n"] == saved["per_benchmark"][b]["n"] for b in BENCHMARKS)


@scoped_x64
def _pythia_fit(t: Tables):
    """The shipped Pythia-only fit when the table's Pythia rows are the ones it was trained
    on, else a fresh fit with the same settings (about 30 s)."""
    from ..models.coupling_ode import CouplingODE
    from ..models.persistence import load_fit

    if "pythia_fit" in t.cache:
        return t.cache["pythia_fit"]
    train = t.base[t.base["family"] == "Pythia"]
    shipped = load_fit("pythia")
    if _fit_matches(shipped, train):
        est, how = shipped, "shipped fit 'pythia'"
    else:
        params = {**shipped.get_params(), "progress": t.progress}
        est, how = CouplingODE(**params).fit(train), "refit on this table's Pythia rows"
    t.cache["pythia_fit"] = (est, how)
    return est, how


def _llama2_crosspredict(t: Tables) -> Outcome:
    from ..models.baselines import PolynomialBaseline
    from ..data.tables import BENCHMARKS, complete_models
    from .heldout import make_split, relative_mae_pct

    comp = complete_models(t.base)
    n_py = int((comp["family"] == "Pythia").sum())
    n_ll = int((comp["family"] == "Llama-2").sum())
    if n_py < 2 or n_ll < 2:
        return Outcome("", missing=f"needs >= 2 complete Pythia models (has {n_py}) and >= 2 "
                       f"complete Llama-2 models (has {n_ll})")
    split = make_split(t.base, "Llama-2", train=["Pythia"])
    sizes = split.targets["params_b"].to_numpy(dtype=float)
    actual = split.targets[list(BENCHMARKS)].to_numpy(dtype=float)
    est, how = _pythia_fit(t)
    ode = est.predict(split.initial, sizes)[list(BENCHMARKS)].to_numpy(dtype=float)
    poly = PolynomialBaseline(2).fit(split.train).predict(split.initial, sizes)
    poly = poly[list(BENCHMARKS)].to_numpy(dtype=float)
    e_ode, e_poly = relative_mae_pct(ode, actual), relative_mae_pct(poly, actual)
    ok = e_ode <= CLAIMED_LLAMA2_REL_MAE and e_ode < e_poly
    ratio = e_poly / e_ode if e_ode > 0 else math.inf
    ev = (f"coupling ODE trained on Pythia only ({how}), started from "
          f"{split.initial['model']}: relative MAE {e_ode:.2f}% over {actual.size} scores of "
          f"{', '.join(split.targets['model'])} (claim <= {CLAIMED_LLAMA2_REL_MAE:g}%); "
          f"degree-2 polynomial {e_poly:.2f}% ({ratio:.1f}x the ODE's error)")
    return Outcome(ev, met=ok, contradicted=not ok,
                   values={"rel_mae_pct": e_ode, "poly2_rel_mae_pct": e_poly})


def _qwen3(t: Tables) -> Outcome:
    from ..coupling.phase import phase_classifier
    from ..coupling.running import running_coupling

    rows = t.base[t.base["family"] == "Qwen3"].dropna(subset=["hellaswag", "truthfulqa"])
    if rows.empty:
        return Outcome("", missing="no Qwen3 model with HellaSwag and TruthfulQA in the base table")
    rows = rows.sort_values("params_b", kind="stable")
    pc = phase_classifier(rows["hellaswag"].to_numpy(), rows["truthfulqa"].to_numpy())
    phases = list(np.atleast_1d(pc.phase))
    margins = np.atleast_1d(pc.margin)
    pairs = running_coupling(rows)
    pairs = pairs[~pairs["skipped"]]
    tax_models = [m for m, p in zip(rows["model"], phases) if p == "tax"]
    neg_pairs = [f"{r.model_from}->{r.model_to}" for r in pairs.itertuples() if r.gamma12 <= 0]
    per = "; ".join(f"{m} ({p:g}B) {ph}, margin {mg:+.1f}"
                    for m, p, ph, mg in zip(rows["model"], rows["params_b"], phases, margins))
    ev = (f"{per}; {len(pairs)} usable pair(s)"
          + (f", gamma12 <= 0 for {', '.join(neg_pairs)}" if neg_pairs else ""))
    if tax_models or neg_pairs:
        return Outcome(ev, contradicted=True)
    sizes = rows["params_b"].nunique()
    if sizes < 2:
        return Outcome("", missing=f"only one Qwen3 size in the base table ({per}); 'at all "
                       "scales' needs at least two sizes (the head-level measurements at "
                       "1.7B the authors cite are not in the project)")
    return Outcome(ev, met=True)


def _swe_saturation(t: Tables) -> Outcome:
    from ..coupling.frontier import saturation

    if len(t.frontier) < 5:
        return Outcome("", missing=f"the frontier table has {len(t.frontier)} models; the "
                       "saturation rule needs five")
    s = saturation(t.frontier, "swe_bench", top=5, threshold=2.0)
    lead = ", ".join(f"{x['model']} {x['value']:g}" for x in s["leaders"])
    ev = (f"top five SWE-bench Verified: {lead}; spread {s['spread']:.2f} points "
          f"({'<' if s['spent'] else '>='} 2)")
    return Outcome(ev, met=bool(s["spent"]), values={"spread": s["spread"]})


def _ifeval_activation(t: Tables) -> Outcome:
    from scipy import stats

    ife, hle = _numeric_column(t.frontier, "ifeval"), _numeric_column(t.frontier, "hle")
    missing = [c for c, v in (("ifeval", ife), ("hle", hle)) if v is None]
    if missing:
        return Outcome("", missing=f"the frontier table has no {' or '.join(missing)} column "
                       "(IFEval and Humanity's Last Exam scores of frontier models)")
    both = ~np.isnan(ife) & ~np.isnan(hle)
    n = int(both.sum())
    if n < MIN_MODELS_CORR:
        return Outcome("", missing=f"{n} frontier model(s) have both IFEval and HLE; the test "
                       f"needs {MIN_MODELS_CORR}")
    if np.ptp(ife[both]) == 0 or np.ptp(hle[both]) == 0:
        return Outcome(f"{n} models, one of the scores is constant: no correlation defined")
    r, p_pos = stats.pearsonr(ife[both], hle[both], alternative="greater")
    _, p_neg = stats.pearsonr(ife[both], hle[both], alternative="less")
    ev = (f"IFEval vs HLE over {n} frontier models: r = {r:+.2f}, one-sided p = "
          f"{p_pos:.3g} for r > 0 (activated when p < {ALPHA:g})")
    return Outcome(ev, met=bool(p_pos < ALPHA), contradicted=bool(p_neg < ALPHA),
                   values={"r": float(r), "p": float(p_pos), "n": n})


def _lab_persistence(t: Tables) -> Outcome:
    from ..coupling.frontier import POST_CUTOFF, h_field, population_line, release_key

    df = t.frontier
    if "subset" not in df.columns or "release" not in df.columns:
        return Outcome("", missing="the frontier table has no 'subset'/'release' columns to "
                       "tell releases after the paper's freeze from the frozen panel")
    post = df["subset"].astype(str).str.strip().str.lower() == POST_CUTOFF
    if post.all() or (~post).sum() < 3:
        return Outcome("", missing="needs >= 3 frozen-panel models to fit the frozen line")
    line = population_line(df, n_bootstrap=0)  # frozen rows only (the default)
    h = h_field(df["swe_bench"].to_numpy(float), df["gpqa_diamond"].to_numpy(float),
                line.slope, line.intercept)
    flags = df["flags"].astype(str) if "flags" in df.columns else pd.Series([""] * len(df))
    checks, skipped = [], []
    for i in np.flatnonzero(post.to_numpy()):
        row = df.iloc[i]
        if "same_scores_as" in flags.iloc[i]:
            skipped.append(f"{row['model']} (same scores as an earlier model)")
            continue
        frozen = [j for j in range(len(df)) if not post.iloc[j] and df["lab"].iloc[j] == row["lab"]]
        if not frozen:
            skipped.append(f"{row['model']} (no earlier {row['lab']} release)")
            continue
        # release order; ties keep table order (the later row is taken as the later release)
        order = sorted(frozen, key=lambda j: (release_key(df["release"].iloc[j]), j))
        prev = order[-1]
        before = order[-2] if len(order) >= 2 else None
        excursion = before is not None and h[prev] < h[before] - EXCURSION_DROP
        if excursion:
            ok = h[i] > h[prev]
            how = (f"{df['model'].iloc[prev]} was an excursion (h {h[before]:+.1f} -> "
                   f"{h[prev]:+.1f}); {row['model']} h {h[i]:+.1f} "
                   f"{'recovers' if ok else 'does not recover'}")
        else:
            ok = (h[i] > 0) == (h[prev] > 0)
            how = (f"{row['model']} h {h[i]:+.1f} vs {df['model'].iloc[prev]} h {h[prev]:+.1f}: "
                   f"{'same side' if ok else 'side flipped'}")
        checks.append((ok, how))
    if not checks:
        return Outcome("no release after the freeze has an earlier release of its lab"
                       + (f" (skipped: {', '.join(skipped)})" if skipped else ""))
    n_ok = sum(ok for ok, _ in checks)
    ev = (f"frozen line {line.label}; {n_ok}/{len(checks)} post-freeze releases continue "
          f"their lab's trajectory: " + "; ".join(how for _, how in checks)
          + (f"; not counted: {', '.join(skipped)}" if skipped else ""))
    return Outcome(ev, met=n_ok == len(checks), contradicted=n_ok < len(checks),
                   values={"n_tested": len(checks), "n_consistent": n_ok})


def _nc4_cascade(t: Tables) -> Outcome:
    from ..coupling.frontier import saturation

    ife = _numeric_column(t.frontier, "ifeval")
    if ife is None:
        return Outcome("", missing="the frontier table has no 'ifeval' column (IFEval scores "
                       "of frontier models); model sizes beyond 200B are not in it either")
    n = int((~np.isnan(ife)).sum())
    if n < 5:
        return Outcome("", missing=f"{n} frontier model(s) have an IFEval score; the "
                       "saturation rule needs five")
    frame = t.frontier.assign(ifeval=ife)
    frame.attrs = dict(t.frontier.attrs)
    s = saturation(frame, "ifeval", top=5, threshold=2.0)
    lead = ", ".join(f"{x['model']} {x['value']:g}" for x in s["leaders"])
    ev = f"top five IFEval: {lead}; spread {s['spread']:.2f} points ({'<' if s['spent'] else '>='} 2)"
    return Outcome(ev, met=bool(s["spent"]), values={"spread": s["spread"]})


PREDICTIONS: tuple[Prediction, ...] = (
    Prediction(
        "olmo_gamma_zero",
        "OLMo's running coupling from 1B to 7B is zero (gamma12 = 0.000): TruthfulQA stays "
        "flat while HellaSwag rises.",
        None, "base table: OLMo rows (HellaSwag, TruthfulQA)",
        f"confirmed when |dTQA| <= {SCORE_RESOLUTION:g} point across an HS step >= "
        f"{MIN_HS_STEP:g} points between OLMo's smallest and largest model; refuted otherwise",
        _olmo_zero),
    Prediction(
        "ode_llama2_crosspredict",
        "The coupling ODE trained on Pythia alone predicts the held-out Llama-2 family from "
        "its smallest model at about 5.6% relative error, far better than a polynomial.",
        None, "base table: Pythia and Llama-2 rows (all five scores)",
        f"held-out protocol: confirmed when the ODE's relative MAE <= "
        f"{CLAIMED_LLAMA2_REL_MAE:g}% and below the degree-2 polynomial's; refuted otherwise",
        _llama2_crosspredict),
    Prediction(
        "qwen3_cooperative",
        "Curated Qwen3 is cooperative (bonus phase) at every scale: no alignment tax.",
        None, "base table: Qwen3 rows (HellaSwag, TruthfulQA) at two or more sizes",
        "refuted when any Qwen3 model is in the tax phase (TQA <= sqrt(0.187*HS)) or any "
        "pair has gamma12 <= 0; confirmed when none is and >= 2 sizes are present",
        _qwen3),
    Prediction(
        "swe_saturation_dec2026",
        "SWE-bench Verified saturates by December 2026: the top five frontier models within "
        "2 points of each other.",
        _dt.date(2026, 12, 31), "frontier table: swe_bench",
        "confirmed when the top five SWE-bench scores span < 2 points; refuted if not by the "
        "end of December 2026",
        _swe_saturation),
    Prediction(
        "ifeval_activation",
        "At the next critical scale (Nc3 ~ 114B) IFEval and Humanity's Last Exam activate: "
        "across frontier models their scores start to cooperate.",
        None, "frontier table: ifeval and hle columns",
        f"confirmed when Pearson r(IFEval, HLE) > 0 with one-sided p < {ALPHA:g} over >= "
        f"{MIN_MODELS_CORR} models; refuted when significantly negative; no deadline given",
        _ifeval_activation),
    Prediction(
        "lab_trajectory_persistence",
        "Labs keep their trajectories: a release stays on the side of the SWE -> GPQA trend "
        "its lab was on, and a coding excursion recovers at the lab's next release.",
        None, "frontier table: post-freeze releases and their labs' earlier releases",
        f"every release after the paper's freeze either keeps the sign of h of its lab's "
        f"latest earlier release or, when that one was an excursion (h fell > "
        f"{EXCURSION_DROP:g} points), has a higher h; refuted by any exception",
        _lab_persistence),
    Prediction(
        "nc4_cascade",
        "The cascade repeats at Nc4 (~200B+): IFEval saturates in turn and a new axis takes "
        "over.",
        None, "frontier table: ifeval column (and model sizes)",
        "confirmed when the top five IFEval scores span < 2 points; no deadline given",
        _nc4_cascade),
)
"""The seven predictions (ids are stable; statuses are computed, never stored)."""


def _status(pred: Prediction, out: Outcome, on: _dt.date) -> str:
    if out.missing:
        return "untestable"
    if out.met:
        return "confirmed"
    if out.contradicted or (pred.deadline is not None and on > pred.deadline):
        return "refuted"
    return "pending"


def evaluate_one(pred: Prediction, tables: Tables, on: _dt.date) -> dict[str, Any]:
    """Run one prediction's test: a dict with id, claim, deadline, status, evidence, rule."""
    out = pred.test(tables)
    status = _status(pred, out, on)
    evidence = out.evidence
    if out.missing:
        evidence = (f"{out.missing}" + (f" ({out.evidence})" if out.evidence else ""))
    elif status == "refuted" and not out.contradicted and pred.deadline is not None:
        evidence = f"deadline {pred.deadline.isoformat()} passed without the test met: {evidence}"
    elif status == "pending":
        when = f"deadline {pred.deadline.isoformat()}" if pred.deadline else "no deadline"
        evidence = f"not met yet ({when}): {evidence}"
    return {"id": pred.id, "claim": pred.claim,
            "deadline": pred.deadline.isoformat() if pred.deadline else None,
            "status": status, "evidence": evidence, "rule": pred.rule, "needs": pred.needs,
            "values": {k: (float(v) if isinstance(v, (np.floating, float)) else v)
                       for k, v in out.values.items()}}


@scoped_x64
def evaluate(base=None, frontier=None, *, on: _dt.date | str | None = None,
             ids: Sequence[str] | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Status of every prediction from the data, computed now.

    ``base``/``frontier``: a table (DataFrame) or CSV path; None takes the shipped one.
    ``on``: the date deadlines are compared with (a ``date`` or 'YYYY-MM-DD'; default
    today). ``ids``: evaluate only these. Returns one dict per prediction: ``id``,
    ``claim``, ``deadline`` (ISO date or None), ``status`` (one of :data:`STATUSES`),
    ``evidence`` (what was computed), ``rule`` (the test in words), ``needs`` (the data),
    ``values`` (the numbers behind the evidence). ``progress``: show a progress line
    when the Pythia-only ODE has to be refit (a table whose Pythia rows differ from the
    shipped fit's; about 30 s).
    """
    if on is None:
        on = today()
    elif isinstance(on, str):
        try:
            on = _dt.date.fromisoformat(on)
        except ValueError:
            raise InputError(f"date '{on}' is not YYYY-MM-DD") from None
    known = {p.id: p for p in PREDICTIONS}
    if ids:
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise InputError(f"unknown prediction id(s) {unknown}; known: {', '.join(known)}")
    tables = Tables(base, frontier, progress=progress)
    chosen = [known[i] for i in ids] if ids else list(PREDICTIONS)
    return [evaluate_one(p, tables, on) for p in chosen]
