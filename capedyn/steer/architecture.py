"""Where the decoder blocks of each supported architecture live, and the probe layer.

The probe layer is ``num_layers // 4`` with blocks counted from 0; its hidden state is the
block's output (the residual stream after the block). Architectures are recognised by the
config's ``model_type``; a model of any other type is refused with its class named, rather
than guessed at.
"""

from __future__ import annotations

from typing import Any

from .._errors import CapedynError, InputError

# model_type -> (attribute path of the block list, readable family name)
_BLOCKS: dict[str, tuple[str, str]] = {
    "gpt2": ("transformer.h", "GPT-2"),
    "gpt_neox": ("gpt_neox.layers", "GPT-NeoX (Pythia)"),
    "opt": ("model.decoder.layers", "OPT"),
    "llama": ("model.layers", "Llama"),
    "mistral": ("model.layers", "Mistral"),
    "qwen2": ("model.layers", "Qwen2"),
    "qwen3": ("model.layers", "Qwen3"),
    "gemma": ("model.layers", "Gemma"),
    "gemma2": ("model.layers", "Gemma-2"),
    "gemma3_text": ("model.layers", "Gemma-3 (text)"),
}

SUPPORTED: tuple[str, ...] = tuple(dict.fromkeys(name for _, name in _BLOCKS.values()))
"""Readable names of the architectures whose probe layer can be placed."""


class UnsupportedArchitectureError(CapedynError, ValueError):
    """The model's architecture has no known place for its decoder blocks."""


def _unsupported(model: Any, why: str) -> UnsupportedArchitectureError:
    return UnsupportedArchitectureError(
        f"cannot place the probe layer in {type(model).__name__} ({why}); supported: "
        f"{', '.join(SUPPORTED)}")


def decoder_blocks(model: Any) -> tuple[Any, str]:
    """The model's list of decoder blocks (a ``torch.nn.ModuleList``) and its attribute path.

    Raises :class:`UnsupportedArchitectureError` naming the model class and the supported
    architectures when the model type is unknown or the blocks are not where expected."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in _BLOCKS:
        return _raise(_unsupported(model, f"model_type {model_type!r}"))
    path = _BLOCKS[model_type][0]
    obj = model
    for attr in path.split("."):
        obj = getattr(obj, attr, None)
        if obj is None:
            return _raise(_unsupported(model, f"no '{path}' in this {model_type} model"))
    if len(obj) == 0:
        return _raise(_unsupported(model, "it has no decoder blocks"))
    return obj, path


def _raise(exc: Exception):
    raise exc


def probe_layer(n_layers: int) -> int:
    """Quarter depth: ``n_layers // 4`` (block index counted from 0)."""
    if n_layers < 1:
        raise InputError(f"a model needs at least one decoder block, got {n_layers}")
    return n_layers // 4


def check_layer(layer: int, n_layers: int) -> int:
    """``layer`` as an int in ``0..n_layers-1``, or a one-line error."""
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise InputError(f"layer must be a block index from 0 to {n_layers - 1} "
                         f"(this model has {n_layers} blocks), got {layer!r}")
    return layer
