"""``Steerer``: one causal language model, its probe block and its truth direction.

Loading never touches the network: a name is looked up as a local folder, then in the local
Hugging Face cache (``local_files_only=True``); anything else is a one-line
:class:`ModelNotFoundError`.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from .._errors import CapedynError, InputError
from .architecture import check_layer, decoder_blocks, probe_layer
from .direction import TruthDirection, last_token_states, truth_direction
from .hooks import added_to_output
from .phases import phase_label
from .texts import as_pairs


class ModelNotFoundError(CapedynError, OSError):
    """The model is neither a local folder nor in the local Hugging Face cache."""


@dataclass(frozen=True)
class Classification:
    """Cosine (dimensionless) of a prompt's last-token hidden state with the direction."""

    prompt: str
    cosine: float
    phase: str
    layer: int


@dataclass(frozen=True)
class Steering:
    """Greedy continuations of one prompt without and with steering (new text only)."""

    prompt: str
    layer: int
    strength: float
    unsteered: str
    steered: str
    changed: bool
    cosine: float
    phase: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _not_found(name: str) -> ModelNotFoundError:
    from huggingface_hub.constants import HF_HUB_CACHE

    return ModelNotFoundError(
        f"model '{name}' is neither a local folder nor in the local Hugging Face cache "
        f"({HF_HUB_CACHE}); capedyn never downloads: fetch it once where there is network "
        f"(e.g. `hf download {name}`) or pass its folder")


def _dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise InputError(f"dtype must be a torch dtype name such as 'float32', got {dtype!r}")
    return value


class Steerer:
    """A causal LM with its probe block (``layer``, default ``num_layers // 4``).

    The truth direction (``direction_``) is computed from contrastive pairs by :meth:`fit`;
    :meth:`classify`, :meth:`steer`, :meth:`evaluate` and :meth:`layer_sweep` fit it on the
    shipped pairs first when it was not fitted. Strengths are in the hidden state's own
    units; ``strength=None`` means the direction's raw norm, i.e. one mean
    true-minus-false difference.
    """

    def __init__(self, model, tokenizer, layer: int | None = None, *, name: str | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.blocks, self.blocks_path = decoder_blocks(model)
        self.n_layers = len(self.blocks)
        self.layer = (probe_layer(self.n_layers) if layer is None
                      else check_layer(layer, self.n_layers))
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.direction_: TruthDirection | None = None
        self.pairs_: list | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, layer: int | None = None,
                        device: str = "cpu", dtype: Any = "float32") -> "Steerer":
        """Load a model and its tokenizer from a local folder or the local HF cache."""
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        name = str(name_or_path)
        path = Path(name).expanduser()
        source = str(path) if path.is_dir() else name
        if path.exists() and not path.is_dir():
            raise ModelNotFoundError(f"model '{name}' is a file; pass the model's folder")
        try:
            AutoConfig.from_pretrained(source, local_files_only=True)
        except (OSError, ValueError):
            raise _not_found(name) from None
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True,
                                                     dtype=_dtype(dtype)).to(device)
        return cls(model, tokenizer, layer, name=name)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ direction
    def fit(self, pairs: Any = None, layer: int | None = None) -> "Steerer":
        """Compute the truth direction at ``layer`` (default: the probe layer) from
        ``pairs``: ``None`` (the shipped set), a CSV/JSONL path, or (true, false) tuples."""
        if layer is not None:
            self.layer = check_layer(layer, self.n_layers)
        self.pairs_ = as_pairs(pairs)
        self.direction_ = truth_direction(self.model, self.tokenizer, self.blocks[self.layer],
                                          self.layer, self.pairs_)
        return self

    def direction(self) -> TruthDirection:
        """The fitted direction (fitted on the shipped pairs if not yet)."""
        if self.direction_ is None or self.direction_.layer != self.layer:
            self.fit(self.pairs_)
        return self.direction_

    def resolve_strength(self, strength: float | None) -> float:
        s = self.direction().raw_norm if strength is None else float(strength)
        if not torch.isfinite(torch.tensor(s)):
            raise InputError(f"strength must be a finite number, got {strength!r}")
        return s

    @contextmanager
    def steering(self, strength: float | None = None) -> Iterator[float]:
        """Inside the block, every forward pass adds ``strength`` x unit direction to the
        probe block's output at every position; yields the strength used."""
        s = self.resolve_strength(strength)
        with added_to_output(self.blocks[self.layer], s * self.direction().unit):
            yield s

    # ------------------------------------------------------------------ use
    def classify(self, prompt: str) -> Classification:
        """Cosine of the prompt's last-token hidden state at the probe block with the
        direction, and its phase label (:mod:`capedyn.steer.phases`)."""
        d = self.direction()
        block = self.blocks[self.layer]
        h = last_token_states(self.model, self.tokenizer, [block], [prompt])[0, 0]
        cos = float(torch.nn.functional.cosine_similarity(h, d.unit, dim=0))
        return Classification(prompt=prompt, cosine=cos, phase=phase_label(cos), layer=self.layer)

    @torch.no_grad()
    def generate(self, prompt: str, max_new_tokens: int = 40) -> str:
        """Greedy continuation (new text only) under whatever hooks are active."""
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        enc = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        out = self.model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                  pad_token_id=pad if pad is not None else 0)
        return tok.decode(out[0, enc.input_ids.shape[1]:], skip_special_tokens=True)

    def steer(self, prompt: str, strength: float | None = None,
              max_new_tokens: int = 40) -> Steering:
        """Greedy generations of ``prompt`` without and with steering."""
        c = self.classify(prompt)
        plain = self.generate(prompt, max_new_tokens)
        with self.steering(strength) as s:
            steered = self.generate(prompt, max_new_tokens)
        return Steering(prompt=prompt, layer=self.layer, strength=s, unsteered=plain,
                        steered=steered, changed=plain != steered, cosine=c.cosine,
                        phase=c.phase)

    def evaluate(self, items: Any = None, strength: float | None = None, **kwargs):
        """Margin change of true over false answers
        (see :func:`capedyn.steer.evaluate.evaluate`)."""
        from .evaluate import evaluate

        return evaluate(self, items, strength, **kwargs)

    def layer_sweep(self, items: Any = None, layers: Sequence[int] | None = None, **kwargs):
        """The evaluation at every block (see :func:`capedyn.steer.evaluate.layer_sweep`)."""
        from .evaluate import layer_sweep

        return layer_sweep(self, items, layers, **kwargs)

    def __repr__(self) -> str:
        return (f"Steerer({self.name!r}, {type(self.model).__name__}, layer={self.layer} "
                f"of {self.n_layers})")
