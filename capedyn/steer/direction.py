"""The truth direction: mean last-token hidden state of true statements minus that of false
statements, at one decoder block's output, normalised (the raw norm is kept)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .hooks import recorded_output
from .texts import Pair


@dataclass(frozen=True)
class TruthDirection:
    """A unit direction in a model's hidden space at one block.

    ``unit``: float32 tensor (hidden size), norm 1. ``raw_norm``: norm of the unnormalised
    mean difference, in the hidden state's own units. ``mean_hidden_norm``: mean norm of
    the last-token hidden states it was computed from (a scale for the steering strength).
    """

    layer: int
    unit: torch.Tensor
    raw_norm: float
    mean_hidden_norm: float
    n_pairs: int

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "raw_norm": self.raw_norm,
                "mean_hidden_norm": self.mean_hidden_norm, "n_pairs": self.n_pairs,
                "hidden_size": int(self.unit.numel())}


@torch.no_grad()
def last_token_states(model, tokenizer, block, texts: Sequence[str]) -> torch.Tensor:
    """(len(texts), hidden size) float32: the last token's hidden state at ``block``'s
    output, one forward pass per text (no padding, so "last" is unambiguous)."""
    device = next(model.parameters()).device
    rows = []
    for text in texts:
        ids = tokenizer(text, return_tensors="pt").input_ids.to(device)
        if ids.shape[1] == 0:
            raise ValueError(f"the tokenizer gives no tokens for {text!r}")
        with recorded_output(block) as seen:
            model(ids)
        rows.append(seen[-1][0, -1].float().cpu())
    return torch.stack(rows)


def truth_direction(model, tokenizer, block, layer: int,
                    pairs: Sequence[Pair]) -> TruthDirection:
    """Mean last-token state of the true statements minus that of the false ones, at
    ``block`` (index ``layer``), normalised."""
    true = last_token_states(model, tokenizer, block, [p.true for p in pairs])
    false = last_token_states(model, tokenizer, block, [p.false for p in pairs])
    diff = true.mean(0) - false.mean(0)
    norm = float(diff.norm())
    if not norm > 0:
        raise ValueError("the true and false statements have identical mean hidden states "
                         f"at layer {layer}: no direction (use other pairs or layer)")
    hidden = float(torch.cat([true, false]).norm(dim=1).mean())
    return TruthDirection(layer=layer, unit=diff / norm, raw_norm=norm,
                          mean_hidden_norm=hidden, n_pairs=len(pairs))
