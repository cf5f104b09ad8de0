"""The steer extra is optional: ``import capedyn`` never loads PyTorch, and without the
extra ``capedyn.steer`` and ``capedyn steer`` say in one line what to install. These tests
hide torch in a subprocess, so they run with or without the extra installed."""

from __future__ import annotations

import subprocess
import sys

HIDE_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_import_capedyn_does_not_import_torch():
    r = run("import sys, capedyn\n"
            "capedyn.load_internal_coupling, capedyn.load_steering_results\n"
            "import capedyn.cli\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_import_without_the_extra_names_the_install_command():
    r = run(HIDE_TORCH + "import capedyn.steer")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0
    assert last.startswith("capedyn.steer.MissingExtraError: ")
    assert 'pip install -e ".[steer]"' in last
    r = run(HIDE_TORCH + "try:\n    import capedyn.steer\nexcept ImportError as e:\n"
                         "    print(type(e).__name__, '|', e)")
    assert r.stdout.strip().startswith("MissingExtraError | capedyn.steer needs PyTorch")


def test_cli_without_the_extra_is_one_line():
    r = run(HIDE_TORCH + "from capedyn.cli import main\n"
            "sys.exit(main(['steer', '--model', 'gpt2', '--prompt', 'hi']))")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("capedyn steer: error: capedyn.steer needs PyTorch")
    assert 'pip install -e ".[steer]"' in r.stderr
    r = run(HIDE_TORCH + "from capedyn.cli import main\nmain(['steer', '--help'])")
    assert r.returncode == 0 and "--evaluate" in r.stdout and "--sweep" in r.stdout
