"""A progress bar that finishes early (an optimiser that converged before its step cap)
ends full, not stuck at the fraction of the cap it reached."""

from __future__ import annotations

import pytest

from capedyn._progress import Progress


def test_bar_ends_full_when_the_work_finishes_early(capsys):
    with Progress(200, "fit", enabled=True) as bar:
        bar.update(40)
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "100%" in last and "40/40" in last, last


def test_bar_stays_where_it_stopped_on_an_error(capsys):
    with pytest.raises(RuntimeError):
        with Progress(200, "fit", enabled=True) as bar:
            bar.update(40)
            raise RuntimeError("solve failed")
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "40/200" in last, last
