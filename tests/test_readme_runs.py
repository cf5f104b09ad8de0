"""The documentation runs: every ```python block and every shell command in README.md and
docs/*.md is executed here, so a documented line cannot break while the tests pass.

How each kind is run (in a temporary folder, never in the checkout):

* Python blocks of a page run in order in one namespace, as a reader pasting them would.
  Long calls are shortened by the replacements in :data:`PY_SHORTEN` (fewer draws, fewer
  methods, a short sampler); every replacement must still match the page, so one that
  goes stale fails.
* Shell commands (lines of ```bash / ```sh blocks, ``&&`` chains split) run through
  ``capedyn.cli.main`` in process, in page order, shortened by :data:`SH_SHORTEN`.
  The folder holds what the README's lines refer to: ``runs/`` (lm-evaluation-harness
  files of an invented three-size family), ``details/`` (Open LLM Leaderboard v1 files of
  acme-13b and acme-30b) and ``examples/`` (the repository's, for its bundled data).
* ``capedyn explore`` lines are started headless on a free port, answered over HTTP on
  localhost, and stopped.
* Not executed here: ``pip install`` lines (CI runs the same install before the suite),
  ``python -m pytest`` (run with ``--collect-only``: the suite cannot run inside itself)
  and ``capedyn reproduce`` / ``reproduce(...)`` (its ``--quick`` form runs end to end in
  tests/test_reproduce.py; here the line must parse and bind). :func:`classify` names each.
* Inline `capedyn ...` spans in the text: the command and every option must exist.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from capedyn.cli import _build_parser, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

PY_SHORTEN = {
    "n_resamples=10_000": "n_resamples=500",
    "cd.CouplingODE(seed=0).fit(df)": "cd.CouplingODE(seed=0, steps=3, progress=False).fit(df)",
    'cd.holdout(df, "OPT")': 'cd.holdout(df, "OPT", methods=["linear_ode", "poly2"], curves=False)',
    # (its predictions run in test_shell_commands_run's `capedyn family`)
    "cd.family_nc(mine)": "cd.family_nc(mine, chains=1, samples=100, warmup=100, "
                          "predict=False, progress=False)",
    # the sampler settings of tests/test_posterior.py (its CLI run and TINY): the same
    # compiled NUTS programs, so a worker that ran those compiles nothing here
    'sample_posterior(df, model="coupling", chains=4, samples=1000, seed=0)':
        'sample_posterior(df, model="coupling", chains=2, samples=150, warmup=150, seed=0, '
        'progress=False)',
    "posterior_family(post, mine)": "posterior_family(post, mine, chains=2, samples=150, "
                                    "warmup=150)",
    'sample_posterior(df, model="ode", seed=0)':
        'sample_posterior(df, model="ode", seed=0, chains=1, samples=10, warmup=10, '
        'families=["Pythia", "OPT"], progress=False)',
    # tests/test_reproduce.py runs reproduce end to end (quick); here the call must bind
    'summary = cd.reproduce("reproduce_out", quick=False, seed=0)':
        'import inspect; summary = inspect.signature(cd.reproduce).bind("reproduce_out", '
        'quick=False, seed=0)',
}
"""Python text → its shortened form for the test (each must occur in a page)."""

SH_SHORTEN = {
    "capedyn family mylab.csv": "capedyn family mylab.csv --chains 1 --samples 100 "
                                "--warmup 100 --no-progress",
}
"""Shell command → its shortened form for the test (each must occur in a page)."""


# --------------------------------------------------------------------------- extraction

def fenced(page: Path) -> list[tuple[str, str, int]]:
    """(language, code, first line number) of every fenced block of ``page``."""
    out, lang, buf, start = [], None, [], 0
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        m = re.match(r"^```(\w*)\s*$", line)
        if m and lang is None:
            lang, buf, start = m.group(1) or "text", [], n + 1
        elif line.startswith("```") and lang is not None:
            out.append((lang, "\n".join(buf) + "\n", start))
            lang = None
        elif lang is not None:
            buf.append(line)
    return out


def shell_commands(page: Path) -> list[tuple[str, int]]:
    """Every command of the page's shell blocks: comments stripped, ``&&`` chains split."""
    cmds = []
    for lang, code, start in fenced(page):
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        for i, line in enumerate(code.splitlines()):
            line = line.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            cmds += [(part.strip(), start + i) for part in line.split("&&") if part.strip()]
    return cmds


