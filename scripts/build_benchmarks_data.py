"""Build ``benchmarks_data/*.csv`` from the authors' published files in ``../shared/data/cape``.

Run from the repository root::

    python scripts/build_benchmarks_data.py [--cape ../shared/data/cape]
        [--pythia-runs ../shared/data/leaderboard_v1/pythia_both_runs.csv]

It writes three tables: ``base_models.csv`` (the default, measured scores only; Pythia as
two families, the standard run and the deduplicated run, from the leaderboard's results
table), ``base_models_paper.csv`` (the authors' table as they used it, with their mixed
Pythia rows) and ``frontier_models.csv``.

Every curation rule applied here is described in ``benchmarks_data/DATA.md``; the script
is the executable form of that card, so the CSVs can be regenerated and audited.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from pathlib import Path

SCORES = ("hellaswag", "truthfulqa", "arc", "winogrande", "mmlu")
SHORT = {"hellaswag": "HS", "truthfulqa": "TQA", "arc": "ARC", "winogrande": "WG", "mmlu": "MMLU"}

# GPT-J and GPT-NeoX are EleutherAI models of other architectures, filed under Pythia upstream.
REFILED = {"GPT-J-6B": "EleutherAI", "GPT-NeoX-20B": "EleutherAI"}
# Two Gemma generations share a 4B size; they are different recipes, hence different families.
GEMMA_SPLIT = {"Gemma-3-4B": "Gemma-3", "Gemma-4-E4B": "Gemma-4"}
# cape_26 duplicates of rows the leaderboard (the defined protocol) also provides.
DROPPED_DUPLICATES = {"Llama3-8B": "Llama-3-8B", "Llama3-70B": "Llama-3-70B"}
ESTIMATED = {"Pythia-6.9B", "Pythia-12B"}  # ai_free_energy_data.json metadata
SOURCE_OF_TAG = {"leaderboard": "HF-LLB-v1", "cape_26": "cape_26"}

# Pythia from the leaderboard's results table: leaderboard name (without "EleutherAI/")
# -> size in billions, for each training run. The standard 2.8B and 6.9B are listed under
# the names the suite used before its rename (2.7b, 6.7b); the standard 1B has no row.
# The standard 1.4B has two rows (pythia-1.3b, its old name, and pythia-1.4b): two
# evaluations; the row under the current name is kept and the other is named in a flag.
PYTHIA_RUNS_SOURCE = "HF-LLB-v1-table"
PYTHIA_STANDARD = {"pythia-70m": 0.07, "pythia-160m": 0.16, "pythia-410m": 0.41,
                   "pythia-1.4b": 1.4, "pythia-2.7b": 2.8, "pythia-6.7b": 6.9, "pythia-12b": 12.0}
PYTHIA_DEDUPED = {"pythia-70m-deduped": 0.07, "pythia-160m-deduped": 0.16,
                  "pythia-410m-deduped": 0.41, "pythia-1b-deduped": 1.0,
                  "pythia-1.4b-deduped": 1.4, "pythia-2.8b-deduped": 2.8,
                  "pythia-6.9b-deduped": 6.9, "pythia-12b-deduped": 12.0}
PYTHIA_SECOND_EVALUATION = {"pythia-1.4b": "pythia-1.3b"}
PYTHIA_FAMILIES = ("Pythia", "Pythia-deduped")


def _load(cape: Path, name: str):
    with open(cape / name) as fh:
        return json.load(fh)


def _leaderboard_index(cape: Path) -> dict[str, dict]:
    return {row["Model"]: row for row in _load(cape, "leaderboard_all_scores.json")}


def _cape26_index(cape: Path) -> dict[str, dict]:
    rows = _load(cape, "cape_26models_9families.json")["ranking_by_hD"]
    return {row["name"]: row for row in rows}


def _conflict(row: dict, other: dict, tol: float = 1.0) -> list[str]:
    out = []
    for col in SCORES:
        a, b = row.get(SHORT[col]), other.get(SHORT[col])
        if a is not None and b is not None and abs(a - b) > tol:
            out.append(f"{SHORT[col]} {a:g} vs {b:g}")
    return out


def paper_rows(cape: Path) -> list[dict]:
    """The authors' base-model table as they used it (``base_models_paper.csv``): their
    Pythia rows mix the standard and the deduplicated run, and the 6.9B and 12B rows are
    partly estimated."""
    consolidated = _load(cape, "base_models_consolidated.json")["models"]
    leaderboard = _leaderboard_index(cape)
    cape26 = _cape26_index(cape)
    cape26_alias = {"Falcon-7B": "Falcon-7B", "Falcon-40B": "Falcon-40B",
                    "Llama-3-8B": "Llama3-8B", "Llama-3-70B": "Llama3-70B"}
    rows = []
    for m in consolidated:
        name = m["name"]
        if name in DROPPED_DUPLICATES:
            continue
        flags = []
        family = m["family"]
        if name in REFILED:
            family = REFILED[name]
            flags.append("refiled_from_pythia")
        if name in GEMMA_SPLIT:
            family = GEMMA_SPLIT[name]
            flags.append("split_from_gemma")
        if name == "Gemma-4-E4B":
            flags.append("instruct_checkpoint")
        source = SOURCE_OF_TAG.get(m["source"], "base_models_consolidated")
        lb = leaderboard.get(name)
        if lb is not None and lb["Source"] != "HF-LLB-v1":
            source = lb["Source"]
            flags.append("not_llb_v1_protocol")
        if source == "base_models_consolidated":
            flags.append("origin_unverified")
        if name in ESTIMATED:
            flags.append("partly_estimated")
        if name in cape26_alias and source == "HF-LLB-v1":
            diffs = _conflict(m, cape26[cape26_alias[name]])
            if diffs:
                flags.append("cape26_disagrees(" + ", ".join(diffs) + ")")
        if name in DROPPED_DUPLICATES.values():
            flags.append("duplicate_resolved")
        if any(m.get(SHORT[c]) is None for c in SCORES):
            flags.append("incomplete")
        row = {"model": name, "family": family, "params_b": m["N_B"]}
        row.update({c: m.get(SHORT[c]) for c in SCORES})
        row["source"] = source
        row["flags"] = ";".join(flags)
        rows.append(row)
    rows.sort(key=lambda r: (r["family"].lower(), r["params_b"]))
    return rows


def _size_label(params_b: float) -> str:
    return f"{params_b * 1000:g}M" if params_b < 1 else f"{params_b:g}B"


def pythia_rows(pythia_runs: Path) -> list[dict]:
    """Pythia, both training runs, from the leaderboard's results table (percent)."""
    with open(pythia_runs, newline="") as fh:
        table = {r["model_id"].removeprefix("EleutherAI/"): r for r in csv.DictReader(fh)}
    rows = []
    for family, run in zip(PYTHIA_FAMILIES, (PYTHIA_STANDARD, PYTHIA_DEDUPED)):
        suffix = "-deduped" if family == "Pythia-deduped" else ""
        for lb_name, size in run.items():
            r = table[lb_name]
            flags = []
            current = f"pythia-{_size_label(size).lower()}{suffix}"
            if lb_name != current:
                flags.append(f"renamed_from({lb_name})")
            if lb_name in PYTHIA_SECOND_EVALUATION:
                flags.append(f"also_evaluated_as({PYTHIA_SECOND_EVALUATION[lb_name]})")
            row = {"model": f"Pythia-{_size_label(size)}{suffix}", "family": family,
                   "params_b": size}
            row.update({c: float(r[c]) for c in SCORES})
            row["source"] = PYTHIA_RUNS_SOURCE
            row["flags"] = ";".join(flags)
            rows.append(row)
    return rows


