"""``capedyn steer``: activation steering at the probe layer of a local model (the steer
extra: PyTorch + transformers). Nothing is downloaded."""

from __future__ import annotations

from typing import Any

from .entry import add_json_flag, format_table
from .._errors import InputError

SHIPPED = "<shipped>"


def register(sub) -> None:
    p = sub.add_parser(
        "steer", help="steer a local language model along its truth direction (extra: steer)",
        description="Load a causal language model from a local folder or the local Hugging "
                    "Face cache (never the network), compute the truth direction at the "
                    "probe layer (num_layers // 4) from contrastive true/false pairs, "
                    "classify each prompt by the cosine of its hidden state with it, and "
                    "generate greedily without and with strength x direction added to the "
                    "probe block's output. --evaluate measures the change in the margin "
                    "log p(true) - log p(false) on question items; --sweep repeats it at "
                    "every layer. Needs: pip install -e \".[steer]\".")
    p.add_argument("--model", required=True, metavar="NAME_OR_PATH",
                   help="model folder, or a name already in the local Hugging Face cache")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--prompt", metavar="TEXT", help="one prompt to classify and steer")
    g.add_argument("--prompts", metavar="FILE",
                   help="prompts: .txt (one per line) or CSV/JSONL with a 'prompt' column")
    p.add_argument("--pairs", metavar="FILE", default=None,
                   help="contrastive pairs, CSV/JSONL with columns true,false "
                        "(default: the set shipped with capedyn)")
    p.add_argument("--layer", type=int, default=None, metavar="N",
                   help="block to probe and steer, counted from 0 (default num_layers // 4)")
    p.add_argument("--strength", type=float, default=None, metavar="S",
                   help="added multiple of the unit direction, in hidden-state units "
                        "(default: the direction's raw norm)")
    p.add_argument("--max-new-tokens", type=int, default=40, metavar="N",
                   help="greedy tokens generated per prompt (default 40)")
    p.add_argument("--evaluate", metavar="ITEMS", nargs="?", const=SHIPPED, default=None,
                   help="measure the margin change on items, CSV/JSONL with columns "
                        "question,true,false (no file: the shipped set)")
    p.add_argument("--sweep", action="store_true",
                   help="with --evaluate: the margin change at every layer")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                   help="bootstrap resamples for the 95%% interval (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_json_flag(p)
    p.set_defaults(handler=_steer, human=_human)


def _check(args) -> None:
    if args.prompt is None and args.prompts is None and args.evaluate is None:
        raise InputError("give --prompt TEXT, --prompts FILE or --evaluate [ITEMS]")
    if args.sweep and args.evaluate is None:
        raise InputError("--sweep needs --evaluate [ITEMS]")
    if args.max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.bootstrap < 1:
        raise InputError(f"--bootstrap must be at least 1, got {args.bootstrap}")


def _steer(args) -> dict[str, Any]:
    _check(args)
    from .. import steer  # one-line MissingExtraError without the extra
    from .._progress import Progress

    prompts = ([args.prompt] if args.prompt is not None else
               steer.load_prompts(args.prompts) if args.prompts is not None else [])
    items = None
    if args.evaluate is not None:
        items = steer.load_items(None if args.evaluate == SHIPPED else args.evaluate)
    pairs = steer.load_pairs(args.pairs)  # read every file before loading the model
    s = steer.Steerer.from_pretrained(args.model, layer=args.layer, device=args.device)
    s.fit(pairs)
    d = s.direction_
    result: dict[str, Any] = {
        "model": args.model, "model_class": type(s.model).__name__, "n_layers": s.n_layers,
        "layer": s.layer, "probe_layer": steer.probe_layer(s.n_layers),
        "direction": {**d.to_dict(), "pairs": args.pairs or "shipped"},
        "strength": s.resolve_strength(args.strength), "prompts": [],
        "evaluation": None, "sweep": None}
    with Progress(len(prompts), "steer prompts") as bar:
        for k, prompt in enumerate(prompts):
            result["prompts"].append(
                s.steer(prompt, args.strength, args.max_new_tokens).to_dict())
            bar.update(k + 1)
    if items is not None:
        ev = s.evaluate(items, args.strength, n_bootstrap=args.bootstrap, seed=args.seed,
                        max_new_tokens=args.max_new_tokens)
        result["evaluation"] = {**ev.to_dict(), "items_file": args.evaluate
                                if args.evaluate != SHIPPED else "shipped"}
        if args.sweep:
            table = s.layer_sweep(items, strength=args.strength, pairs=pairs,
                                  n_bootstrap=args.bootstrap, seed=args.seed)
            result["sweep"] = table.to_dict(orient="records")
    return result


def _human(r: dict[str, Any]) -> str:
    d = r["direction"]
    out = [f"{r['model']} ({r['model_class']}, {r['n_layers']} blocks): layer {r['layer']} "
           f"(probe layer {r['probe_layer']})",
           f"direction from {d['n_pairs']} pairs ({d['pairs']}): raw norm {d['raw_norm']:.4g}, "
           f"mean hidden-state norm {d['mean_hidden_norm']:.4g}; strength {r['strength']:.4g}"]
    for p in r["prompts"]:
        out += ["", f"prompt: {p['prompt']}",
                f"  cosine {p['cosine']:+.3f} -> {p['phase']}",
                f"  unsteered: {p['unsteered']!r}",
                f"  steered:   {p['steered']!r}" + ("" if p["changed"] else "  (unchanged)")]
    ev = r["evaluation"]
    if ev:
        lo, hi = ev["change_ci95"]
        gen = ev["fraction_generations_changed"]
        out += ["", f"evaluation on {ev['n_items']} items ({ev['items_file']}), margin = "
                    "log p(true) - log p(false), nats:",
                f"  mean margin {ev['mean_margin_unsteered']:+.3f} -> "
                f"{ev['mean_margin_steered']:+.3f}; change {ev['mean_change']:+.3f} "
                f"[95% bootstrap {lo:+.3f}, {hi:+.3f}]",
                f"  margin improved on {100 * ev['fraction_improved']:.0f}% of items; "
                f"generation text changed on "
                f"{'n/a' if gen is None else f'{100 * gen:.0f}%'} (changed is not corrected)"]
    if r["sweep"]:
        rows = [{"layer": f"{x['layer']}{'*' if x['is_probe'] else ''}",
                 "strength": x["strength"], "mean_change": x["mean_change"],
                 "ci_low": x["ci_low"], "ci_high": x["ci_high"],
                 "improved": x["fraction_improved"]} for x in r["sweep"]]
        out += ["", "layer sweep (* = num_layers // 4):", format_table(rows, floatfmt=".3f")]
    return "\n".join(out)