def python_blocks(page: Path) -> list[tuple[str, int]]:
    return [(code, start) for lang, code, start in fenced(page) if lang == "python"]


def classify(command: str) -> str:
    """How a documented shell command is tested: run, serve, install, collect, delegated."""
    words = shlex.split(command)
    if words[:2] == ["pip", "install"]:
        return "install"
    if words[:3] == ["python", "-m", "pytest"]:
        return "collect"
    if words[:1] != ["capedyn"]:
        raise AssertionError(f"no rule to run the documented command: {command}")
    if words[1:2] == ["reproduce"]:
        return "delegated"
    if words[1:2] == ["explore"]:
        return "serve"
    return "run"


ALL_COMMANDS = [(p, c, n) for p in PAGES for c, n in shell_commands(p)]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


# --------------------------------------------------------------------------- fast checks

def test_the_pages_have_commands_and_code():
    assert len(ALL_COMMANDS) >= 8
    assert python_blocks(ROOT / "README.md")


@pytest.mark.parametrize("page,command,line", ALL_COMMANDS,
                         ids=[f"{p.name}:{n}" for p, _, n in ALL_COMMANDS])
def test_every_shell_command_has_a_rule_and_parses(page, command, line):
    kind = classify(command)
    if kind in ("install", "collect"):
        return
    words = shlex.split(command)[1:]
    with contextlib.redirect_stderr(io.StringIO()):
        _build_parser().parse_args(words)  # SystemExit on an unknown command or option


def test_every_shortening_still_matches_the_pages():
    text = "\n".join(code for p in PAGES for code, _ in python_blocks(p))
    for original in PY_SHORTEN:
        assert original in text, f"stale PY_SHORTEN entry: {original}"
    commands = {c for _, c, _ in ALL_COMMANDS}
    for original in SH_SHORTEN:
        assert original in commands, f"stale SH_SHORTEN entry: {original}"