def base_rows(cape: Path, pythia_runs: Path) -> list[dict]:
    """The default table (``base_models.csv``): the authors' rows with their mixed Pythia
    family replaced by the two measured training runs."""
    rows = [r for r in paper_rows(cape) if r["family"] != "Pythia"] + pythia_rows(pythia_runs)
    rows.sort(key=lambda r: (r["family"].lower(), r["params_b"]))
    return rows


def frontier_rows(cape: Path) -> list[dict]:
    frozen = _load(cape, "frontier_34models.json")["models"]
    dates = {m["name"]: m["date"] for m in _load(cape, "frontier_final_consolidated.json")["models"]}
    rows = []
    for m in frozen:
        rows.append({"model": m["name"], "lab": m["lab"], "swe_bench": m["swe"],
                     "gpqa_diamond": m["gpqa"], "release": dates.get(m["name"], ""),
                     "subset": m["subset"].lower(), "source": "frontier_34models.json", "flags": ""})
    frozen_scores = {(r["swe_bench"], r["gpqa_diamond"]): r["model"] for r in rows}
    for m in _load(cape, "post_cutoff_april2026.json")["models"]:
        twin = frozen_scores.get((m["swe"], m["gpqa"]))
        rows.append({"model": m["name"], "lab": m["lab"], "swe_bench": m["swe"],
                     "gpqa_diamond": m["gpqa"], "release": m["date"], "subset": "post_cutoff",
                     "source": "post_cutoff_april2026.json",
                     "flags": f"same_scores_as({twin})" if twin else ""})
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    os.replace(tmp, path)


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cape", type=Path, default=here.parent / "shared" / "data" / "cape")
    parser.add_argument("--pythia-runs", type=Path,
                        default=here.parent / "shared" / "data" / "leaderboard_v1" / "pythia_both_runs.csv")
    parser.add_argument("--out", type=Path, default=here / "benchmarks_data")
    args = parser.parse_args()
    written = {"base_models.csv": base_rows(args.cape, args.pythia_runs),
               "base_models_paper.csv": paper_rows(args.cape),
               "frontier_models.csv": frontier_rows(args.cape)}
    for name, rows in written.items():
        _write_csv(args.out / name, rows)
    print("wrote " + ", ".join(str(args.out / name) for name in written))


if __name__ == "__main__":
    main()
