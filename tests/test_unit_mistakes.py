"""Unit mistakes refused with one line (exit status 2, nothing written): fractions given to
``predict --scores``, sizes in parameters rather than billions, one fraction inside a
percent column, ``--params-b`` contradicting the sizes in the model names, a repeated
``--data``, and a ``--plot`` into a folder that does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

import capedyn as cd
from capedyn.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LEADERBOARD = FIXTURES / "leaderboard_v1" / "acme"   # acme-13b and acme-30b, no sizes in files
HEADER = "model,family,params_b,hellaswag,truthfulqa,arc,winogrande,mmlu\n"


def one_line_error(capsys, argv, *words) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    for w in words:
        assert w in err, err
    return err


def test_predict_refuses_scores_given_as_fractions(capsys):
    one_line_error(capsys, ["predict", "--fit", "pythia", "--scores", "0.62,0.35,0.4,0.6,0.26",
                            "--params-b", "1.4", "--sizes", "2.8"], "fractions")


def test_predict_refuses_one_fraction_among_percent_scores(capsys):
    one_line_error(capsys, ["predict", "--fit", "pythia", "--scores", "0.62,35,40,60,26",
                            "--params-b", "1.4", "--sizes", "2.8"], "HS", "percent")


def test_predict_refuses_a_parameter_count_as_params_b(capsys):
    one_line_error(capsys, ["predict", "--fit", "pythia", "--scores", "62,35,40,60,26",
                            "--params-b", "1.24e9", "--sizes", "2.8"], "--params-b",
                   "parameter count", "1.24")


def test_ingest_refuses_a_parameter_count_as_params_b(capsys):
    one_line_error(capsys, ["ingest", str(LEADERBOARD), "--format", "leaderboard-v1",
                            "--params-b", "13e9,30e9"], "parameter count")


def test_ingest_refuses_sizes_in_the_wrong_order(capsys):
    err = one_line_error(capsys, ["ingest", str(LEADERBOARD), "--format", "leaderboard-v1",
                                  "--params-b", "30,13"], "whose name says")
    assert "acme-13b" in err or "acme-30b" in err


def test_ingest_accepts_sizes_matching_the_names(capsys):
    assert main(["ingest", str(LEADERBOARD), "--format", "leaderboard-v1",
                 "--params-b", "13,30", "--json"]) == 0


def test_a_parameter_count_in_a_csv_is_refused_by_row(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(HEADER + "m-1b,M,1.0e9,50,38,30,55,26\n", encoding="utf-8")
    with pytest.raises(cd.DataError, match="parameter count") as exc:
        cd.load_base_models(path)
    assert exc.value.row == 1 and exc.value.column == "params_b"


def test_one_fraction_in_a_percent_column_is_refused(tmp_path, capsys):
    # without the check, HS 0.60 among percentages gives the pairs' γ12 of about -0.04 and
    # +0.04 instead of -0.2 and +0.25 (and flips their HellaSwag step)
    path = tmp_path / "mine.csv"
    path.write_text(HEADER + "m-1b,M,1,50,38,30,55,26\nm-3b,M,3,0.60,36,36,60,27\n"
                    "m-9b,M,9,68,38,42,65,30\n", encoding="utf-8")
    with pytest.raises(cd.DataError, match="fraction") as exc:
        cd.load_base_models(path)
    assert exc.value.row == 2 and exc.value.column == "hellaswag"
    err = one_line_error(capsys, ["coupling", "--data", str(path)], "row 2", "hellaswag")
    assert "60" in err  # the hint gives the percentage


def test_repeated_data_flag_is_refused(tmp_path, capsys):
    base = cd.load_base_models()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    base.to_csv(a, index=False)
    base.to_csv(b, index=False)
    one_line_error(capsys, ["coupling", "--data", str(a), "--data", str(b)], "--data",
                   "more than once")
    one_line_error(capsys, ["coupling", f"--data={a}", "--data", str(b)], "--data")


def test_plot_does_not_create_missing_folders(tmp_path, capsys):
    target = tmp_path / "no" / "such" / "hfield.png"
    one_line_error(capsys, ["hfield", "--table", "--plot", str(target)], "does not exist")
    assert not (tmp_path / "no").exists()