def _inline_spans(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # fenced blocks are run, not parsed
    return re.findall(r"`(capedyn [^`]+)`", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_inline_commands_name_real_options(page):
    commands = _subcommands()
    top = {o for a in _build_parser()._actions for o in a.option_strings}
    for span in _inline_spans(page):
        words = span.replace("[", " ").replace("]", " ").split()
        while len(words) > 2 and words[1].startswith("--"):  # options of capedyn itself
            assert words[1] in top, f"{page.name}: `{span}`: capedyn has no option {words[1]}"
            words = words[:1] + words[2:]
        if words[1].isupper():  # a placeholder such as COMMAND
            continue
        assert words[1] in commands, f"{page.name}: `{span}` names no command"
        known = {o for a in commands[words[1]]._actions for o in a.option_strings}
        for w in words[2:]:
            if w.startswith("--"):
                assert w.split("=")[0] in known, f"{page.name}: `{span}`: no option {w}"


# --------------------------------------------------------------------------- execution

def _write_runs(root: Path) -> None:
    """lm-eval v0.4 files of an invented family: 1B, 3B and 9B (sizes in the files)."""
    sys.path.insert(0, str(FIXTURES))
    from make_fixtures import v04_file

    models = [("mylab/mylab-1b", 1_000_000_000, 0.50, 0.38, 0.30, 0.55, 0.26),
              ("mylab/mylab-3b", 3_000_000_000, 0.60, 0.36, 0.36, 0.60, 0.27),
              ("mylab/mylab-9b", 9_000_000_000, 0.68, 0.38, 0.42, 0.65, 0.30)]
    for i, (name, n, hs, tqa, arc, wg, mmlu) in enumerate(models):
        out = root / name.replace("/", "__") / f"results_2025-02-0{i + 1}T08-00-00.000000.json"
        out.parent.mkdir(parents=True)
        out.write_text(json.dumps(v04_file(
            f"pretrained={name}", {"hellaswag": (10, {"acc_norm": hs}),
                                   "truthfulqa_mc2": (0, {"acc": tqa}),
                                   "arc_challenge": (25, {"acc_norm": arc}),
                                   "winogrande": (5, {"acc": wg})},
            model_name=name, n_params=n, mmlu=(mmlu, {"abstract_algebra": (mmlu, 5)}))))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    _write_runs(tmp_path / "runs")
    shutil.copytree(FIXTURES / "leaderboard_v1", tmp_path / "details")
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(command: str) -> str:
    words = shlex.split(SH_SHORTEN.get(command, command))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(words[1:])
    assert code == 0, f"`{command}` exited {code}: {err.getvalue()[-2000:]}"
    return out.getvalue()


@pytest.mark.slow
def test_shell_commands_run(workdir):
    ran = []
    for page, command, line in ALL_COMMANDS:
        if classify(command) == "run":
            _run(command)
            ran.append(command)
    assert any(c.startswith("capedyn family") for c in ran)
    assert (workdir / "mylab.csv").is_file() and (workdir / "mylab_v1.csv").is_file()


@pytest.mark.slow
def test_pytest_line_collects_the_suite():
    (line,) = {c for _, c, _ in ALL_COMMANDS if classify(c) == "collect"}
    words = shlex.split(line)
    proc = subprocess.run([sys.executable, *words[1:], "--collect-only", "-p", "no:xdist"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ tests collected", proc.stdout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_explorer_lines_serve_and_stop(workdir):
    _run("capedyn ingest runs/ --family MyLab --out mylab.csv")  # the table its --data names
    lines = [c for _, c, _ in ALL_COMMANDS if classify(c) == "serve"]
    assert lines
    for command in lines:
        words = shlex.split(command)[1:]
        port = _free_port()
        if "--port" in words:
            words[words.index("--port") + 1] = str(port)
        else:
            words += ["--port", str(port)]
        words += ["--headless"] if "--headless" not in words else []
        proc = subprocess.Popen([sys.executable, "-m", "capedyn", *words], cwd=workdir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline, status = time.time() + 120, None
            while time.time() < deadline and proc.poll() is None and status is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                        status = r.status
                except OSError:
                    time.sleep(1)
            assert status == 200, (command, proc.poll(),
                                   proc.stderr.read()[-2000:] if proc.poll() is not None else "")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


STEER_PAGE = ROOT / "docs" / "steer.md"
STEER_SHORTEN = {
    # a real model needs its weights; the page's calls run on a tiny GPT-NeoX built here
    's.steer("The moon landing was", strength=None, max_new_tokens=30)':
        's.steer("The moon landing was", strength=None, max_new_tokens=3)',
    "ev = s.evaluate()": "ev = s.evaluate(n_bootstrap=50, max_new_tokens=2)",
    "s.layer_sweep()": "s.layer_sweep(layers=[0, 1], n_bootstrap=50)",
}
"""docs/steer.md's Python text → its shortened form (the model name is replaced by the
folder of a tiny model, see :func:`test_steer_page_runs_on_a_tiny_model`)."""


@pytest.mark.slow
@pytest.mark.xdist_group("readme_python")  # its own group: the longest test of the file
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p) and p != STEER_PAGE],
                         ids=lambda p: p.name)
def test_python_blocks_run(page, workdir):
    namespace: dict = {"__name__": "__readme__"}
    for code, start in python_blocks(page):
        for original, short in PY_SHORTEN.items():
            code = code.replace(original, short)
        exec(compile(code, f"{page.name}:{start}", "exec"), namespace)
    assert (workdir / "my_fit" / "meta.json").is_file()  # the save/load line ran
    assert os.path.isfile(workdir / "nc_forest.png")


@pytest.mark.slow
def test_steer_page_runs_on_a_tiny_model(tmp_path):
    """docs/steer.md's block, every call of it, on a tiny randomly initialised GPT-NeoX saved
    to a folder (no weights are downloaded): the page's model name becomes that folder."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_steer import make_model, make_tokenizer

    model, tok = make_model("gpt_neox"), make_tokenizer()
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    (code, start), = python_blocks(STEER_PAGE)
    name = '"EleutherAI/pythia-410m-deduped"'
    assert name in code and all(k in code for k in STEER_SHORTEN), "docs/steer.md changed"
    code = code.replace(name, repr(str(tmp_path / "tiny")))
    for original, short in STEER_SHORTEN.items():
        code = code.replace(original, short)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, f"steer.md:{start}", "exec"), namespace)
    assert set(namespace["s"].layer_sweep(layers=[0], n_bootstrap=20)["layer"]) == {0}
