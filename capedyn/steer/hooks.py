"""Forward hooks as context managers: they are removed when the block ends, also on error.

Decoder blocks return either a tensor or a tuple whose first element is the hidden state
(batch, position, hidden size); both are handled.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def added_to_output(block: torch.nn.Module, vector: torch.Tensor) -> Iterator[None]:
    """Add ``vector`` (hidden size) to ``block``'s output at every position."""
    def hook(module, args, output):
        h = _hidden(output)
        steered = h + vector.to(device=h.device, dtype=h.dtype)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered

    # prepend: run before any hook transformers itself placed on the block (it records
    # output_hidden_states with hooks), so recorded hidden states show the steered stream
    handle = block.register_forward_hook(hook, prepend=True)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def recorded_output(block: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record ``block``'s output hidden state (detached) on every forward call."""
    seen: list[torch.Tensor] = []

    def hook(module, args, output):
        seen.append(_hidden(output).detach())

    handle = block.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()
