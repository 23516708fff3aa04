"""Matchness: equals a direct computation, batched equals one by one, and touches nothing."""

import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SkipSet, decode, is_pristine, num_layers, skipping
from swiftlab.engine.cache import SkipAwareCache
from swiftlab.engine.matchness import matchness_scores

WINDOW = 16


def greedy_tokens(model, n=40):
    r = decode(model, [1, 5, 9, 23, 40, 7], method="ar", max_new_tokens=n)
    return r.prompt_ids + r.token_ids


def cache_for(model, tokens):
    """The cache a decoding run holds: every token but the pending last one."""
    cache = SkipAwareCache(model.config)
    with torch.no_grad():
        model(input_ids=torch.tensor([tokens[:-1]]), position_ids=torch.arange(len(tokens) - 1).unsqueeze(0),
              cache=cache, use_cache=True)
    return cache


def skip_window_logits(model, tokens, skip_set, window=WINDOW):
    """Spelled out: full-model prefix, then the skip model over the window; its logits and the next tokens."""
    start = len(tokens) - 1 - window
    with torch.no_grad():
        prefix = model(input_ids=torch.tensor([tokens[:start]]), use_cache=True)
        with skipping(model, skip_set):
            logits = model(input_ids=torch.tensor([tokens[start:-1]]),
                           position_ids=torch.arange(start, len(tokens) - 1).unsqueeze(0),
                           cache=prefix.cache, use_cache=True).logits[0]
    return logits, tokens[start + 1:]


def direct_matchness(model, tokens, skip_set, window=WINDOW):
    """argmax vs next token"""
    logits, targets = skip_window_logits(model, tokens, skip_set, window)
    return sum(p == t for p, t in zip(logits.argmax(-1).tolist(), targets)) / window


def direct_confident_matchness(model, tokens, skip_set, min_confidence, window=WINDOW):
    """A position counts where the skip model's argmax is the next token and its softmax probability is at
    least min_confidence (drafting would go on past it)."""
    logits, targets = skip_window_logits(model, tokens, skip_set, window)
    probs = logits.float().softmax(-1)
    return sum(int(p.argmax()) == t and float(p.max()) >= min_confidence for p, t in zip(probs, targets)) / window


def candidate_sets(L):
    return [SkipSet.none(L), SkipSet.uniform(L, 0.5), SkipSet.random(L, 0.4, seed=1),
            SkipSet.random(L, 0.6, seed=2), SkipSet.early_exit(L, 3)]


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt", "gpt_neox", "gemma2", "qwen3"])
def test_batched_equals_one_by_one_equals_direct(family):
    model = tiny_model(family)
    tokens = greedy_tokens(model)
    cache = cache_for(model, tokens)
    before = [(layer.keys.clone(), layer.get_seq_length()) for layer in cache.layers]
    sets = candidate_sets(num_layers(model))
    batched = matchness_scores(model, cache, tokens, WINDOW, sets)
    one_by_one = [matchness_scores(model, cache, tokens, WINDOW, [s])[0] for s in sets]
    direct = [direct_matchness(model, tokens, s) for s in sets]
    assert batched == one_by_one == pytest.approx(direct)
    assert batched[0] == 1.0  # nothing skipped: the full model agrees with its own greedy tokens
    assert min(batched) < 1.0  # and skipping does change predictions
    # the decoding state is untouched
    assert all(torch.equal(k, layer.keys) and n == layer.get_seq_length()
               for (k, n), layer in zip(before, cache.layers))
    assert is_pristine(model)


def test_sliding_window_prefix_already_dropped_is_recomputed():
    model = tiny_model("gemma2")  # sliding window 12, shorter than the prefix
    tokens = greedy_tokens(model)
    cache = cache_for(model, tokens)
    cache.crop_to(len(tokens) - 1)  # what a decoding step does: sliding layers trim to their window
    assert cache.prefix_view(len(tokens) - 1 - WINDOW) is None
    sets = candidate_sets(num_layers(model))
    assert matchness_scores(model, cache, tokens, WINDOW, sets) == pytest.approx(
        [direct_matchness(model, tokens, s) for s in sets])


def test_window_longer_than_text():
    model = tiny_model("llama")
    with pytest.raises(ValueError, match="need more than 16 tokens"):
        matchness_scores(model, SkipAwareCache(model.config), [1, 2, 3], WINDOW, [SkipSet.none(6)])


def test_a_search_leaves_no_tensors_for_the_cyclic_collector():
    """Scoring passes must free their views by reference counting: a view kept alive by a reference
    cycle held that step's whole KV cache until the cyclic collector next ran (+100 MB on a long code
    prompt, which the memory benchmark caught)."""
    import gc

    from swiftlab.search.skipsearch import SearchConfig, SkipSearch

    model = tiny_model("llama")
    L = num_layers(model)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        # max_score 1.0 is never exceeded: the search keeps scoring (a lucky early set must not end it)
        search = SkipSearch(L, SearchConfig(window=WINDOW, max_score=1.0), SkipSet.uniform(L, 0.5))
        decode(model, [1, 5, 9, 23, 40, 7], method="swift", max_new_tokens=60, search=search)
        assert search.iteration > 5  # the scoring really ran
        gc.collect()
        cyclic_tensors = [o for o in gc.garbage if torch.is_tensor(o)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert cyclic_tensors == []


def test_confident_matchness_counts_only_the_guesses_drafting_would_go_on_from(stories_path):
    # real weights: the skip model is sure of some guesses and unsure of others
    from swiftlab import load_model

    model, _ = load_model(stories_path)
    tokens = greedy_tokens(model, 60)
    cache = cache_for(model, tokens)
    sets = candidate_sets(num_layers(model))
    plain = matchness_scores(model, cache, tokens, WINDOW, sets)
    for eps in (0.3, 0.8):
        confident = matchness_scores(model, cache, tokens, WINDOW, sets, min_confidence=eps)
        assert confident == pytest.approx([direct_confident_matchness(model, tokens, s, eps) for s in sets])
        assert all(c <= p for c, p in zip(confident, plain))
    assert matchness_scores(model, cache, tokens, WINDOW, sets, min_confidence=0.0) == plain
    # the threshold bites: some right guesses are unsure ones
    assert sum(matchness_scores(model, cache, tokens, WINDOW, sets, min_confidence=0.8)) < sum(plain)
    assert is_pristine(model)
