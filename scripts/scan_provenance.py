"""Scan a base-model table for rows that carry another model's (or training run's) scores.

Run from the repository root::

    python scripts/scan_provenance.py [--data CSV | --data @paper] [--json]
        [--cape ../shared/data/cape] [--pythia-runs ../shared/data/leaderboard_v1/pythia_both_runs.csv]

Every row is compared with the authors' leaderboard collections
(``leaderboard_scores_collected.csv``, ``leaderboard_all_scores.json``) and the
leaderboard's Pythia results table by mean absolute score difference
(:func:`capedyn.data.provenance.scan_provenance`). Rows whose closest reference carries another
name are listed as ``matches_other``; rows without any reference of their own name as
``no_reference``. Exit status 1 when a row matches another model, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    here = Path(__file__).resolve().parent.parent
    shared = here.parent / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None,
                   help="base-model CSV, or @paper / @measured for a shipped table "
                        "(default: the shipped measured table); estimated rows included")
    p.add_argument("--cape", type=Path, default=shared / "cape",
                   help="folder of the authors' leaderboard collections")
    p.add_argument("--pythia-runs", type=Path,
                   default=shared / "leaderboard_v1" / "pythia_both_runs.csv",
                   help="the leaderboard's results table for Pythia (both runs)")
    p.add_argument("--match-tol", type=float, default=0.5,
                   help="points of mean absolute difference within which a reference of "
                        "another name counts as a match when the row has none of its own")
    p.add_argument("--all", action="store_true", help="list every row, not only the findings")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    import capedyn as cd
    from capedyn.data.provenance import read_references, scan_provenance
    from capedyn._table import format_table

    try:
        table = cd.load_base_models(args.data, include_estimated=True)
        refs = read_references(collected_csv=args.cape / "leaderboard_scores_collected.csv",
                               all_scores_json=args.cape / "leaderboard_all_scores.json",
                               pythia_runs_csv=args.pythia_runs)
    except (cd.DataError, ValueError, OSError) as exc:
        print(f"scan_provenance: error: {exc}", file=sys.stderr)
        return 2
    scan = scan_provenance(table, refs, match_tol=args.match_tol)
    shown = scan if args.all else scan[scan["verdict"] != "own"]
    counts = scan["verdict"].value_counts().to_dict()
    if args.json:
        print(json.dumps({"counts": counts, "rows": shown.round(3).to_dict("records")},
                         indent=2, default=str))
    else:
        print(format_table(shown.round(3).to_dict("records")) if len(shown) else "no findings")
        print("\n" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return 1 if counts.get("matches_other") else 0


if __name__ == "__main__":
    sys.exit(main())
