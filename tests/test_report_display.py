"""The report's coupling section never shows an extrapolated per-family Nc as a plain
number, and counts "1 pair" in the singular."""

from __future__ import annotations

import dataclasses

import pandas as pd

from capedyn import report
from test_reproduce import _hand_built_coupling


def test_far_extrapolated_family_nc_is_labelled():
    r = _hand_built_coupling()
    fams = pd.DataFrame({"family": ["Pythia"], "n_pairs": [7], "gamma0": [0.01],
                         "intercept": [-0.25], "nc_b": [3.02e15], "crossing": ["upward"],
                         "nc_position": ["above largest model"], "smallest_b": [0.07],
                         "largest_b": [12.0]})
    md = report.render_section("coupling", dataclasses.replace(r, family_nc=fams), figures={})
    row = next(line for line in md.splitlines() if line.startswith("| Pythia | 7 |"))
    assert "extrapolated" in row and "not a measurement" in row


def test_nc_within_the_tested_sizes_is_a_plain_number():
    r = _hand_built_coupling()
    fams = pd.DataFrame({"family": ["Falcon"], "n_pairs": [2], "gamma0": [0.5],
                         "intercept": [-4.9], "nc_b": [8.0], "crossing": ["upward"],
                         "nc_position": ["within tested range"], "smallest_b": [7.0],
                         "largest_b": [180.0]})
    md = report.render_section("coupling", dataclasses.replace(r, family_nc=fams), figures={})
    row = next(line for line in md.splitlines() if line.startswith("| Falcon | 2 |"))
    assert "extrapolated" not in row


def test_one_pair_is_singular():
    md = report.render_section("coupling", _hand_built_coupling(), figures={})
    assert "(tax) in\n1 pair," in md or "(tax) in 1 pair," in md.replace("\n", " ")
