"""The ODE explorer's family helpers, free of Streamlit: which families it offers (the fit's
and a user's own from ``--data``), their fitted parameters, the labels that keep the ODE's
field parameter apart from the coupling-level Nc, and what the "type scores" form shows
before anything is typed."""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping

import numpy as np

from . import core

SLIDER_KEYS = ("ode_nc", *(f"ode_h_{b}" for b in core.BENCHMARKS))


def offered_families(ex: core.Explorer) -> list[str]:
    """The fit's families, then every other family of the table with ≥ 2 complete models
    (a user's own, from ``--data``), whose sources are fitted on first use."""
    fitted = list(ex.fitted_families())
    rows = ex.complete_models()
    counts = rows.groupby("family", sort=False)["model"].count()
    return fitted + [str(f) for f, n in counts.items() if n >= 2 and f not in fitted]


def family_params(ex: core.Explorer, family: str):
    """The family's FamilyParams: the fit's own, or fitted once (``fit_family``, field held)
    on a copy of the model for a family the fit does not hold."""
    if family in ex.model.families_:
        return ex.model.families_[family]

    def fit():
        model = copy.copy(ex.model)
        model.families_, model.starts_ = dict(model.families_), dict(model.starts_)
        model.progress = False
        return model.fit_family(ex.base[ex.base["family"] == family], family)

    return ex._cached(f"family-params-{family}", fit)


def fitted_slider_values(ex: core.Explorer, family: str) -> dict[str, float]:
    """Slider key → the family's fitted value (log10 Nc in billions, h per benchmark)."""
    p = family_params(ex, family)
    out = {"ode_nc": round(float(np.asarray(p.log10_nc)) - 9.0, 2)}
    out.update({f"ode_h_{b}": round(float(np.asarray(p.h)[k]), 2)
                for k, b in enumerate(core.BENCHMARKS)})
    return out


def sliders_need_reset(state: Mapping[str, Any], family: str) -> bool:
    """True when the family changed or a slider's value is gone: Streamlit drops a widget's
    state on a run that does not draw it (the "type scores" form before it is complete),
    and the slider would come back at its minimum."""
    return state.get("ode_for") != family or any(k not in state for k in SLIDER_KEYS)


def typed_start(typed: Mapping[str, Any]) -> tuple[dict | None, str, list[str]]:
    """(start, level, messages) of the "type scores" form: ``level`` is "info" while
    nothing is typed (a prompt, not an error), "error" for a bad or partial entry, "" when
    the start is complete."""
    if all(not str(v or "").strip() for v in typed.values()):
        return None, "info", ["Type the start model's size in billions and its five "
                              "scores in percent to solve from it."]
    inp, problems = core.parse_model(typed.get("size"),
                                     {b: typed.get(b) for b in core.BENCHMARKS})
    if problems or inp is None or not inp.complete:
        return None, "error", problems or ["type the size and all five scores"]
    return {"params_b": inp.params_b, **inp.scores}, "", []


def field_nc_label(log10_nc_b: float) -> str:
    """The slider's Nc under an honest name: a parameter of the ODE's field."""
    return (f"ODE field parameter Nc = {_fmt_b(10 ** log10_nc_b)} (a parameter of the "
            "coupling ODE, not a measurement of the family's Nc)")


def coupling_nc_label(ex: core.Explorer, family: str) -> str:
    """The family's Nc from the coupling-level posterior (docs/nc.md #4) when it is ready."""
    post = ex.posterior()
    if post is None:
        return "coupling-level Nc (posterior): being sampled in the background…"
    if family not in post.families:
        return f"coupling-level Nc (posterior): {family} has no usable γ12 pair in the fit"
    r = post.row(family)
    return (f"coupling-level Nc (posterior) of {family}: {_fmt_b(r['nc_median_b'])}, "
            f"68% [{_fmt_b(r['nc_ci68_lo_b'])}, {_fmt_b(r['nc_ci68_hi_b'])}], "
            f"95% [{_fmt_b(r['nc_ci95_lo_b'])}, {_fmt_b(r['nc_ci95_hi_b'])}]")


def deadline_suffix(deadline: Any) -> str:
    """" (deadline 2026-12-31)", or "" when a prediction has none (None, NaN, empty)."""
    if deadline is None or (isinstance(deadline, float) and math.isnan(deadline)):
        return ""
    text = str(deadline).strip()
    return f" (deadline {text})" if text and text.lower() not in ("nan", "nat", "none") else ""


def _fmt_b(v: float) -> str:
    if not math.isfinite(v):
        return "∞" if v > 0 else "—"
    return f"{v:.3g}B" if v >= 1 else f"{v * 1e3:.3g}M"
