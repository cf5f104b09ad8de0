"""Progress bars (tqdm): shown on a terminal, quiet in logs and pipes unless forced."""

from __future__ import annotations

import io
import sys


from capedyn._progress import Progress, resolve


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(enabled, stream, monkeypatch, n: int = 5) -> str:
    monkeypatch.setattr(sys, "stderr", stream)
    with Progress(n, "work", enabled=enabled, every=0) as bar:
        for k in range(1, n + 1):
            bar.update(k, loss=0.123456789, family="OPT")
    return stream.getvalue()


def test_quiet_when_stderr_is_not_a_terminal(monkeypatch):
    assert _run(None, io.StringIO(), monkeypatch) == ""
    assert resolve(None) is False


def test_shown_on_a_terminal_and_when_forced(monkeypatch):
    for enabled, stream in ((None, _Terminal()), (True, io.StringIO())):
        text = _run(enabled, stream, monkeypatch)
        assert "work" in text and "5/5" in text
        assert "loss=0.1235" in text and "family=OPT" in text


def test_hidden_when_disabled_even_on_a_terminal(monkeypatch):
    assert _run(False, _Terminal(), monkeypatch) == ""


def test_counts_are_absolute_and_update_works_without_with(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    bar = Progress(10, "absolute", enabled=True, every=0)
    bar.update(4)
    bar.update(7)
    assert bar._bar.n == 7
    bar.__exit__(None, None, None)
    assert "7/10" in stream.getvalue()
