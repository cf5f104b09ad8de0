"""capedyn.steer on tiny randomly initialised models built offline from transformers config
classes, with a word-level tokenizer made here. Expected values come from a second route:
``output_hidden_states`` for hidden states, and for the hand-built model a NumPy forward
pass from its weights."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from capedyn.steer import (  # noqa: E402
    ModelNotFoundError, Steerer, UnsupportedArchitectureError, load_items, load_pairs,
    phase_label,
)
from capedyn.steer.texts import TextFileError  # noqa: E402

torch.set_num_threads(1)  # tiny models: threads only add overhead on a shared machine

WORDS = ("[UNK] [PAD] [EOS] sky is blue green grass snow white black yes no the a "
         "water hot cold true false").split()
PAIRS = [("sky is blue", "sky is green"), ("grass is green", "grass is blue"),
         ("snow is white", "snow is black"), ("water is hot", "water is cold")]


def make_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]",
                                   eos_token="[EOS]")


def make_model(arch: str, n_layers: int = 4, seed: int = 0):
    import transformers as tf

    V, H = len(WORDS), 16
    common = dict(vocab_size=V, bos_token_id=2, eos_token_id=2, pad_token_id=1)
    cfg = {
        "gpt2": lambda: (tf.GPT2LMHeadModel, tf.GPT2Config(
            n_layer=n_layers, n_embd=H, n_head=2, n_positions=32, **common)),
        "gpt_neox": lambda: (tf.GPTNeoXForCausalLM, tf.GPTNeoXConfig(
            num_hidden_layers=n_layers, hidden_size=H, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=32, **common)),
        "opt": lambda: (tf.OPTForCausalLM, tf.OPTConfig(
            num_hidden_layers=n_layers, hidden_size=H, num_attention_heads=2, ffn_dim=32,
            max_position_embeddings=32, word_embed_proj_dim=H, **common)),
        "llama": lambda: (tf.LlamaForCausalLM, tf.LlamaConfig(
            num_hidden_layers=n_layers, hidden_size=H, num_attention_heads=2,
            num_key_value_heads=2, intermediate_size=32, max_position_embeddings=32,
            **common)),
        "gemma": lambda: (tf.GemmaForCausalLM, tf.GemmaConfig(
            num_hidden_layers=n_layers, hidden_size=H, num_attention_heads=2,
            num_key_value_heads=1, head_dim=8, intermediate_size=32,
            max_position_embeddings=32, **common)),
    }[arch]
    cls, config = cfg()
    torch.manual_seed(seed)
    with torch.no_grad():  # random init is std 0.02: widen it so states differ clearly
        model = cls(config)
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model.eval()


ARCHS = ("gpt2", "gpt_neox", "opt", "llama", "gemma")


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def hidden_states(model, tok, text):
    with torch.no_grad():
        ids = torch.tensor([tok(text).input_ids])
        return model(ids, output_hidden_states=True).hidden_states


def n_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ----------------------------------------------------------------- placement, direction

@pytest.mark.parametrize("arch", ARCHS)
def test_probe_layer_is_quarter_depth(arch, tok):
    for n_layers, expected in ((4, 1), (7, 1), (9, 2)):
        s = Steerer(make_model(arch, n_layers), tok)
        assert (s.n_layers, s.layer) == (n_layers, expected)


@pytest.mark.parametrize("arch", ARCHS)
def test_direction_is_the_normalised_mean_difference(arch, tok):
    model = make_model(arch)
    s = Steerer(model, tok).fit(PAIRS)
    L = s.layer
    # hidden_states[0] is the embedding output, [L + 1] the output of block L
    true = torch.stack([hidden_states(model, tok, t)[L + 1][0, -1] for t, _ in PAIRS])
    false = torch.stack([hidden_states(model, tok, f)[L + 1][0, -1] for _, f in PAIRS])
    diff = (true.mean(0) - false.mean(0)).double()
    assert s.direction_.raw_norm == pytest.approx(float(diff.norm()), rel=1e-5)
    np.testing.assert_allclose(s.direction_.unit.double().numpy(),
                               (diff / diff.norm()).numpy(), atol=1e-5)
    assert float(s.direction_.unit.norm()) == pytest.approx(1.0, abs=1e-6)
    assert s.direction_.n_pairs == len(PAIRS)


@pytest.mark.parametrize("arch", ARCHS)
def test_steering_adds_exactly_strength_times_direction_at_the_probe_layer(arch, tok):
    model = make_model(arch)
    s = Steerer(model, tok).fit(PAIRS)
    L, strength, text = s.layer, 2.5, "the sky is green"
    before = hidden_states(model, tok, text)
    hooks = n_hooks(model)
    with s.steering(strength) as used:
        assert used == strength
        during = hidden_states(model, tok, text)
    assert n_hooks(model) == hooks  # nothing left behind
    for k in range(L + 1):  # embeddings and every block before the probe: untouched
        torch.testing.assert_close(during[k], before[k], rtol=0, atol=0)
    added = during[L + 1] - before[L + 1]  # every position moved by strength x unit
    expected = (strength * s.direction_.unit).expand_as(added[0])
    torch.testing.assert_close(added[0], expected, rtol=0, atol=1e-5)
    assert not torch.allclose(during[L + 2], before[L + 2])  # later blocks see the change
    torch.testing.assert_close(hidden_states(model, tok, text)[-1], before[-1])


def test_hooks_are_removed_on_error(tok):
    model = make_model("gpt2")
    s = Steerer(model, tok).fit(PAIRS)
    hooks = n_hooks(model)
    with pytest.raises(RuntimeError, match="boom"):
        with s.steering(1.0):
            assert n_hooks(model) == hooks + 1
            raise RuntimeError("boom")
    assert n_hooks(model) == hooks
    s.steer("sky is", 1.0, max_new_tokens=2)
    s.evaluate([("sky is", "blue", "green")], n_bootstrap=10)
    assert n_hooks(model) == hooks


def test_classify_cosine_and_phase(tok):
    model = make_model("llama")
    s = Steerer(model, tok).fit(PAIRS)
    h = hidden_states(model, tok, "snow is black")[s.layer + 1][0, -1].double()
    u = s.direction_.unit.double()
    cos = float(h @ u / h.norm())
    c = s.classify("snow is black")
    assert c.cosine == pytest.approx(cos, abs=1e-5)
    assert c.phase == phase_label(cos)


def test_phase_thresholds():
    assert [phase_label(c) for c in (-0.5, -0.1 - 1e-9, -0.1, 0.0999, 0.1, 0.2999, 0.3, 1)] == [
        "severe tax", "severe tax", "mild tax", "mild tax", "balanced", "balanced", "bonus",
        "bonus"]
    with pytest.raises(ValueError):
        phase_label(math.nan)


# ----------------------------------------------------------------- a model the direction controls

def controlled_model(tok):
    """GPT-2 whose blocks are identities (output projections zeroed), so the hidden state
    at every block is token embedding + position embedding; 'blue' and 'green' embed as
    +v and -v, and the unembedding scores 'yes' by +5 v and 'no' by -5 v (every other
    token 0). The next token is 'yes' exactly when v . LayerNorm(h) > 0."""
    model = make_model("gpt2")
    model.config.tie_word_embeddings = False
    with torch.no_grad():
        for block in model.transformer.h:
            for lin in (block.attn.c_proj, block.mlp.c_proj):
                lin.weight.zero_()
                lin.bias.zero_()
        g = torch.Generator().manual_seed(1)
        v = torch.randn(16, generator=g, dtype=torch.float64)
        v = (v - v.mean()) / (v - v.mean()).norm()
        wte = model.transformer.wte.weight
        wte.normal_(0.0, 0.1, generator=g)
        wte[WORDS.index("blue")] = v.float()
        wte[WORDS.index("green")] = -v.float()
        model.transformer.wpe.weight.normal_(0.0, 0.05, generator=g)
        head = torch.zeros(len(WORDS), 16)
        head[WORDS.index("yes")] = 5 * v.float()
        head[WORDS.index("no")] = -5 * v.float()
        model.lm_head = torch.nn.Linear(16, len(WORDS), bias=False)
        model.lm_head.weight.copy_(head)
    return model, v


def hand_logprobs(model, ids, added):
    """log-softmax of the next-token logits at every position, by NumPy from the weights:
    h = wte + wpe (+ the steering vector), LayerNorm (eps 1e-5), unembedding."""
    wte = model.transformer.wte.weight.detach().double().numpy()
    wpe = model.transformer.wpe.weight.detach().double().numpy()
    ln = model.transformer.ln_f
    h = wte[ids] + wpe[: len(ids)] + added
    z = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + ln.eps)
    z = z * ln.weight.detach().double().numpy() + ln.bias.detach().double().numpy()
    logits = z @ model.lm_head.weight.detach().double().numpy().T
    return logits - np.log(np.exp(logits).sum(1, keepdims=True))


def hand_margin(model, tok, question, true, false, added):
    total = 0.0
    for answer, sign in ((true, 1), (false, -1)):
        q = tok(question).input_ids
        ids = q + tok(answer).input_ids
        lp = hand_logprobs(model, np.array(ids), added)
        total += sign * sum(lp[j - 1, ids[j]] for j in range(len(q), len(ids)))
    return total


def test_steering_flips_the_greedy_output_of_a_controlled_model(tok):
    model, v = controlled_model(tok)
    s = Steerer(model, tok).fit([("sky is blue", "sky is green")])
    # the pairs differ only in the last token: (+v) - (-v) = 2v
    assert s.direction_.raw_norm == pytest.approx(2.0, rel=1e-5)
    np.testing.assert_allclose(s.direction_.unit.double().numpy(), v.numpy(), atol=1e-6)
    out = s.steer("sky is green", strength=3.0, max_new_tokens=1)
    assert (out.unsteered.strip(), out.steered.strip(), out.changed) == ("no", "yes", True)
    back = s.steer("sky is blue", strength=-3.0, max_new_tokens=1)
    assert (back.unsteered.strip(), back.steered.strip()) == ("yes", "no")


def test_evaluate_reports_the_margin_change_computed_by_hand(tok):
    model, v = controlled_model(tok)
    s = Steerer(model, tok).fit([("sky is blue", "sky is green")])
    items = [("sky is green", "yes", "no"), ("grass is blue", "yes", "no"),
             ("snow is", "white", "black"), ("sky is blue", "no", "yes no")]
    strength = 1.5
    ev = s.evaluate(items, strength, n_bootstrap=500, seed=3, max_new_tokens=1)
    before = np.array([hand_margin(model, tok, *it, 0.0) for it in items])
    after = np.array([hand_margin(model, tok, *it, strength * v.numpy()) for it in items])
    change = after - before
    np.testing.assert_allclose([r["margin_unsteered"] for r in ev.items], before, atol=1e-4)
    np.testing.assert_allclose([r["margin_steered"] for r in ev.items], after, atol=1e-4)
    assert ev.mean_change == pytest.approx(change.mean(), abs=1e-4)
    assert ev.fraction_improved == pytest.approx(np.mean(change > 0))
    assert ev.change_ci95[0] <= ev.mean_change <= ev.change_ci95[1]
    # greedy first token: 'yes' iff v . (h_last + 1.5 v) > 0 after centring (v is centred)
    flips = []
    for q, *_ in items:
        ids = np.array(tok(q).input_ids)
        lp0 = hand_logprobs(model, ids, 0.0)[-1]
        lp1 = hand_logprobs(model, ids, strength * v.numpy())[-1]
        flips.append(lp0.argmax() != lp1.argmax())
    assert ev.fraction_generations_changed == pytest.approx(np.mean(flips))
    assert 0 < ev.fraction_generations_changed < 1  # the items mix flipped and kept


def test_layer_sweep_measures_every_layer_and_restores_the_steerer(tok):
    model = make_model("opt", n_layers=4)
    s = Steerer(model, tok).fit(PAIRS)
    items = [("sky is", "blue", "green"), ("snow is", "white", "black")]
    table = s.layer_sweep(items, n_bootstrap=50)
    assert list(table["layer"]) == [0, 1, 2, 3]
    assert list(table["is_probe"]) == [False, True, False, False]
    assert (s.layer, s.direction_.layer) == (1, 1)
    for L in (0, 2):  # each row equals an evaluate() at that layer with that layer's direction
        other = Steerer(model, tok, layer=L).fit(PAIRS)
        ev = other.evaluate(items, None, n_bootstrap=50, generations=False)
        row = table[table["layer"] == L].iloc[0]
        assert row["mean_change"] == pytest.approx(ev.mean_change, abs=1e-6)
        assert row["strength"] == pytest.approx(other.direction_.raw_norm)


# ----------------------------------------------------------------- loading, errors, files

@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tok):
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model, _ = controlled_model(tok)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_from_pretrained_loads_a_local_folder(saved_model, tok):
    s = Steerer.from_pretrained(saved_model)
    assert (s.n_layers, s.layer, type(s.model).__name__) == (4, 1, "GPT2LMHeadModel")
    assert Steerer.from_pretrained(saved_model, layer=3).layer == 3
    s.fit([("sky is blue", "sky is green")])
    assert s.steer("sky is green", 3.0, max_new_tokens=1).steered.strip() == "yes"


def test_missing_model_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        Steerer.from_pretrained("nobody-org/no-such-model-xyz")
    msg = str(err.value)
    assert "\n" not in msg and "'nobody-org/no-such-model-xyz'" in msg
    assert "neither a local folder nor in the local Hugging Face cache" in msg


def test_unsupported_architecture_names_the_class_and_the_supported_ones(tok):
    from transformers import BloomConfig, BloomForCausalLM

    model = BloomForCausalLM(BloomConfig(n_layer=2, hidden_size=16, n_head=2,
                                         vocab_size=len(WORDS)))
    with pytest.raises(UnsupportedArchitectureError) as err:
        Steerer(model, tok)
    msg = str(err.value)
    assert "BloomForCausalLM" in msg
    for name in ("GPT-2", "GPT-NeoX (Pythia)", "OPT", "Llama", "Mistral", "Qwen2", "Gemma"):
        assert name in msg


def test_bad_layer_is_refused(tok):
    with pytest.raises(ValueError, match="from 0 to 3"):
        Steerer(make_model("gpt2"), tok, layer=4)


def test_pairs_and_items_files(tmp_path):
    shipped = load_pairs()
    assert len(shipped) >= 20 and all(p.true and p.false for p in shipped)
    assert len(load_items()) >= 15
    (tmp_path / "p.jsonl").write_text('{"true": "a b", "false": "c d"}\n\n'
                                      '{"true": "e", "false": "f"}\n')
    assert [tuple(p) for p in load_pairs(tmp_path / "p.jsonl")] == [("a b", "c d"), ("e", "f")]
    (tmp_path / "i.csv").write_text('question,true,false\n"q, with comma",yes,no\nq2,,no\n')
    with pytest.raises(TextFileError, match=r"i\.csv: row 3, column 'true'"):
        load_items(tmp_path / "i.csv")
    (tmp_path / "bad.csv").write_text("truth,lie\na,b\n")
    with pytest.raises(TextFileError, match="no column 'true', 'false'"):
        load_pairs(tmp_path / "bad.csv")


# ----------------------------------------------------------------- CLI

def run_cli(capsys, *argv):
    from capedyn.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json(saved_model, tmp_path, capsys):
    (tmp_path / "pairs.csv").write_text("true,false\nsky is blue,sky is green\n")
    (tmp_path / "items.csv").write_text("question,true,false\nsky is green,yes,no\n"
                                        "snow is,white,black\n")
    code, out, err = run_cli(capsys, "steer", "--model", str(saved_model), "--prompt",
                             "sky is green", "--pairs", str(tmp_path / "pairs.csv"),
                             "--strength", "3", "--max-new-tokens", "1", "--evaluate",
                             str(tmp_path / "items.csv"), "--sweep", "--bootstrap", "50",
                             "--json")
    assert code == 0, err
    r = json.loads(out)
    assert (r["model_class"], r["n_layers"], r["layer"], r["probe_layer"]) == (
        "GPT2LMHeadModel", 4, 1, 1)
    assert r["direction"]["raw_norm"] == pytest.approx(2.0, rel=1e-5)
    p = r["prompts"][0]
    assert (p["unsteered"].strip(), p["steered"].strip(), p["changed"]) == ("no", "yes", True)
    api = Steerer.from_pretrained(saved_model).fit([("sky is blue", "sky is green")])
    ev = api.evaluate(tmp_path / "items.csv", 3.0, n_bootstrap=50, max_new_tokens=1)
    assert r["evaluation"]["mean_change"] == pytest.approx(ev.mean_change, abs=1e-6)
    assert r["evaluation"]["fraction_generations_changed"] == ev.fraction_generations_changed
    assert [row["layer"] for row in r["sweep"]] == [0, 1, 2, 3]
    code, out, _ = run_cli(capsys, "steer", "--model", str(saved_model), "--prompt",
                           "sky is green", "--strength", "3", "--max-new-tokens", "1")
    assert code == 0 and "steered:" in out and "cosine" in out


def test_cli_missing_model_and_bad_options(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run_cli(capsys, "steer", "--model", "nobody-org/no-such-model-xyz",
                             "--prompt", "hello")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "nobody-org/no-such-model-xyz" in err
    code, _, err = run_cli(capsys, "steer", "--model", "x")
    assert code == 2 and "--prompt" in err
    code, _, err = run_cli(capsys, "steer", "--model", "x", "--prompt", "y", "--sweep")
    assert code == 2 and "--sweep needs --evaluate" in err
