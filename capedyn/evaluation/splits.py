"""Held-out splits and their metrics: the one place a held-out split is built
(:func:`make_split`) and the two errors every method is scored with. Used by the
benchmark (:mod:`capedyn.evaluation.heldout`) and by nested selection (:mod:`capedyn.evaluation.selection`)
one level down.

Which rows count. A held-out family's models are its *complete* rows (all five scores,
percent): the initial model is the smallest complete one (size ``params_b`` in billions),
the targets are the others. A method receives ``split.train`` (the family removed) and
``split.initial`` (one row) and nothing else; ``split.targets`` is used only to score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .._errors import InputError
from ..data.tables import DataError, complete_models

__all__ = ["Split", "make_split", "mae_points", "relative_mae_pct"]


# ---------------------------------------------------------------------------------------
# metrics

def mae_points(pred, actual) -> float:
    """Mean absolute error in score points over every (model, benchmark) pair."""
    pred, actual = np.asarray(pred, float), np.asarray(actual, float)
    return float(np.mean(np.abs(pred - actual)))


def relative_mae_pct(pred, actual) -> float:
    """100 · mean|pred − actual| / mean(actual) over every (model, benchmark) pair."""
    pred, actual = np.asarray(pred, float), np.asarray(actual, float)
    return float(100.0 * np.mean(np.abs(pred - actual)) / np.mean(actual))


# ---------------------------------------------------------------------------------------
# splits

@dataclass(frozen=True)
class Split:
    """One held-out split. Methods see ``train`` and ``initial`` only; ``targets`` scores them."""

    family: str
    train: pd.DataFrame
    initial: pd.Series
    targets: pd.DataFrame

    @property
    def train_families(self) -> list[str]:
        return list(dict.fromkeys(self.train["family"]))


def make_split(df: pd.DataFrame, family: str, train: Sequence[str] | None = None) -> Split:
    """Build the split holding out ``family``.

    ``train``: training families (default: every other family in ``df``). The training
    table never contains ``family``; the initial row is the family's smallest complete
    model; targets are its other complete models. Raises for unknown names, a training
    list containing the held-out family, or a family with fewer than two complete models.
    """
    known = list(dict.fromkeys(df["family"]))
    if family not in known:
        raise DataError(f"unknown family {family!r}", file="<table>", column="family",
                        hint=f"Known families: {', '.join(known)}")
    if train is not None:
        train = list(train)
        unknown = [f for f in train if f not in known]
        if unknown:
            raise DataError(f"unknown training family {unknown}", file="<table>", column="family",
                            hint=f"Known families: {', '.join(known)}")
        if family in train:
            raise InputError(f"the held-out family {family!r} cannot also be a training family")
        if not train:
            raise InputError("the training family list is empty")
    train_df = df[df["family"] != family] if train is None else df[df["family"].isin(train)]
    own = complete_models(df[df["family"] == family]).sort_values("params_b", kind="stable")
    if len(own) < 2:
        raise InputError(f"family {family!r} has {len(own)} complete model(s); holding it out "
                         "needs an initial model and at least one more to predict")
    return Split(family=family, train=train_df.reset_index(drop=True).copy(),
                 initial=own.iloc[0].copy(), targets=own.iloc[1:].reset_index(drop=True).copy())
