"""The truth direction: mean last-token hidden state of true statements minus that of false
statements, at one decoder block's output, normalised (the raw norm is kept)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .._errors import InputError
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
def last_token_states(model, tokenizer, blocks, texts: Sequence[str]) -> torch.Tensor:
    """(len(blocks), len(texts), hidden size) float32: the last token's hidden state at the
    output of each block in ``blocks``, one forward pass per text (no padding, so "last"
    is unambiguous)."""
    from contextlib import ExitStack

    device = next(model.parameters()).device
    out = []
    for text in texts:
        ids = tokenizer(text, return_tensors="pt").input_ids.to(device)
        if ids.shape[1] == 0:
            raise InputError(f"the tokenizer gives no tokens for {text!r}")
        with ExitStack() as stack:
            seen = [stack.enter_context(recorded_output(b)) for b in blocks]
            model(ids, use_cache=False)
        out.append(torch.stack([s[-1][0, -1].float().cpu() for s in seen]))
    return torch.stack(out, dim=1)


def truth_directions(model, tokenizer, blocks: dict[int, Any],
                     pairs: Sequence[Pair]) -> dict[int, TruthDirection]:
    """The truth direction at every block of ``blocks`` ({layer index: block}) from one
    forward pass per statement: mean last-token state of the true statements minus that
    of the false ones, normalised."""
    layers = list(blocks)
    true = last_token_states(model, tokenizer, list(blocks.values()), [p.true for p in pairs])
    false = last_token_states(model, tokenizer, list(blocks.values()), [p.false for p in pairs])
    out = {}
    for j, layer in enumerate(layers):
        diff = true[j].mean(0) - false[j].mean(0)
        norm = float(diff.norm())
        if not norm > 0:
            raise InputError("the true and false statements have identical mean hidden "
                             f"states at layer {layer}: no direction (use other pairs or layer)")
        hidden = float(torch.cat([true[j], false[j]]).norm(dim=1).mean())
        out[layer] = TruthDirection(layer=layer, unit=diff / norm, raw_norm=norm,
                                    mean_hidden_norm=hidden, n_pairs=len(pairs))
    return out


def truth_direction(model, tokenizer, block, layer: int,
                    pairs: Sequence[Pair]) -> TruthDirection:
    """The truth direction at one block (index ``layer``)."""
    return truth_directions(model, tokenizer, {layer: block}, pairs)[layer]
