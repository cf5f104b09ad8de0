"""One family option across the command line: ``--family`` and ``--families`` are the same
option on every subcommand that takes families, names match case-insensitively, and a typo
fails with one line suggesting the closest names."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

import capedyn as cd
from capedyn.cli._common import UnknownNameError, match_families, match_name, suggestions
from capedyn.cli.entry import _build_parser, main


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = _build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _family_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if {"--family", "--families"} & set(a.option_strings)]


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------- the option

# ``ingest --family NAME`` names the family of newly read models; it selects nothing from a
# table, so no matching applies (the lead decides whether it should take --families too)
NAMING_ONLY = {"ingest"}


def test_every_family_option_has_both_spellings():
    commands = _subparsers()
    with_families = {name for name, p in commands.items() if _family_actions(p)} - NAMING_ONLY
    # the commands that take families today; a new one must take both spellings too
    assert {"coupling", "nc", "fit", "predict", "posterior", "holdout", "crossval",
            "bench"} <= with_families
    for name in with_families:
        (action,) = _family_actions(commands[name])
        assert {"--family", "--families"} <= set(action.option_strings), name


@pytest.mark.parametrize("command,extra", [
    ("coupling", []), ("nc", []), ("fit", ["--out", "x"]),
    ("predict", ["--fit", "pythia", "--initial", "m", "--sizes", "1"]),
    ("posterior", []), ("holdout", []), ("crossval", []), ("bench", []),
])
def test_both_spellings_parse_to_the_same_value(command, extra):
    parser = _build_parser()
    a = parser.parse_args([command, "--family", "Pythia", *extra])
    b = parser.parse_args([command, "--families", "Pythia", *extra])
    assert vars(a) == vars(b)
    (action,) = _family_actions(_subparsers()[command])
    assert getattr(a, action.dest) == "Pythia"


# --------------------------------------------------------------------------- matching

def test_match_name_exact_case_insensitive_and_suggestions():
    known = ["Pythia", "Llama-2", "OPT", "Qwen2.5"]
    assert match_name("Pythia", known) == "Pythia"
    assert match_name("  llama-2 ", known) == "Llama-2"
    assert match_name("opt", known) == "OPT"
    with pytest.raises(UnknownNameError, match=r"did you mean Pythia\?"):
        match_name("Pythai", known)
    with pytest.raises(UnknownNameError, match="known family names: Pythia, Llama-2, OPT"):
        match_name("zzzz", known, option="--families")
    assert isinstance(UnknownNameError("x"), cd.CapedynError)
    assert isinstance(UnknownNameError("x"), ValueError)
    assert suggestions("qwen25", known) == ["Qwen2.5"]
    assert match_families(["pythia", "@web", "PYTHIA"], known, passthrough=["@web"]) == \
        ["Pythia", "@web"]
    assert match_families(None, known) is None


def test_coupling_families_case_insensitive_matches_csv(capsys, base_df):
    code, out, _ = _run(capsys, "coupling", "--families", "pythia,LLAMA-2", "--json")
    assert code == 0
    res = json.loads(out)
    # pairs = consecutive models with both HS and TQA, counted from the table by hand
    scored = base_df.dropna(subset=["hellaswag", "truthfulqa"])
    expected = sum(int((scored["family"] == f).sum()) - 1 for f in ("Pythia", "Llama-2"))
    assert len(res["pairs"]) == expected
    assert {p["family"] for p in res["pairs"]} == {"Pythia", "Llama-2"}
    code, out2, _ = _run(capsys, "coupling", "--family", "Pythia,Llama-2", "--json")
    assert json.loads(out2)["pairs"] == res["pairs"]


@pytest.mark.parametrize("argv", [
    ("coupling", "--family", "Pythai"),
    ("nc", "--families", "pythai", "--bootstrap", "10"),
    ("fit", "--families", "Pythai", "--out", "{tmp}/fit"),
    ("holdout", "--family", "pythai"),
    ("crossval", "--families", "Pythai"),
    ("posterior", "--family", "Pythai"),
    ("bench", "--families", "Pythai"),
])
def test_typo_fails_on_one_line_with_a_suggestion(capsys, tmp_path, argv):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "did you mean Pythia" in err and "Traceback" not in err
    assert not (tmp_path / "fit").exists()


def test_holdout_lowercase_family_gives_the_library_result(capsys, base_df):
    code, out, _ = _run(capsys, "holdout", "--family", "llama-2", "--train", "pythia",
                        "--methods", "poly1", "--json")
    assert code == 0
    (row,) = json.loads(out)["rows"]
    assert row["family"] == "Llama-2"
    # degree-1 polynomial per benchmark on Pythia, by hand with numpy
    py = base_df[base_df["family"] == "Pythia"]
    ll = cd.complete_models(base_df[base_df["family"] == "Llama-2"]).sort_values("params_b")
    targets = ll.iloc[1:]
    err, actual = [], []
    for b in cd.BENCHMARKS:
        rows = py.dropna(subset=[b])
        coef = np.polyfit(np.log10(rows["params_b"]) + 9, rows[b], 1)
        err += list(np.abs(np.polyval(coef, np.log10(targets["params_b"]) + 9) - targets[b]))
        actual += list(targets[b])
    assert row["rel_mae_pct"] == pytest.approx(100 * np.mean(err) / np.mean(actual), rel=1e-9)


def test_crossval_families_case_insensitive(capsys):
    code, out, _ = _run(capsys, "crossval", "--family", "opt,PYTHIA", "--methods", "poly1",
                        "--json")
    assert code == 0
    assert [r["family"] for r in json.loads(out)["rows"]] == ["OPT", "Pythia"]


def test_predict_initial_and_family_case_insensitive(capsys):
    code, out, _ = _run(capsys, "predict", "--fit", "pythia", "--initial", "PYTHIA-70M",
                        "--family", "pythia", "--sizes", "1", "--json")
    assert code == 0
    res = json.loads(out)
    assert res["initial"]["model"] == "Pythia-70M" and res["family_params"] == "fitted:Pythia"
    code, _, err = _run(capsys, "predict", "--fit", "pythia", "--initial", "Pythia-70", "--sizes", "1")
    assert code == 2 and "--initial" in err and "did you mean" in err and "Pythia-70M" in err
