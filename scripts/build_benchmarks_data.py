"""Build ``benchmarks_data/*.csv`` from the authors' published files in ``../shared/data/cape``.

Run from the repository root::

    python scripts/build_benchmarks_data.py [--cape ../shared/data/cape]

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


def base_rows(cape: Path) -> list[dict]:
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
    parser.add_argument("--out", type=Path, default=here / "benchmarks_data")
    args = parser.parse_args()
    _write_csv(args.out / "base_models.csv", base_rows(args.cape))
    _write_csv(args.out / "frontier_models.csv", frontier_rows(args.cape))
    print(f"wrote {args.out / 'base_models.csv'} and {args.out / 'frontier_models.csv'}")


if __name__ == "__main__":
    main()
