"""Shared fixtures. Tests compute expected values independently (by hand from the CSV,
by a second method, or by simulation with known parameters)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import capedyn as cd


@pytest.fixture(scope="session")
def base_df() -> pd.DataFrame:
    return cd.load_base_models()


@pytest.fixture(scope="session")
def frontier_df() -> pd.DataFrame:
    return cd.load_frontier_models()


@pytest.fixture
def write_csv(tmp_path: Path):
    """write_csv(text_or_dataframe, name='t.csv') -> Path of a CSV in a temporary folder."""

    def _write(content, name: str = "t.csv") -> Path:
        path = tmp_path / name
        if isinstance(content, pd.DataFrame):
            content.to_csv(path, index=False)
        else:
            path.write_text(content)
        return path

    return _write
