"""Build the internal-coupling and steering tables of ``benchmarks_data/`` from the
authors' published files in ``../shared/data/cape``.

Run from the repository root::

    python scripts/build_steering_data.py [--cape ../shared/data/cape]

Writes ``internal_coupling.csv`` (one row per model and measure),
``internal_coupling_layers.csv`` (one row per model and layer), ``steering_results.csv``
(one row per steered prompt) and ``steering_runs.csv`` (one row per published run). The
rules are described in ``benchmarks_data/DATA.md``; this script is their executable form.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from pathlib import Path

# Nominal sizes (billions of parameters) of models whose files do not state one.
SIZE_B = {
    "EleutherAI/pythia-1b-deduped": 1.0, "EleutherAI/pythia-6.9b-deduped": 6.9,
    "meta-llama/Llama-2-7b-hf": 7.0, "meta-llama/Llama-2-13b-hf": 13.0,
    "meta-llama/Llama-2-70b-hf": 70.0, "facebook/opt-1.3b": 1.3, "facebook/opt-6.7b": 6.7,
    "facebook/opt-13b": 13.0, "facebook/opt-30b": 30.0, "facebook/opt-66b": 66.0,
    "allenai/OLMo-2-1124-13B": 13.0, "allenai/OLMo-2-0325-32B": 32.0,
    "mistralai/Mixtral-8x7B-v0.1": 46.7, "Qwen/Qwen2.5-72B": 72.0,
    "meta-llama/Llama-3.1-70B": 70.0, "google/gemma-3-4b-pt": 4.0,
    "google/gemma-4-E4B-it": 4.0, "Qwen/Qwen3-8B": 8.0,
}
FAMILY = {"pythia": "Pythia", "llama-2": "Llama-2", "opt": "OPT", "olmo-2": "OLMo-2",
          "mixtral": "Mixtral", "qwen2.5": "Qwen2.5", "qwen3": "Qwen3", "llama-3.1": "Llama-3.1",
          "gemma-3": "Gemma-3", "gemma-4": "Gemma-4"}
# short names used by the two small Llama-2 files
HF_ID = {"Llama-2-7B": "meta-llama/Llama-2-7b-hf", "Llama-2-13B": "meta-llama/Llama-2-13b-hf"}

COUPLING_COLUMNS = ("model", "family", "params_b", "measure", "pair", "value", "n_layers",
                    "n_units", "cooperative_pct", "competing_count", "early", "mid", "late",
                    "layer_min", "layer_max", "source", "flags")
LAYER_COLUMNS = ("model", "layer", "coupling", "source")
RESULT_COLUMNS = ("model", "run", "probe_layer", "prompt_name", "prompt", "phase",
                  "cos_truth", "strength", "unsteered", "steered", "changed_reported",
                  "text_identical", "source")
RUN_COLUMNS = ("model", "run", "phase", "probe_layer", "n_prompts", "n_changed_reported",
               "n_changed_by_text", "n_judged_correct", "source")


def _load(cape: Path, name: str):
    with open(cape / name) as fh:
        return json.load(fh)


def _family(model: str) -> str:
    low = model.lower().split("/")[-1].replace("llama-2", "llama-2").replace("olmo-2", "olmo-2")
    for key in sorted(FAMILY, key=len, reverse=True):
        if low.startswith(key) or low.startswith(key.replace("-", "")):
            return FAMILY[key]
    raise ValueError(f"no family for {model}")


def _row(**kw) -> dict:
    return {c: kw.get(c, "") for c in COUPLING_COLUMNS}


def _layer_flags(per_layer: list[float]) -> tuple[float, float, list[str]]:
    lo, hi = min(per_layer), max(per_layer)
    flags = []
    if hi - lo < 1e-6:  # every layer the same to at least six decimals
        flags.append(f"per_layer_constant(spread={hi - lo:.1e})")
    return lo, hi, flags


def unit_rows(cape: Path) -> tuple[list[dict], list[dict]]:
    """Per-unit ('head') net coupling: the layer_*_tl, *_internal, *_nc2, OLMo-2, Mixtral,
    nc3 and Qwen-generation files."""
    rows, layers = [], []

    def add(model, source, net, per_layer=None, **kw):
        flags = list(kw.pop("flags", []))
        lo = hi = ""
        if per_layer:
            lo, hi, more = _layer_flags(per_layer)
            flags += more
            layers.extend({"model": model, "layer": i, "coupling": v, "source": source}
                          for i, v in enumerate(per_layer))
        rows.append(_row(model=model, family=_family(model),
                         params_b=kw.pop("params_b", SIZE_B.get(model, "")), measure="unit_net",
                         value=net, layer_min=lo, layer_max=hi, source=source,
                         flags=";".join(flags), **kw))

    for path in sorted(cape.glob("layer_*_tl.json")):
        d = _load(cape, path.name)
        add(d["model"], path.name, d["net_coupling"], d["per_layer_coupling"],
            n_layers=d["n_layers"], n_units=d["total_heads"],
            cooperative_pct=d["cooperative_pct"], competing_count=d["competing_count"],
            early=d["early_coupling"], mid=d["mid_coupling"], late=d["late_coupling"],
            flags=[f"bottleneck_verdict({d['bottleneck']})"])
    for name in ("llama2_7b_internal.json", "llama2_13b_internal.json"):
        d = _load(cape, name)
        add(HF_ID[d["model"]], name, d["net"], n_layers=d["layers"],
            n_units=d["layers"] * d["heads"], cooperative_pct=d["coop_pct"],
            competing_count=d["competing"], early=d["early"], mid=d["mid"], late=d["late"],
            flags=["duplicate_of_layer_tl_file", "rounded_to_3dp"])
    for name in ("llama2_70b_internal_nc2.json", "opt30b_internal_nc2.json",
                 "opt66b_internal_nc2.json"):
        d = _load(cape, name)
        add(d["model_name"], name, d["net_coupling"], d["per_layer_coupling"],
            n_layers=d["n_layers"], n_units=d["total_units"],
            cooperative_pct=d["cooperative_pct"], competing_count=d["competing_count"],
            early=d["early"], mid=d["mid"], late=d["late"])
    for name in ("olmo2_13b_result.json", "olmo2_32b_result.json", "moe_mixtral7b_result.json",
                 "nc3_qwen72b_result.json", "nc3_llama31_70b_result.json"):
        d = _load(cape, name)
        flags = ["total_params_moe(12.9B_active)"] if "Mixtral" in d["model"] else []
        add(d["model"], name, d["net"], d.get("per_layer"), n_layers=d["n_layers"],
            n_units=d.get("n_units", ""), cooperative_pct=d["coop_pct"],
            competing_count=d["competing"], early=d.get("early", ""), mid=d.get("mid", ""),
            late=d.get("late", ""), flags=flags)
    gen = _load(cape, "qwen_generation.json")
    for fam in ("qwen2.5", "qwen3"):
        for short, d in gen[fam].items():
            flags = []
            if d["net"] == 0.83:
                flags.append("value_0.83_repeated")
            if d["coop"] + d["comp"] < 0.5:
                flags.append(f"cooperative_{100 * d['coop']:g}pct_competing_"
                             f"{100 * d['comp']:g}pct")
            add(f"Qwen/{short}", "qwen_generation.json", d["net"], params_b=d["params_B"],
                n_layers=d["layers"], n_units=d["total"], cooperative_pct=100 * d["coop"],
                competing_count=round(d["comp"] * d["total"]), flags=flags)
    _mark_repeated_nets(rows)
    return rows, layers


def _mark_repeated_nets(rows: list[dict]) -> None:
    """Flag models of one family whose net coupling agrees to seven decimals."""
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        if "duplicate_of_layer_tl_file" in r["flags"] or r["source"] == "qwen_generation.json":
            continue
        by.setdefault((r["family"], round(float(r["value"]), 7)), []).append(r)
    for group in by.values():
        if len(group) > 1:
            for r in group:
                others = "+".join(o["model"].split("/")[-1] for o in group if o is not r)
                r["flags"] = ";".join(filter(None, [r["flags"], f"same_net_as({others})"]))


def pair_rows(cape: Path) -> list[dict]:
    """Benchmark-pair coupling of Gemma-3, Gemma-4 and Qwen3-8B, and the base-model values
    those files quote for comparison."""
    rows = []
    for name in ("gemma3_results.json", "gemma4_results.json", "qwen3_8b_results.json"):
        d = _load(cape, name)
        flags = ["instruct_checkpoint"] if d["model"].endswith("-it") else []
        for pair, v in d["coupling"].items():
            rows.append(_row(model=d["model"], family=_family(d["model"]),
                             params_b=SIZE_B[d["model"]], measure="pair_net", pair=pair,
                             value=v["net"], n_layers=d.get("n_layers", ""), source=name,
                             flags=";".join(flags + [f"bottleneck({v['bn']})"])))
    g4 = _load(cape, "gemma4_results.json")["comparison_to_base"]
    rows.append(_row(model="google/gemma-4-E4B (base)", family="Gemma-4", params_b=4.0,
                     measure="pair_net", pair="HS_TQA", value=g4["base_HS_TQA"],
                     source="gemma4_results.json",
                     flags="quoted_for_comparison;no_file_of_its_own"))
    q = _load(cape, "qwen3_8b_results.json")["comparison_to_qwen25"]
    rows.append(_row(model="Qwen/Qwen2.5 (size not stated)", family="Qwen2.5",
                     measure="pair_net", pair="HS_TQA", value=q["qwen25_HS_TQA"],
                     source="qwen3_8b_results.json",
                     flags="quoted_for_comparison;no_file_of_its_own;size_not_stated"))
    return rows


def projection_rows(cape: Path) -> list[dict]:
    """Hidden-state versus output-projection coupling (intervention_results_v2.json)."""
    rows = []
    for key, d in _load(cape, "intervention_results_v2.json").items():
        size = float(key.split("_")[1].rstrip("bm")) / (1000 if key.endswith("m") else 1)
        model = f"EleutherAI/pythia-{key.split('_')[1]}"
        for measure, field in (("hidden_cosine", "hidden_coupling"),
                               ("output_projection_cosine", "original_proj_coupling"),
                               ("wider_projection_cosine", "wider_proj_coupling")):
            rows.append(_row(model=model, family="Pythia", params_b=size, measure=measure,
                             value=d[field]["cosine"], source="intervention_results_v2.json",
                             flags=f"mean_per_prompt({d[field]['mean_per_prompt']:.4f})"))
    return rows


def steering_rows(cape: Path) -> tuple[list[dict], list[dict]]:
    prompts, runs = [], []
    for path in sorted(cape.glob("self_align*.json")):
        d = _load(cape, path.name)
        if isinstance(d, list) or "details" not in d and "results" not in d:
            for r in d if isinstance(d, list) else [d]:
                runs.append({"model": r["model"], "run": path.stem, "phase": r["phase"],
                             "probe_layer": "", "n_prompts": r["total"],
                             "n_changed_reported": r["changed"], "n_changed_by_text": "",
                             "n_judged_correct": "", "source": path.name})
            continue
        details = d.get("details") or d["results"]
        demo = "results" in d
        for x in details:
            before, after = (x["normal"], x["corrected"]) if demo else (x["original"], x["steered"])
            prompts.append({
                "model": d["model"], "run": path.stem, "probe_layer": d["probe_layer"],
                "prompt_name": x.get("name", ""), "prompt": x["prompt"],
                "phase": x.get("phase", ""), "cos_truth": x.get("cos_truth", ""),
                "strength": x.get("correction_strength", ""), "unsteered": before,
                "steered": after, "changed_reported": x["changed"],
                "text_identical": before == after, "source": path.name})
        mine = [p for p in prompts if p["run"] == path.stem]
        runs.append({"model": d["model"], "run": path.stem,
                     "phase": ";".join(sorted({p["phase"] for p in mine if p["phase"]})),
                     "probe_layer": d["probe_layer"], "n_prompts": d["n_total"],
                     "n_changed_reported": d["n_changed"],
                     "n_changed_by_text": sum(not p["text_identical"] for p in mine),
                     "n_judged_correct": "", "source": path.name})
    return prompts, runs


def _write_csv(path: Path, columns, rows: list[dict]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cape", type=Path, default=here.parent / "shared" / "data" / "cape")
    parser.add_argument("--out", type=Path, default=here / "benchmarks_data")
    args = parser.parse_args()
    units, layers = unit_rows(args.cape)
    _write_csv(args.out / "internal_coupling.csv", COUPLING_COLUMNS,
               units + pair_rows(args.cape) + projection_rows(args.cape))
    _write_csv(args.out / "internal_coupling_layers.csv", LAYER_COLUMNS, layers)
    prompts, runs = steering_rows(args.cape)
    _write_csv(args.out / "steering_results.csv", RESULT_COLUMNS, prompts)
    _write_csv(args.out / "steering_runs.csv", RUN_COLUMNS, runs)
    print(f"wrote internal_coupling.csv, internal_coupling_layers.csv, steering_results.csv "
          f"and steering_runs.csv in {args.out}")


if __name__ == "__main__":
    main()
