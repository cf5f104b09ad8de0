"""Measuring steering: the log-likelihood margin of true over false answers.

For an item (question, true answer, false answer) the margin is
``log p(true | question) - log p(false | question)``, each summed over the answer's tokens
(natural log, nats). :func:`evaluate` computes it without and with steering and reports the
mean change with a bootstrap 95% interval over items, the fraction of items whose margin
rose, and, beside them, the fraction of greedy generations whose text changed at all (a
count of *changed* outputs, which says nothing about whether they became truer).
:func:`layer_sweep` repeats the margin measurement with the direction recomputed and
applied at each block in turn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .._errors import InputError
from .._progress import Progress
from .direction import truth_directions
from .texts import Item, as_items, as_pairs


def encode(tokenizer, question: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of the question and of the answer that follows it.

    The answer is appended with one space unless the question ends in whitespace or the
    answer starts with it. The answer's ids are the tail of the joint encoding when its
    head equals the question's encoding (the usual case), otherwise the answer encoded
    on its own."""
    sep = "" if question[-1:].isspace() or answer[:1].isspace() else " "
    q = tokenizer(question).input_ids
    full = tokenizer(question + sep + answer).input_ids
    if full[:len(q)] == q and len(full) > len(q):
        return q, full[len(q):]
    a = tokenizer(sep + answer, add_special_tokens=False).input_ids
    if not q or not a:
        raise InputError(f"the tokenizer gives no tokens for question {question!r} or "
                         f"answer {answer!r}")
    return q, a


@torch.no_grad()
def answer_logprob(model, tokenizer, question: str, answer: str) -> float:
    """log p(answer | question) summed over the answer's tokens (nats), under whatever
    hooks are active."""
    q, a = encode(tokenizer, question, answer)
    device = next(model.parameters()).device
    ids = torch.tensor([q + a], device=device)
    logp = model(ids, use_cache=False).logits[0, :-1].float().log_softmax(-1)
    targets = ids[0, 1:]
    token_lp = logp.gather(-1, targets[:, None])[:, 0]
    return float(token_lp[len(q) - 1:].sum())


def margins(model, tokenizer, items: Sequence[Item], progress: Progress | None = None,
            offset: int = 0) -> np.ndarray:
    """Margin (nats) of every item: log p(true | q) - log p(false | q)."""
    out = np.empty(len(items))
    for k, it in enumerate(items):
        out[k] = (answer_logprob(model, tokenizer, it.question, it.true)
                  - answer_logprob(model, tokenizer, it.question, it.false))
        if progress is not None:
            progress.update(offset + k + 1)
    return out


def bootstrap_mean_ci(x: np.ndarray, n_bootstrap: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``x`` (items resampled)."""
    if n_bootstrap < 1:
        raise InputError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_bootstrap, len(x)))].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Evaluation:
    """What steering did to a set of items (margins in nats)."""

    model: str
    layer: int
    strength: float
    n_items: int
    mean_margin_unsteered: float
    mean_margin_steered: float
    mean_change: float
    change_ci95: tuple[float, float]
    fraction_improved: float
    fraction_generations_changed: float | None
    items: list[dict[str, Any]] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.items)


def evaluate(steerer, items: Any = None, strength: float | None = None, *,
             n_bootstrap: int = 2000, seed: int = 0, generations: bool = True,
             max_new_tokens: int = 20, progress: bool | None = None) -> Evaluation:
    """Margins without and with steering at the steerer's layer.

    ``items``: ``None`` (the shipped set), a CSV/JSONL path, or (question, true, false)
    tuples. ``generations``: also generate greedily (``max_new_tokens``) from each question
    with and without steering and count the texts that differ. ``progress``: a bar on
    stderr (``None``: only on a terminal)."""
    items = as_items(items)
    n = len(items)
    steps = 2 * n + (2 * n if generations else 0)
    with Progress(steps, "steer evaluate", enabled=progress) as bar:
        before = margins(steerer.model, steerer.tokenizer, items, bar)
        with steerer.steering(strength) as s:
            after = margins(steerer.model, steerer.tokenizer, items, bar, offset=n)
        changed = None
        if generations:
            plain, steered = [], []
            for k, it in enumerate(items):
                plain.append(steerer.generate(it.question, max_new_tokens))
                bar.update(2 * n + k + 1)
            with steerer.steering(s):
                for k, it in enumerate(items):
                    steered.append(steerer.generate(it.question, max_new_tokens))
                    bar.update(3 * n + k + 1)
            changed = [a != b for a, b in zip(plain, steered)]
    change = after - before
    rows = []
    for k, it in enumerate(items):
        row = {"question": it.question, "true": it.true, "false": it.false,
               "margin_unsteered": before[k], "margin_steered": after[k],
               "change": change[k], "improved": bool(change[k] > 0)}
        if changed is not None:
            row.update(generation_unsteered=plain[k], generation_steered=steered[k],
                       generation_changed=changed[k])
        rows.append(row)
    return Evaluation(
        model=steerer.name, layer=steerer.layer, strength=s, n_items=n,
        mean_margin_unsteered=float(before.mean()), mean_margin_steered=float(after.mean()),
        mean_change=float(change.mean()),
        change_ci95=bootstrap_mean_ci(change, n_bootstrap, seed),
        fraction_improved=float((change > 0).mean()),
        fraction_generations_changed=None if changed is None else float(np.mean(changed)),
        items=rows)


def layer_sweep(steerer, items: Any = None, layers: Sequence[int] | None = None, *,
                strength: float | None = None, pairs: Any = None, n_bootstrap: int = 2000,
                seed: int = 0, progress: bool | None = None):
    """The margin change with the direction recomputed and applied at each block.

    ``layers``: block indices (default: every block). ``strength``: one strength for every
    layer, or ``None`` for each layer's own raw norm (hidden-state scales grow with depth).
    ``pairs``: for the directions (default: those the steerer was fitted on, else the
    shipped set). Returns a DataFrame, one row per layer, with ``is_probe`` marking
    ``num_layers // 4``; the steerer's own layer and direction are restored afterwards."""
    import pandas as pd

    from .architecture import check_layer, probe_layer

    items = as_items(items)
    layers = list(range(steerer.n_layers)) if layers is None else \
        [check_layer(int(L), steerer.n_layers) for L in layers]
    if not layers:
        raise InputError("layer_sweep needs at least one layer")
    pairs = as_pairs(pairs if pairs is not None else steerer.pairs_)
    saved = (steerer.layer, steerer.direction_, steerer.pairs_)
    n = len(items)
    rows = []
    try:
        with Progress(n * (len(layers) + 1), "steer layer sweep", enabled=progress) as bar:
            directions = truth_directions(steerer.model, steerer.tokenizer,
                                          {L: steerer.blocks[L] for L in layers}, pairs)
            before = margins(steerer.model, steerer.tokenizer, items, bar)
            for j, layer in enumerate(layers):
                steerer.layer, steerer.direction_ = layer, directions[layer]
                with steerer.steering(strength) as s:
                    after = margins(steerer.model, steerer.tokenizer, items, bar,
                                    offset=n * (j + 1))
                change = after - before
                lo, hi = bootstrap_mean_ci(change, n_bootstrap, seed)
                rows.append({"layer": layer, "is_probe": layer == probe_layer(steerer.n_layers),
                             "strength": s, "raw_norm": steerer.direction_.raw_norm,
                             "mean_change": float(change.mean()), "ci_low": lo, "ci_high": hi,
                             "fraction_improved": float((change > 0).mean()), "n_items": n})
    finally:
        steerer.layer, steerer.direction_, steerer.pairs_ = saved
    return pd.DataFrame(rows)
