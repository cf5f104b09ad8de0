"""The report never shows an extrapolated least-squares crossing as a plain number (it sits
beside each family's posterior Nc in section 4), and counts "1 pair" in the singular."""

from __future__ import annotations

import dataclasses

import pandas as pd

from capedyn import report
from test_reproduce import _hand_built_coupling, _stub_posterior


def _posterior_section(fams: pd.DataFrame) -> str:
    """Section 4 with a stand-in posterior over ``fams``' families and their own lines."""
    from capedyn.report.s4_posterior import PosteriorResult

    post = _stub_posterior("coupling", 3.0)
    post.table = pd.concat([post.table.assign(family=f, n_obs=n)
                            for f, n in zip(fams["family"], fams["n_pairs"])], ignore_index=True)
    return report.render_section("posterior", PosteriorResult(
        coupling=post, ode=None, least_squares=fams), figures={})


def test_far_extrapolated_family_nc_is_labelled():
    fams = pd.DataFrame({"family": ["Pythia"], "n_pairs": [7], "gamma0": [0.01],
                         "intercept": [-0.25], "nc_b": [3.02e15], "crossing": ["upward"],
                         "nc_position": ["above largest model"], "smallest_b": [0.07],
                         "largest_b": [12.0]})
    row = next(line for line in _posterior_section(fams).splitlines()
               if line.startswith("| Pythia | 7 |"))
    assert "extrapolated" in row and "not a measurement" in row


def test_nc_within_the_tested_sizes_is_a_plain_number():
    fams = pd.DataFrame({"family": ["Falcon"], "n_pairs": [2], "gamma0": [0.5],
                         "intercept": [-4.9], "nc_b": [8.0], "crossing": ["upward"],
                         "nc_position": ["within tested range"], "smallest_b": [7.0],
                         "largest_b": [180.0]})
    row = next(line for line in _posterior_section(fams).splitlines()
               if line.startswith("| Falcon | 2 |"))
    assert "extrapolated" not in row and "| 8.00 |" in row


def test_coupling_section_points_to_the_posterior_for_each_family_nc():
    r = _hand_built_coupling()
    fams = pd.DataFrame({"family": ["Falcon"], "n_pairs": [2], "gamma0": [0.5],
                         "intercept": [-4.9], "nc_b": [8.0], "crossing": ["upward"],
                         "nc_position": ["within tested range"], "smallest_b": [7.0],
                         "largest_b": [180.0]})
    md = report.render_section("coupling", dataclasses.replace(r, family_nc=fams), figures={})
    assert "| Falcon |" not in md and "8.00" not in md
    assert "is in section 4" in " ".join(md.split())


def test_one_pair_is_singular():
    md = report.render_section("coupling", _hand_built_coupling(), figures={})
    assert "(tax) in\n1 pair," in md or "(tax) in 1 pair," in md.replace("\n", " ")
