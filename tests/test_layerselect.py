"""Per-step layer selection (layerselect.py): the dynamic programme, the batched sub-layers it runs, the
decode hook, and that the output stays the full model's (greedy identity, lossless sampling)."""

import itertools

import numpy as np
import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SamplingParams, SkipSet, SwiftParams, decode, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.engine.cache import SkipAwareCache
from swiftlab.support.errors import SwiftlabError
from swiftlab.analysis.harness import make_runners
from swiftlab.search.layerselect import LayerSelector, LeanBlocks, SelectParams, choose_skips, skip_set_from_blocks
from swiftlab.engine.leandraft import lean_drafter
from swiftlab.search.skipsearch import SearchConfig, SkipSearch
from swiftlab.engine.skipping import is_pristine, skipping
from swiftlab.tasks import get_examples


# ----- the dynamic programme on hand-made sub-layers ----------------------------------------------------
def additive_toy(magnitudes, width=12, tokens=2, seed=0):
    """Sub-layer b adds magnitudes[b] along its own axis (the same for every token), whatever its input."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(tokens, width, generator=g) * 0.1
    base[:, :len(magnitudes)] = 0.0  # the sub-layers' axes start empty
    axes = torch.eye(width)[:len(magnitudes)]

    def apply_block(b, rows):
        return rows + magnitudes[b] * axes[b]

    return base, apply_block


def run_with(start, apply_block, blocks, skipped):
    state = start.unsqueeze(0)
    for b in range(blocks):
        if b not in skipped:
            state = apply_block(b, state)
    return state[0]


def cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean())


@pytest.mark.parametrize("budget", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_programme_finds_the_brute_force_best_set_on_a_4_layer_toy(budget, seed):
    # 4 layers = 8 sub-layers; the first and last layer's four are never skipped
    magnitudes = (torch.rand(8, generator=torch.Generator().manual_seed(seed)) * 2 + 0.1).tolist()
    start, apply_block = additive_toy(magnitudes, seed=seed)
    skippable = {2, 3, 4, 5}
    full = run_with(start, apply_block, 8, set())
    best = max(itertools.combinations(sorted(skippable), budget),
               key=lambda s: cosine(run_with(start, apply_block, 8, set(s)), full))
    choice = choose_skips(start, apply_block, 8, skippable, budget)
    assert choice.skipped == sorted(best)
    assert choice.similarity[budget] == pytest.approx(cosine(run_with(start, apply_block, 8, set(best)), full), abs=1e-6)
    assert choice.similarity[0] == pytest.approx(1.0)


def test_the_programme_skips_the_smallest_contributions():
    """Hand-checked: the two skippable sub-layers that add least are the ones to skip."""
    start, apply_block = additive_toy([1.0, 1.0, 3.0, 0.2, 2.0, 0.3, 1.0, 1.0])
    choice = choose_skips(start, apply_block, 8, {2, 3, 4, 5}, 2)
    assert choice.skipped == [3, 5]
    assert skip_set_from_blocks(choice.skipped, 4) == SkipSet((), (1, 2), 4)
    assert skip_set_from_blocks([2, 5], 4) == SkipSet((1,), (2,), 4)


def test_the_programme_refuses_a_budget_beyond_the_skippable():
    start, apply_block = additive_toy([1.0] * 8)
    with pytest.raises(SwiftlabError, match="cannot skip 5"):
        choose_skips(start, apply_block, 8, {2, 3, 4, 5}, 5)


# ----- the batched sub-layers against the model's own skipping pass -------------------------------------
@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2"])
def test_rows_reproduce_the_models_skip_mode_passes(family):
    """Rows with different skip sets, side by side in one batch, each end where the model's own pass with
    that set ends (over the same cached prefix), logits to float rounding."""
    model = tiny_model(family)
    L = num_layers(model)
    ids = torch.randint(3, 90, (1, 14), generator=torch.Generator().manual_seed(3))
    window = 4
    prefix_len = ids.shape[1] - window
    sets = [SkipSet.none(L), SkipSet((1, 3), (2,), L), SkipSet((2, 4), (1, 2, 3), L)]
    cache = SkipAwareCache(model.config)
    with torch.inference_mode():
        model(input_ids=ids[:, :prefix_len], cache=cache, use_cache=True)
        drafter = lean_drafter(model, cache, "model")
        blocks = LeanBlocks(drafter, cache, ids[0, prefix_len:].tolist(), prefix_len)
        rows = blocks.embeddings().unsqueeze(0).repeat(len(sets), 1, 1)
        for b in range(2 * L):
            ran = blocks(b, rows)
            skips = torch.tensor([(b // 2) in (s.attention if b % 2 == 0 else s.mlp) for s in sets])
            rows = torch.where(skips.view(-1, 1, 1), rows, ran)
        mine = drafter.lm_head(drafter._norm(drafter.final_norm, rows.reshape(-1, rows.shape[-1])))[0]
        for r, s in enumerate(sets):
            view = cache.prefix_view(prefix_len)
            with skipping(model, s):
                theirs = model(input_ids=ids[:, prefix_len:], cache=view, use_cache=True).logits[0]
            torch.testing.assert_close(mine.view(len(sets), window, -1)[r], theirs, atol=1e-4, rtol=1e-4)
    assert cache.get_seq_length() == prefix_len  # the selection read the cache and wrote nothing
    assert is_pristine(model)


def test_a_selection_follows_the_adapters_rules_and_leaves_cache_and_model_as_found():
    model = tiny_model("llama")
    L = num_layers(model)
    context = torch.randint(3, 90, (20,), generator=torch.Generator().manual_seed(0)).tolist()
    cache = SkipAwareCache(model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([context[:-1]]), cache=cache, use_cache=True)
    keys = [layer.keys.clone() for layer in cache.layers]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    selector = LayerSelector(model, SelectParams(ratio=0.5, window=3))
    chosen = selector.select(cache, context)
    assert chosen.num_skipped == 4 and chosen.num_layers == L
    assert not {0, L - 1} & (set(chosen.attention) | set(chosen.mlp))
    assert all(torch.equal(a.keys, b) for a, b in zip(cache.layers, keys))
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert is_pristine(model)
    # the similarity it reports for its set is the skip-mode model's, measured by transformers' own pass
    assert selector.last.similarity[chosen.num_skipped] < 1.0
    assert selector.last.similarity == sorted(selector.last.similarity, reverse=True)


# ----- the decode hook: the output is the full model's ---------------------------------------------------
def test_greedy_identity_with_the_selector_on_tiny_models():
    for family, cases in (("llama", 3), ("qwen2", 1)):
        model = tiny_model(family)
        prompt = [5, 9, 11, 3, 40, 22, 17, 8]
        ar = decode(model, prompt, method="ar", max_new_tokens=40)
        for params in (SelectParams(every=1), SelectParams(), SelectParams(every=3, poor=0.5, window=1))[:cases]:
            selector = LayerSelector(model, params)
            for swift in (SwiftParams(), SwiftParams(verify="chain", fallback=False), SwiftParams(lookup=5))[:cases]:
                result = decode(model, prompt, method="swift", max_new_tokens=40, swift=swift, selector=selector)
                assert result.token_ids == ar.token_ids
                assert result.timings_s["optimize"] > 0  # the selection's time is counted
            assert selector.selections >= 3
        model.train()
        decode(model, prompt, method="swift", max_new_tokens=10, selector=LayerSelector(model))
        assert model.training and is_pristine(model)


def test_the_selected_set_changes_with_the_context_and_drafts_get_accepted():
    model, tokenizer = load_model("lab")
    ex = get_examples("story", 1)[0]
    ar = decode(model, encode_prompt(tokenizer, ex.prompt), method="ar", max_new_tokens=64)
    selector = LayerSelector(model, SelectParams(every=1))
    chosen = []
    original = selector.select
    selector.select = lambda cache, context: chosen.append(original(cache, context)) or chosen[-1]
    result = decode(model, encode_prompt(tokenizer, ex.prompt), method="swift", max_new_tokens=64,
                    swift=SwiftParams(fallback=False), selector=selector)
    assert result.token_ids == ar.token_ids
    assert len(set(chosen)) > 1
    assert all(s.num_skipped == SkipSet.uniform(16, 0.45).num_skipped for s in chosen)
    assert result.acceptance_rate > 0.5


def test_greedy_identity_on_real_weights(stories_path):
    model, tokenizer = load_model(stories_path)
    for prompt in ("Once upon a time", "The little dog"):
        ids = tokenizer(prompt)["input_ids"]
        ar = decode(model, ids, method="ar", max_new_tokens=48)
        for every in (1, 16):
            result = decode(model, ids, method="swift", max_new_tokens=48,
                            selector=LayerSelector(model, SelectParams(ratio=0.34, every=every)))
            assert result.token_ids == ar.token_ids


def test_sampling_with_the_selector_keeps_the_models_distribution():
    from test_sampling import PROMPT, V, chi_square_p, exact_marginals

    torch.manual_seed(0)
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=6,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                         bos_token_id=None, eos_token_id=None)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(6.0)
    params = SamplingParams(temperature=1.0)
    want2, want3 = exact_marginals(model, params)
    selector = LayerSelector(model, SelectParams(ratio=0.5, every=1))
    swift = SwiftParams(epsilon=0.0, max_draft=2, sampling_candidates=((0.0, 3),), fallback=False)
    second, third, drafted, accepted = [], [], 0, 0
    for seed in range(600):
        r = decode(model, PROMPT, method="swift", max_new_tokens=3, sampling=params, seed=seed, swift=swift,
                   selector=selector)
        second.append(r.token_ids[1])
        third.append(r.token_ids[2])
        drafted += sum(r.drafted_per_step)
        accepted += sum(r.accepted_per_step)
    assert 0.15 * drafted < accepted < drafted  # accept and reject-and-resample both ran
    assert chi_square_p(np.array(second), want2) > 1e-3
    assert chi_square_p(np.array(third), want3) > 1e-3


# ----- errors ---------------------------------------------------------------------------------------------
def test_clear_errors():
    llama = tiny_model("llama")
    with pytest.raises(SwiftlabError, match="Llama-like layers.*gpt2"):
        LayerSelector(tiny_model("gpt2"))
    for bad in (dict(ratio=0.0), dict(ratio=1.5), dict(window=0), dict(every=0), dict(poor=2.0),
                dict(draft_dtype="int8"), dict(every=2.5)):
        with pytest.raises(SwiftlabError):
            SelectParams(**bad)
    with pytest.raises(SwiftlabError, match="SelectParams"):
        LayerSelector(llama, {"ratio": 0.4})
    with pytest.raises(SwiftlabError, match="without a search"):
        decode(llama, [1, 2, 3], method="ar", selector=LayerSelector(llama))
    with pytest.raises(SwiftlabError, match="without a search"):
        decode(llama, [1, 2, 3], selector=LayerSelector(llama), search=SkipSearch(num_layers(llama), SearchConfig()))
    for name, message in (("clasp:x", "whole number"), ("clasp:0", "whole number"), ("uniform:3", "interval")):
        with pytest.raises(SwiftlabError, match=message):
            make_runners(llama, [name], task="story", model_name="tiny")
    assert is_pristine(llama)
