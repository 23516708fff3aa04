"""Probes: record shapes, and invariants checked against direct computations."""

import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SkipSet, num_layers, skipping
from swiftlab.engine.decoding import reference_continuation
from swiftlab.engine.matchness import matchness_scores
from swiftlab.analysis.probes import ImportanceRecord, RedundancyRecord, redundancy, sublayer_importance

PROMPTS = [[1, 5, 9, 23, 40, 7], [1, 8, 3, 3, 60]]
W = 12


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def test_importance_equals_the_matchness_drop_computed_directly(model):
    record = sublayer_importance(model, PROMPTS, "t", window=W)
    L = num_layers(model)
    assert len(record.attention_drop) == len(record.mlp_drop) == L
    for i in (0, 2, L - 1):
        for kind, drops in (("attention", record.attention_drop), ("mlp", record.mlp_drop)):
            s = SkipSet((i,) if kind == "attention" else (), (i,) if kind == "mlp" else (), L, allow_edges=True)
            direct = []
            for ids in PROMPTS:
                tokens, cache = reference_continuation(model, ids, W + 1)
                direct.append(1.0 - matchness_scores(model, cache, tokens, W, [s])[0])
            assert drops[i] == pytest.approx(sum(direct) / len(direct))
    assert all(k >= -1e-6 for k in record.attention_kl + record.mlp_kl)  # KL is never negative
    assert max(record.attention_kl + record.mlp_kl) > 0
    assert ImportanceRecord.from_json(record.to_json()) == record


def test_redundancy_matches_hidden_states_computed_with_hooks(model):
    record = redundancy(model, PROMPTS[:1], "t", window=W)
    L = num_layers(model)
    assert len(record.attention_cosine) == len(record.mlp_cosine) == L
    assert all(-1.0 <= c <= 1.0 + 1e-6 for c in record.attention_cosine + record.mlp_cosine)
    # direct: with layer i's MLP skipped, layer i's output is exactly its input plus attention
    tokens, cache = reference_continuation(model, PROMPTS[0], W + 1)
    start = len(tokens) - 1 - W
    with torch.no_grad():
        full = model(torch.tensor([tokens[:-1]]), output_hidden_states=True).hidden_states
        with skipping(model, SkipSet((), (1,), L, allow_edges=True)):
            no_mlp = model(torch.tensor([tokens[:-1]]), output_hidden_states=True).hidden_states
    before, after_attn, after_mlp = full[1][0, start:], no_mlp[2][0, start:], full[2][0, start:]
    cos = torch.nn.functional.cosine_similarity
    assert record.attention_cosine[1] == pytest.approx(cos(before, after_attn, dim=-1).mean().item(), abs=1e-4)
    assert record.mlp_cosine[1] == pytest.approx(cos(after_attn, after_mlp, dim=-1).mean().item(), abs=1e-4)
    assert RedundancyRecord.from_json(record.to_json()) == record


def test_ratio_sweep_shapes_and_ratio_zero(model):
    from swiftlab.analysis.probes import STRATEGIES, SweepRecord, ratio_sweep

    record = ratio_sweep(model, PROMPTS, [0.0, 0.5], max_new_tokens=16)
    assert len(record.rows) == 2 * len(STRATEGIES)
    for row in record.rows:
        assert row.identical  # every strategy's decoding stays lossless
        if row.ratio == 0.0:
            assert row.matchness == 1.0 and row.set_ratio == 0.0  # nothing skipped: full agreement
        else:
            assert 0.0 <= row.matchness <= 1.0 and row.set_ratio > 0
    ee = [r for r in record.rows if r.strategy == "early_exit" and r.ratio == 0.5][0]
    assert ee.attention == ee.mlp and ee.attention[-1] == num_layers(model) - 1  # the last layers
    assert SweepRecord.from_json(record.to_json()) == record


def test_latency_breakdown_sums_to_one(model):
    from swiftlab import decode
    from swiftlab.analysis.probes import latency_breakdown

    results = [decode(model, ids, method="swift", skip_set=SkipSet.uniform(6, 0.5), max_new_tokens=20)
               for ids in PROMPTS]
    shares = latency_breakdown(results)
    assert sum(shares[k] for k in ("optimize", "draft", "verify", "other")) == pytest.approx(1.0)
    assert shares["draft"] > 0 and shares["ms_per_token"] > 0
