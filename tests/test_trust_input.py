"""Input you can trust: nothing the input can smuggle in, nothing changed without a word.

Names with control, invisible or direction characters; implausible sizes; spreadsheet
formulas; edited ``meta.json`` files; clipped and extrapolated predictions; one-chain
posteriors; Ctrl-C; figures outside the run; the explorer's host names; misleading
messages. Expected values are worked out by hand (floors are chance minus ten points,
ranges read from the CSV with pandas), never copied from capedyn's output.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capedyn as cd
from capedyn._errors import CapedynError, FitFileError
from capedyn.cli.entry import main
from capedyn.data.tables import DataError
from capedyn.models.persistence import _resolve

HEADER = "model,family,params_b,hellaswag,truthfulqa,arc,winogrande,mmlu"
FIXTURES = Path(__file__).parent / "fixtures"
ACME = FIXTURES / "lm_eval_v04" / "acme__acme-1b"


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def table(rows: list[list], header: str = HEADER) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=header.split(","))


def acme(model="Acme-7B", family="Acme", params_b=7.0):
    return [model, family, params_b, 75, 38, 50, 70, 45]


# ============================================================== 3 and 9. names

@pytest.mark.parametrize("name, what", [
    ("Acme\n\n![x](/etc/hostname)", "line break"),
    ("Acme\r7B", "line break"),
    ("Acme\t7B", "control character"),
    ("Acme\x1b[31m", "control character"),
    ("Pythia\u200b", "invisible or direction-changing"),
    ("\u202eB7-emcA", "invisible or direction-changing"),
    ("Acme\u2066x\u2069", "invisible or direction-changing"),
])
@pytest.mark.parametrize("column", ["model", "family"])
def test_names_with_control_or_invisible_characters_are_refused(name, what, column):
    row = acme(**{column: name})
    with pytest.raises(DataError) as info:
        cd.validate_base_models(table([row]))
    msg = str(info.value)
    assert what in msg and "row 1" in msg and f"column '{column}'" in msg
    assert "\n" not in msg and "\r" not in msg


def test_refused_name_in_a_csv_names_file_row_and_column(write_csv):
    path = write_csv(f'{HEADER}\nAcme-7B,Acme,7,75,38,50,70,45\n"Acme-13B\n\n![x](/etc/hostname)",'
                     "Acme,13,80,40,55,72,50\n")
    with pytest.raises(DataError) as info:
        cd.load_base_models(path)
    assert str(path) in str(info.value) and "row 2" in str(info.value)
    assert "column 'model'" in str(info.value)


def test_names_compare_in_nfc():
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    df = cd.validate_base_models(table([acme("A-1B", composed, 1), acme("A-2B", decomposed, 2)]))
    assert set(df["family"]) == {composed}
    with pytest.raises(DataError, match="repeats"):
        cd.validate_base_models(table([acme(composed, "A", 1), acme(decomposed, "A", 2)]))


@pytest.mark.parametrize("size", [5e-324, 1e-5, 2e5, 1e308, 7e9])
def test_implausible_sizes_are_refused(size):
    with pytest.raises(DataError) as info:
        cd.validate_base_models(table([acme(params_b=size)]))
    assert "column 'params_b'" in str(info.value) and "billion" in str(info.value)
    if size == 7e9:
        assert "raw parameter count" in str(info.value) and " 7)" in str(info.value)


@pytest.mark.parametrize("text", ["1_000", "0x10", " 7 B", "7,0"])
def test_sizes_must_be_plain_decimals(write_csv, text):
    path = write_csv(f'{HEADER}\nAcme-7B,Acme,"{text}",75,38,50,70,45\n')
    with pytest.raises(DataError, match="is not a number"):
        cd.load_base_models(path)


def test_plain_sizes_at_the_edges_load(write_csv):
    path = write_csv(f"{HEADER}\nA,Acme,0.014,30,40,25,50,25\nB,Acme,1e3,80,40,55,72,50\n")
    assert cd.load_base_models(path)["params_b"].tolist() == [0.014, 1000.0]


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)",
                                  "'=already", "'plain"])
def test_csv_cells_never_start_a_formula_and_survive_the_round_trip(tmp_path, name):
    from capedyn.data.ingest import to_csv_text

    df = cd.validate_base_models(table([acme(model=name, family=name)]))
    text = to_csv_text(df)
    cells = next(r for r in csv.reader(io.StringIO(text)) if r[0] != "model")
    assert not cells[0].startswith(("=", "+", "-", "@"))
    assert not cells[1].startswith(("=", "+", "-", "@"))
    path = tmp_path / "t.csv"
    path.write_text(text)
    back = cd.load_base_models(path)
    assert back["model"].tolist() == [name] and back["family"].tolist() == [name]


# ============================================================== 7. edited meta.json

def _edited(tmp_path, edit, name="fit") -> Path:
    d = tmp_path / name
    shutil.copytree(_resolve("pythia"), d)
    meta = json.loads((d / "meta.json").read_text())
    out = edit(meta)
    (d / "meta.json").write_text(out if isinstance(out, str) else json.dumps(meta))
    return d


def _set(key, value):
    def f(meta):
        meta[key] = value
    return f


META_EDITS = {
    "deep nesting (RecursionError)": lambda m: "[" * 200_000 + "]" * 200_000,
    "no families (KeyError)": lambda m: m.pop("families") and None,
    "families a string (TypeError)": _set("families", "Pythia"),
    "a family a number": _set("families", [3]),
    "n_families 1e12": _set("n_families", 1e12),
    "n_families 5e7": _set("n_families", 50_000_000),
    "n_families negative": _set("n_families", -1),
    "no checksum": lambda m: m.pop("model_sha256") and None,
    "checksum not hex": _set("model_sha256", "x" * 64),
    "NaN loss": lambda m: json.dumps(m).replace('"loss": ', '"loss": NaN, "was": '),
    "config a list": _set("config", [1, 2]),
    "config degree huge": lambda m: m["config"].__setitem__("degree", 10**9),
    "scores of four": lambda m: m["families"][0].__setitem__("scores", [1, 2, 3, 4]),
    "size a string": lambda m: m["families"][0].__setitem__("params_b", "0.07"),
    "name with a newline": lambda m: m["families"][0].__setitem__("name", "Py\nthia"),
    "start not the first model": lambda m: m["families"][0].__setitem__("model", "Pythia-1B"),
    "an extra family entry": lambda m: m["families"].append(dict(m["families"][0], name="Other")),
    "an extra family, counted": lambda m: (m["families"].append(
        dict(m["families"][0], name="Other")), m.__setitem__("n_families", 2)) and None,
    "a family twice": lambda m: (m["families"].append(dict(m["families"][0])),
                                 m.__setitem__("n_families", 2)) and None,
    "format missing": lambda m: m.pop("format") and None,
    "a list": lambda m: "[1, 2, 3]",
    "huge integer": lambda m: re.sub(r'"n_iter": \d+', '"n_iter": ' + "9" * 5000, json.dumps(m)),
    "a float beyond range": lambda m: json.dumps(m).replace('"loss": ', '"loss": 1e400, "x": '),
}


@pytest.mark.parametrize("case", sorted(META_EDITS))
def test_an_edited_meta_json_fails_with_a_fit_file_error_naming_it(tmp_path, case):
    d = _edited(tmp_path, META_EDITS[case])
    t0 = time.perf_counter()
    with pytest.raises(FitFileError) as info:
        cd.load_fit(d)
    assert time.perf_counter() - t0 < 10            # nothing large was allocated
    msg = str(info.value)
    assert str(d) in msg and len(msg) < 600 and "\n" not in msg


def test_an_edited_meta_json_fails_on_the_command_line_with_one_line(tmp_path):
    d = _edited(tmp_path, _set("n_families", 1e12))
    rc, out, err = run_cli("predict", "--fit", str(d), "--initial", "Llama2-7B", "--sizes", "13")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert str(d / "meta.json") in err and "n_families" in err


@pytest.mark.parametrize("which", ["model.eqx", "meta.json"])
def test_a_fifo_in_place_of_a_fit_file_is_named_as_such(tmp_path, which):
    d = _edited(tmp_path, lambda m: None)
    (d / which).unlink()
    os.mkfifo(d / which)
    with pytest.raises(FitFileError, match="not a regular file"):
        cd.load_fit(d)


def test_the_data_fingerprints_of_the_shipped_fits_match_the_shipped_table():
    text = resources.files("capedyn.benchmarks_data").joinpath("base_models.csv").read_text("utf-8")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    from capedyn.models.persistence import shipped_fits

    for name in shipped_fits():
        meta = json.loads((_resolve(name) / "meta.json").read_text())
        assert meta["data"]["csv_sha256"] == digest, name


def test_a_saved_fit_knows_the_range_it_was_trained_on():
    """Rebuilt from the shipped table (its SHA-256 matches): Pythia's complete models,
    read here with pandas."""
    df = pd.read_csv(resources.files("capedyn.benchmarks_data").joinpath("base_models.csv"))
    py = df[(df["family"] == "Pythia")].dropna(subset=["hellaswag", "truthfulqa", "arc",
                                                       "winogrande", "mmlu"])
    rng = cd.load_fit("pythia").training_range_
    assert rng["params_b"] == [py["params_b"].min(), py["params_b"].max()]
    assert rng["scores"]["mmlu"] == [py["mmlu"].min(), py["mmlu"].max()]
    assert rng["n_models"] == len(py)


# ============================================================== 6. predictions

def test_a_clipped_initial_score_is_reported(tmp_path):
    rc, out, err = run_cli("predict", "--fit", "pythia", "--scores", "25,25,25,25,25",
                           "--params-b", "1", "--sizes", "1,13", "--json")
    assert rc == 0, err
    r = json.loads(out)
    # WinoGrande is two-way: chance 50, floor ten points below = 40; the others' floors
    # (15 for HS/ARC/MMLU, 10 for TruthfulQA) lie below 25, so only WinoGrande moves
    assert [(c["benchmark"], c["given"], round(c["used"])) for c in r["clipped"]] == [
        ("winogrande", 25.0, 40)]
    assert r["predictions"][0]["winogrande"] == pytest.approx(40, abs=1e-3)
    rc, out, _ = run_cli("predict", "--fit", "pythia", "--scores", "25,25,25,25,25",
                         "--params-b", "1", "--sizes", "1,13")
    assert "WinoGrande 25" in out and "started from 40" in out


def test_extrapolated_predictions_are_flagged():
    df = pd.read_csv(resources.files("capedyn.benchmarks_data").joinpath("base_models.csv"))
    largest = df[df["family"] == "Pythia"]["params_b"].max()          # 12B
    rc, out, err = run_cli("predict", "--fit", "pythia", "--scores", "100,100,100,100,100",
                           "--params-b", "1", "--sizes", f"{largest / 2:g},70", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["start_outside_training"]                   # 100 is above every trained score
    assert all(p["extrapolated"] for p in r["predictions"])
    assert any("70B" in n for n in r["notes"])
    init = df[df["model"] == "Pythia-160M"].iloc[0]
    scores = ",".join(str(init[b]) for b in ("hellaswag", "truthfulqa", "arc", "winogrande",
                                             "mmlu"))
    rc, out, err = run_cli("predict", "--fit", "pythia", "--scores", scores, "--params-b",
                           str(init["params_b"]), "--sizes", f"{largest / 2:g},70", "--json")
    r = json.loads(out)
    assert [p["extrapolated"] for p in r["predictions"]] == [False, True]
    assert r["clipped"] == [] and r["start_outside_training"] == []


# ============================================================== 5. one chain

def test_posterior_refuses_one_chain_before_sampling(monkeypatch):
    import capedyn.inference.sampling

    def never(*a, **k):
        raise AssertionError("sampled")

    monkeypatch.setattr(capedyn.inference.sampling, "sample_posterior", never)
    rc, out, err = run_cli("posterior", "--chains", "1", "--samples", "10")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--chains" in err and "R-hat" in err


def test_one_chain_in_the_api_says_r_hat_is_undefined():
    from capedyn.inference.sampling import _chain_note
    from capedyn.inference.result import _defined

    assert any("R-hat is undefined" in n for n in _chain_note(1, "vectorized"))
    assert _chain_note(2, "vectorized") == []
    assert _defined(float("nan")) is None and _defined(1.01) == 1.01


# ============================================================== 8. Ctrl-C

_INTERRUPTIBLE = textwrap.dedent("""
    import gc, os, signal, sys, time
    import capedyn.cli.coupling as group
    from capedyn.cli.entry import main

    # as in a terminal (a background job inherits SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def handler(args):
        print("working", file=sys.stderr, flush=True)
        if sys.argv[1] == "gc":     # Ctrl-C landing in a garbage-collector callback
            fired = []
            def callback(phase, info):
                if phase == "start" and not fired:
                    fired.append(1)
                    os.kill(os.getpid(), signal.SIGINT)
                    for _ in range(1000):
                        pass
            gc.callbacks.append(callback)
        t0 = time.time()
        while time.time() - t0 < 60:
            gc.collect()
            [object() for _ in range(1000)]
        return {"done": True}

    real = group.register
    def register(sub):
        real(sub)
        sub.choices["phase"].set_defaults(handler=handler)
    group.register = register
    sys.exit(main(["phase", "--hs", "70", "--tqa", "40"]))
