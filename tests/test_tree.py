"""Token trees: structure, masks, positions, greedy acceptance and the cache after acceptance."""

import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SkipSet, decode, num_layers
from swiftlab.engine.cache import SkipAwareCache
from swiftlab.engine.tree import DraftTree, accept_greedy, candidates_for, tree_mask, tree_positions

# chain a-b-c (depth 1..3); siblings: x, y at depth 1; none at 2; z at 3
TREE = DraftTree(chain=[10, 11, 12], siblings=[[20, 21], [], [22]])


def test_nodes_positions_and_sizes():
    assert TREE.size == 6 and TREE.tokens() == [10, 11, 12, 20, 21, 22]
    assert TREE.nodes() == [(-1, 1), (0, 2), (1, 3), (-1, 1), (-1, 1), (1, 3)]
    assert tree_positions(TREE, 5).tolist() == [[5, 6, 7, 8, 6, 6, 8]]
    assert TREE.sibling_index(3, 0) == 5


def test_mask_sees_prefix_root_and_ancestors_only():
    n = 2
    m = tree_mask(TREE, n)[0, 0].int().tolist()
    #          p0 p1 root a  b  c  x  y  z
    assert m == [[1, 1, 1, 0, 0, 0, 0, 0, 0],   # root
                 [1, 1, 1, 1, 0, 0, 0, 0, 0],   # a
                 [1, 1, 1, 1, 1, 0, 0, 0, 0],   # b
                 [1, 1, 1, 1, 1, 1, 0, 0, 0],   # c
                 [1, 1, 1, 0, 0, 0, 1, 0, 0],   # x (sibling of a)
                 [1, 1, 1, 0, 0, 0, 0, 1, 0],   # y
                 [1, 1, 1, 1, 1, 0, 0, 0, 1]]   # z (sibling of c: sees a, b)
    additive = tree_mask(TREE, n, additive_dtype=torch.float32)[0, 0]
    assert torch.equal(additive == 0, torch.tensor(m, dtype=torch.bool))


def test_candidate_counts_follow_confidence():
    assert [candidates_for(p) for p in (0.99, 0.9, 0.6, 0.2)] == [3, 5, 8, 10]


def one_hot_logits(targets, vocab=32):
    logits = torch.zeros(len(targets), vocab)
    logits[torch.arange(len(targets)), torch.tensor(targets)] = 5.0
    return logits


def test_greedy_acceptance_walks_the_chain_then_a_sibling():
    # rows: root, a, b, c, x, y, z. Full model wants a, then b, then z (not c): accept a, b, z + bonus
    new, path = accept_greedy(TREE, one_hot_logits([10, 11, 22, 1, 2, 3, 7]))
    assert path == [0, 1, 5] and new == [10, 11, 22, 7]
    # wants y at depth 1: y is accepted, then the bonus comes from y's row
    new, path = accept_greedy(TREE, one_hot_logits([21, 1, 1, 1, 1, 9, 1]))
    assert path == [4] and new == [21, 9]
    # wants something not in the tree: nothing accepted, its token is the bonus
    new, path = accept_greedy(TREE, one_hot_logits([30, 1, 1, 1, 1, 1, 1]))
    assert path == [] and new == [30]
    # the whole chain: bonus from c's row
    new, path = accept_greedy(TREE, one_hot_logits([10, 11, 12, 4, 1, 1, 1]))
    assert path == [0, 1, 2] and new == [10, 11, 12, 4]


@pytest.mark.parametrize("capacity", [None, 64, 6])  # dynamic; preallocated; preallocated, outgrown by the tree
def test_cache_after_accepting_a_sibling_equals_a_fresh_pass(capacity):
    model = tiny_model("llama")
    prefix = [1, 5, 9, 23, 40]
    n = len(prefix) - 1  # the last prefix token is the root (pending) token
    cache = SkipAwareCache(model.config, capacity=capacity)
    with torch.no_grad():
        model(input_ids=torch.tensor([prefix[:-1]]), cache=cache, use_cache=True)
        model(input_ids=torch.tensor([[prefix[-1]] + TREE.tokens()]), position_ids=tree_positions(TREE, n),
              attention_mask=tree_mask(TREE, n), cache=cache, use_cache=True)
    cache.keep(n + 1, [0, 1, 5], len(TREE.chain))  # a, b, then the sibling z
    accepted = prefix + [10, 11, 22]
    fresh = SkipAwareCache(model.config)
    with torch.no_grad():
        model(input_ids=torch.tensor([accepted]), cache=fresh, use_cache=True)
    for mine, ref in zip(cache.layers, fresh.layers):
        torch.testing.assert_close(mine.keys, ref.keys, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(mine.values, ref.values, rtol=1e-5, atol=1e-5)


def test_tree_lifts_tokens_per_pass_on_the_same_skip_set():
    model = tiny_model("llama")
    L = num_layers(model)
    from swiftlab import SwiftParams

    s = SkipSet.uniform(L, 0.75)
    chain = decode(model, [1, 5, 9], method="swift", skip_set=s, max_new_tokens=60, swift=SwiftParams(verify="chain", fallback=False))
    tree = decode(model, [1, 5, 9], method="swift", skip_set=s, max_new_tokens=60, swift=SwiftParams(verify="tree", fallback=False))
    assert tree.token_ids == chain.token_ids
    assert tree.mean_accepted_tokens > chain.mean_accepted_tokens
    assert len(tree.tree_size_per_step) == tree.steps and tree.tree_size_per_step[0] == 0
