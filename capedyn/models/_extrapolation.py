"""What a prediction from a saved fit can be trusted for: the range the fit was trained on,
and the checks a prediction is reported with.

The coupling ODE integrates in a bounded latent state (:mod:`capedyn.dynamics.state`), so an
initial score below a benchmark's floor (ten points under chance) or at 100 is moved
inside the range before integrating; :func:`check_prediction` says so. It also flags a
start, or requested sizes, outside the sizes and scores the fit was trained on, where the
prediction is an extrapolation of the learned field.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..dynamics.state import from_state, to_state
from ..data.tables import BENCHMARKS

__all__ = ["training_range", "range_from_meta", "check_prediction"]

_LABEL = {"hellaswag": "HellaSwag", "truthfulqa": "TruthfulQA", "arc": "ARC",
          "winogrande": "WinoGrande", "mmlu": "MMLU"}


def training_range(trajs: Sequence[Any]) -> dict[str, Any]:
    """Sizes (billions) and per-benchmark scores (percent) spanned by the trained models."""
    sizes = np.concatenate([np.asarray(t.params_b, float) for t in trajs])
    scores = np.concatenate([np.asarray(t.scores, float) for t in trajs])
    return {"params_b": [float(sizes.min()), float(sizes.max())],
            "scores": {b: [float(scores[:, k].min()), float(scores[:, k].max())]
                       for k, b in enumerate(BENCHMARKS)},
            "n_models": int(sizes.size)}


def range_from_meta(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The training range of a saved fit: as recorded, or rebuilt from its training table
    when that table is still the one the fit recorded (same SHA-256); None otherwise."""
    recorded = meta.get("training_range")
    if recorded:
        return dict(recorded)
    data = meta.get("data") or {}
    try:
        from importlib import resources

        from ..data.tables import load_base_models

        source = str(data.get("source", ""))
        if source.startswith("<capedyn>/"):
            text = resources.files("capedyn.benchmarks_data").joinpath(
                Path(source).name).read_text("utf-8")
            path = None
        else:
            path = Path(source)
            text = path.read_text(encoding="utf-8")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != data.get("csv_sha256"):
            return None
        df = load_base_models(path)
    except Exception:  # the table moved, changed or cannot be read: no range to rebuild
        return None
    names = {m for f in meta["families"] for m in f["models"]}
    rows = df[df["model"].isin(names)].dropna(subset=list(BENCHMARKS))
    if rows.empty:
        return None
    sizes, scores = rows["params_b"].to_numpy(float), rows[list(BENCHMARKS)].to_numpy(float)
    return {"params_b": [float(sizes.min()), float(sizes.max())],
            "scores": {b: [float(scores[:, k].min()), float(scores[:, k].max())]
                       for k, b in enumerate(BENCHMARKS)},
            "n_models": int(len(rows))}


def check_prediction(trained: Mapping[str, Any] | None, initial_scores: Sequence[float],
                     initial_params_b: float, sizes: Sequence[float]) -> dict[str, Any]:
    """``clipped``: initial scores the ODE had to move inside its range (benchmark, given,
    used); ``start_outside``: reasons the start lies outside the training range;
    ``sizes_outside``: the requested sizes beyond the trained sizes; ``notes``: all of it
    in sentences. ``trained`` None means the range is unknown (said in the notes)."""
    s0 = np.asarray(initial_scores, float)
    used = np.asarray(from_state(to_state(s0)), float)
    clipped = [{"benchmark": b, "given": float(g), "used": round(float(u), 4)}
               for b, g, u in zip(BENCHMARKS, s0, used) if abs(g - u) > 1e-3]
    notes = [f"initial {_LABEL[c['benchmark']]} {c['given']:g} lies outside the range the "
             f"ODE can represent; it started from {c['used']:.4g} instead" for c in clipped]
    out: dict[str, Any] = {"clipped": clipped, "start_outside": [], "sizes_outside": [],
                           "training_range": dict(trained) if trained else None}
    if not trained:
        notes.append("the training range of this fit is unknown (its table is not "
                     "available), so extrapolation is not checked")
        out["notes"] = notes
        return out
    lo, hi = trained["params_b"]
    p0 = float(initial_params_b)
    if not lo <= p0 <= hi:
        out["start_outside"].append(f"size {p0:g}B outside the trained {lo:g}-{hi:g}B")
    for b, v in zip(BENCHMARKS, s0):
        blo, bhi = trained["scores"][b]
        if not blo <= v <= bhi:
            out["start_outside"].append(f"{_LABEL[b]} {v:g} outside the trained "
                                        f"{blo:g}-{bhi:g}")
    out["sizes_outside"] = [float(s) for s in sizes if not lo <= float(s) <= hi]
    if out["start_outside"]:
        notes.append("the start lies outside the training range (" +
                     "; ".join(out["start_outside"]) + "): every prediction is an extrapolation")
    if out["sizes_outside"]:
        notes.append(f"sizes {', '.join(f'{s:g}B' for s in out['sizes_outside'])} lie beyond "
                     f"the trained sizes {lo:g}-{hi:g}B: extrapolations")
    out["notes"] = notes
    return out