""")


@pytest.mark.parametrize("where", ["plain", "gc"])
def test_ctrl_c_prints_one_line_and_exits_130(where):
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTIBLE, where],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().strip() == "working"
        t0 = time.time()
        if where == "plain":
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert time.time() - t0 < 15
    assert err.strip().splitlines() == ["capedyn phase: interrupted (Ctrl-C)"]


# ============================================================== 3. figures inside the run only

def test_report_html_embeds_only_the_runs_own_figures(tmp_path):
    import base64

    from capedyn._errors import InputError
    from capedyn.report.document import Figure, Paragraph, Report
    from capedyn.report.layout import read_layout

    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "ok.png").write_bytes(b"\x89PNGgood")
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"SECRET-BYTES")
    (tmp_path / "figures" / "link.png").symlink_to(secret)
    doc = Report("t")
    doc.figure("figures/ok.png", "c")
    page = doc.to_html(tmp_path)
    assert base64.b64encode(b"\x89PNGgood").decode() in page
    assert page.count("<img") == 1
    for path in (str(secret), "figures/../secret.png", "/etc/hostname"):
        with pytest.raises(InputError, match="figures/"):
            Report("t").figure(path, "c")
    linked = Report("t")
    linked.figure("figures/link.png", "c")          # a symbolic link leading out
    with pytest.raises(InputError, match="does not resolve"):
        linked.to_html(tmp_path)
    # in the templates' layout, only figures/NAME.png lines are figures
    back = read_layout("# t\n\n![x](/etc/hostname)\n\n![y](figures/ok.png)\n", [])
    assert [type(b) for b in back.blocks] == [Paragraph, Figure]


def test_a_table_cell_never_leaves_its_row():
    from capedyn.report.document import Report

    doc = Report("t")
    doc.table([{"a": "a\n\n![x](/etc/hostname)", "b": "a|b"}])
    rows = doc.to_markdown().splitlines()[2:]
    assert len(rows) == 3 and all(r.startswith("|") and r.endswith("|") for r in rows)
    assert "\\|" in rows[2] and "\\[x\\]" in rows[2]


# ============================================================== 9. explorer hosts

def test_explorer_allows_only_the_bound_hosts():
    from capedyn.cli._explore_hosts import allowed_hosts, exposure_warning

    local = allowed_hosts("127.0.0.1")
    assert "localhost" in local and "127.0.0.1" in local and "evil.example" not in local
    assert "*" not in local
    assert allowed_hosts("127.0.0.1", ["proxy.lab"])[-1] == "proxy.lab"
    assert exposure_warning("127.0.0.1") is None and exposure_warning("localhost") is None
    assert "every network" in exposure_warning("0.0.0.0")
    assert "192.168.1.5" in allowed_hosts("192.168.1.5")


def test_explore_passes_the_allowed_hosts_and_warns_for_0000(monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.web import cli as stcli

    from capedyn.explore import core

    seen = {}
    monkeypatch.setattr(stcli, "main", lambda argv, **k: seen.setdefault("argv", argv))
    monkeypatch.setattr(core, "get_explorer", lambda *a: None)
    monkeypatch.setattr("capedyn.cli.explore._check_port", lambda *a: None)
    rc, out, err = run_cli("explore", "--host", "0.0.0.0", "--headless", "--port", "8999")
    assert rc == 0, err
    assert "warning" in err and "0.0.0.0" in err
    argv = seen["argv"]
    hosts = [argv[i + 1] for i, a in enumerate(argv) if a == "--server.allowedHosts"]
    assert "localhost" in hosts and "*" not in hosts


# ============================================================== 9. misleading messages

def test_ingest_a_device_or_pipe_is_not_called_missing(tmp_path):
    fifo = tmp_path / "results.json"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        rc, _, err = run_cli("ingest", path)
        assert rc == 2 and "not a regular file" in err and "no such file" not in err


def test_ingest_follows_symlinked_folders(tmp_path):
    real = tmp_path / "real"
    shutil.copytree(ACME, real / "acme")
    top = tmp_path / "top"
    top.mkdir()
    (top / "linked").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(top, target_is_directory=True)   # a loop ends
    rc, out, err = run_cli("ingest", str(top), "--json")
    assert rc == 0, err
    assert len(json.loads(out)["rows"]) == 1


def test_malformed_json_message_reads_once(tmp_path):
    bad = tmp_path / "results_x.json"
    bad.write_text('{"results": {"x": "unterminated')
    rc, _, err = run_cli("ingest", str(bad))
    assert rc == 2 and "at at" not in err and "line 1" in err


def test_oversized_result_file_is_refused_before_reading(tmp_path, monkeypatch):
    import capedyn.data.ingest
    import capedyn.data.result_files

    big = tmp_path / "results_big.json"
    big.write_text("{" + " " * 5000 + "}")
    monkeypatch.setattr(capedyn.data.result_files, "MAX_RESULT_BYTES", 1000)
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: pytest.fail("read it"))
    with pytest.raises(DataError, match="larger than any result file"):
        capedyn.data.ingest.read_results([big])


# ============================================================== property tests

_ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_ANY_TEXT, family=_ANY_TEXT)
def test_any_name_loads_as_printable_text_or_fails_with_a_data_error(name, family):
    from capedyn.report.document import Report

    try:
        df = cd.validate_base_models(table([acme(model=name, family=family)]))
    except CapedynError as exc:
        assert "\n" not in str(exc).strip() or True
        return
    for v in (df["model"].iloc[0], df["family"].iloc[0]):
        assert v.strip() == v and v
        assert all(ch.isprintable() or ch == " " for ch in v), repr(v)
    doc = Report("t")
    doc.table([{"model": df["model"].iloc[0], "family": df["family"].iloc[0]}])
    page = doc.to_html(Path("."))
    md = doc.to_markdown().splitlines()
    assert "<img" not in page and "<script" not in page.lower().replace("&lt;script", "")
    assert len(md) == 5 and all(line.startswith("|") for line in md[2:])


_CELL = st.one_of(st.none(), _ANY_TEXT, st.floats(allow_nan=True, allow_infinity=True),
                  st.integers(-10**20, 10**20), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.lists(_CELL, min_size=8, max_size=8), min_size=1, max_size=4))
def test_any_table_loads_or_fails_with_a_capedyn_error(rows):
    try:
        df = cd.validate_base_models(table(rows))
    except CapedynError:
        return
    assert np.all(np.isfinite(df["params_b"])) and (df["params_b"] > 0).all()
    scores = df[["hellaswag", "truthfulqa", "arc", "winogrande", "mmlu"]].to_numpy(float)
    assert np.all(np.isnan(scores) | ((scores >= 0) & (scores <= 100)))


def _containers(children):
    return st.one_of(st.lists(children, max_size=3),
                     st.dictionaries(_ANY_TEXT, children, max_size=3))


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | _ANY_TEXT, _containers, max_leaves=8)
_META_KEYS = ["format", "format_version", "config", "field_config", "n_families", "families",
              "population", "model_sha256", "data", "loss", "metrics", "training_range"]


@pytest.fixture(scope="module")
def pythia_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("prop") / "fit"
    shutil.copytree(_resolve("pythia"), d)
    return d


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(_META_KEYS), value=_JSON,
       family_key=st.sampled_from(["name", "model", "params_b", "scores", "models", "h"]),
       inside=st.booleans())
def test_any_meta_json_loads_or_fails_with_a_fit_file_error(pythia_folder, key, value,
                                                           family_key, inside):
    original = (_resolve("pythia") / "meta.json").read_text()
    meta = json.loads(original)
    if inside:
        meta["families"][0][family_key] = value
    else:
        meta[key] = value
    (pythia_folder / "meta.json").write_text(json.dumps(meta))
    try:
        est = cd.load_fit(pythia_folder)
    except FitFileError as exc:
        assert str(pythia_folder) in str(exc)
        return
    finally:
        (pythia_folder / "meta.json").write_text(original)
    assert all(np.isfinite(np.asarray(est.field_.coef)).ravel())
    assert list(est.families_) == ["Pythia"]
    assert est.loss_ is None or np.isfinite(est.loss_)


def test_a_name_that_bypassed_the_loader_stays_text_in_the_report(tmp_path):
    """Even a result built in memory (no loader in between) cannot place a figure or a
    heading: every value a template prints is a text span of the document."""
    from capedyn import report
    from capedyn.report.document import Figure, Heading, plain_text
    from capedyn.report.s1_data import DataResult

    def section(name):
        base = pd.DataFrame({"model": ["a", "b"], "family": [name, name]})
        front = pd.DataFrame({"model": ["x"], "lab": [name]})
        fams = pd.DataFrame({"family": [name], "models": [2], "complete": [2],
                             "smallest_b": [0.5], "largest_b": [1.0], "source": [name]})
        return report.section_document("data", DataResult(base=base, frontier=front,
                                                           complete=base, families=fams),
                                       figures={})

    evil = "F1\n\n![x](/etc/hostname)\n\n# heading"
    doc, clean = section(evil), section("F1")
    assert not any(isinstance(b, Figure) for b in doc.blocks)
    assert [type(b) for b in doc.blocks] == [type(b) for b in clean.blocks]
    assert [plain_text(b.spans) for b in doc.blocks if isinstance(b, Heading)] == [
        plain_text(b.spans) for b in clean.blocks if isinstance(b, Heading)]
    assert "<img" not in doc.to_html(tmp_path)


@pytest.mark.parametrize("argv", [
    ("predict", "--fit", "pythia", "--initial", "Pythia-1B", "--sizes", "1_000"),
    ("predict", "--fit", "pythia", "--scores", "50,40,40,5_0,30", "--params-b", "1",
     "--sizes", "13"),
    ("ingest", str(ACME), "--params-b", "1_0"),
])
def test_command_line_numbers_are_plain_decimals(argv):
    rc, out, err = run_cli(*argv)
    assert rc == 2 and "is not a number" in err and len(err.strip().splitlines()) == 1
