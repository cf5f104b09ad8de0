"""Activation steering at the probe layer: an optional extra (``pip install -e ".[steer]"``).

A truth direction is the difference of mean last-token hidden states, at one decoder
block, between true and false statements. :class:`Steerer` loads a Hugging Face causal
language model from a local folder or the local cache (never from the network), places the
probe block at quarter depth (``num_layers // 4``, blocks counted from 0, the hidden state
being the block's output), classifies prompts by the cosine of their hidden state with the
direction, adds ``strength`` x the unit direction to the block's output during greedy
generation, and measures what that does: :meth:`Steerer.evaluate` reports the change in the
log-likelihood margin of true over false answers with a bootstrap interval, next to the
fraction of generations whose text merely changed; :meth:`Steerer.layer_sweep` repeats the
measurement at every block.

Hooks: plain PyTorch forward hooks (``register_forward_hook``) inside a context manager
(:mod:`capedyn.steer.hooks`) that removes them when the call ends, also on error. The
libraries were considered: ``steering-vectors`` pins ``transformers<5`` and guesses layer
names itself; ``nnsight`` and TransformerLens wrap or re-implement the model (TransformerLens
converts weights for a fixed list of named checkpoints). Adding a vector to one block's
output is three lines of the hook API every ``torch.nn.Module`` already has, so the extra
is just PyTorch and transformers.
"""

from __future__ import annotations

from .._errors import CapedynError

INSTALL_HINT = 'pip install -e ".[steer]"'


class MissingExtraError(CapedynError, ImportError):
    """PyTorch or transformers is not installed (the ``steer`` extra)."""


try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError as _exc:  # one line, naming what to install
    raise MissingExtraError(
        f"capedyn.steer needs PyTorch and transformers ({_exc.name or 'torch'} is not "
        f"installed): {INSTALL_HINT}") from None

from .architecture import SUPPORTED, UnsupportedArchitectureError, decoder_blocks, probe_layer
from .direction import TruthDirection, truth_direction
from .phases import PHASE_THRESHOLDS, phase_label
from .steerer import ModelNotFoundError, Steerer
from .texts import load_items, load_pairs, load_prompts

__all__ = [
    "INSTALL_HINT", "MissingExtraError", "ModelNotFoundError", "PHASE_THRESHOLDS",
    "SUPPORTED", "Steerer", "TruthDirection", "UnsupportedArchitectureError",
    "decoder_blocks", "load_items", "load_pairs", "load_prompts", "phase_label",
    "probe_layer", "truth_direction",
]
