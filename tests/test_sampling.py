"""Sampling stays lossless: SWIFT's samples follow the full model's own distribution.

The exact marginal distribution of the 2nd and 3rd generated tokens is computed by enumerating
every prefix on a tiny-vocabulary model; SWIFT samples (drafting two tokens per step, so the
accept, reject-and-resample and bonus paths all run) are compared against it with a chi-square
goodness-of-fit test. A negative control shows the test has the power to catch a sampler that
returns the drafter's distribution instead.
"""

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from transformers import LlamaConfig, LlamaForCausalLM

from swiftlab import SamplingParams, SkipSet, SwiftParams, decode, skipping
from swiftlab.engine.sampling import probabilities

PROMPT = [3, 7, 1]
V = 12
N = 1500


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=6,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         bos_token_id=None, eos_token_id=None)
    m = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        m.lm_head.weight.mul_(6.0)
    return m


SKIP = SkipSet((1, 2, 3), (2, 4), 6)


def exact_marginals(model, params, skip_set=None):
    """P(token 2) and P(token 3) under the (optionally skip-mode) model, by enumeration."""
    with torch.no_grad(), skipping(model, skip_set):
        p1 = probabilities(model(torch.tensor([PROMPT])).logits[0, -1], params)  # [V]
        seq2 = torch.tensor([PROMPT + [a] for a in range(V)])
        p2_given = probabilities(model(seq2).logits[:, -1], params)  # [V(a), V]
        seq3 = torch.tensor([PROMPT + [a, b] for a in range(V) for b in range(V)])
        p3_given = probabilities(model(seq3).logits[:, -1], params).view(V, V, V)  # [a, b, c]
    joint12 = p1[:, None] * p2_given  # [a, b]
    return joint12.sum(0).double().numpy(), (joint12[:, :, None] * p3_given).sum((0, 1)).double().numpy()


def chi_square_p(samples, expected_probs):
    counts = np.bincount(samples, minlength=len(expected_probs)).astype(float)
    expected = expected_probs / expected_probs.sum() * len(samples)
    keep = expected >= 5  # pool the rare tokens into one bin, as the test requires
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return chisquare(obs, exp).pvalue


@pytest.mark.parametrize("verify", ["chain", "tree"])
@pytest.mark.parametrize("params", [SamplingParams(temperature=1.0),
                                    SamplingParams(temperature=0.7, top_k=6, top_p=0.9)],
                         ids=["t1", "t0.7-topk6-topp0.9"])
def test_swift_sampling_matches_the_model_distribution(model, params, verify, monkeypatch):
    import swiftlab.engine.decoding as engine

    paths = []  # accepted node paths, to check that siblings were really accepted
    original = engine.accept_sampled
    monkeypatch.setattr(engine, "accept_sampled",
                        lambda tree, p, g: paths.append((len(tree.chain), r := original(tree, p, g))) or r)
    want2, want3 = exact_marginals(model, params)
    second, third, drafted, accepted = [], [], 0, 0
    # two siblings per depth: enough for every branch of recursive rejection sampling to run
    swift = SwiftParams(epsilon=0.0, max_draft=4, verify=verify, sampling_candidates=((0.0, 3),),
                        fallback=False)
    for seed in range(N):
        r = decode(model, PROMPT, method="swift", skip_set=SKIP, max_new_tokens=3, sampling=params,
                   seed=seed, swift=swift)
        second.append(r.token_ids[1])
        third.append(r.token_ids[2])
        drafted += sum(r.drafted_per_step)
        accepted += sum(r.accepted_per_step)
    # the accept and the reject-and-resample paths must both have run many times
    assert 0.15 < accepted / drafted < 0.97
    with_sibling = sum(any(node >= chain for node in path) for chain, (_, path) in paths)
    assert (with_sibling > 100) if verify == "tree" else (with_sibling == 0)
    assert chi_square_p(np.array(second), want2) > 1e-3
    assert chi_square_p(np.array(third), want3) > 1e-3


def test_chi_square_catches_the_drafter_distribution(model):
    """Negative control: samples from the drafter's distribution must fail the same test."""
    params = SamplingParams(temperature=1.0)
    want2, _ = exact_marginals(model, params)
    draft2, _ = exact_marginals(model, params, SKIP)
    rng = np.random.default_rng(0)
    wrong = rng.choice(V, size=N, p=draft2 / draft2.sum())
    assert chi_square_p(wrong, want2) < 1e-6


def test_ar_sampling_matches_the_model_distribution(model):
    params = SamplingParams(temperature=1.0)
    want2, _ = exact_marginals(model, params)
    second = [decode(model, PROMPT, method="ar", max_new_tokens=2, sampling=params, seed=s).token_ids[1]
              for s in range(800)]
    assert chi_square_p(np.array(second), want2) > 1e-3


def test_same_seed_same_sample(model):
    params = SamplingParams(temperature=1.0)
    a = decode(model, PROMPT, method="swift", skip_set=SKIP, max_new_tokens=12, sampling=params, seed=7)
    b = decode(model, PROMPT, method="swift", skip_set=SKIP, max_new_tokens=12, sampling=params, seed=7)
    assert a.token_ids == b.token_ids


def test_warpers_agree_with_transformers():
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

    torch.manual_seed(1)
    logits = torch.randn(4, 50) * 3
    params = SamplingParams(temperature=0.8, top_k=10, top_p=0.85)
    x = TemperatureLogitsWarper(0.8)(None, logits.clone())
    x = TopKLogitsWarper(10)(None, x)
    x = TopPLogitsWarper(0.85)(None, x)
    torch.testing.assert_close(probabilities(logits, params), torch.softmax(x, -1))


def test_greedy_probabilities_are_plain_softmax():
    logits = torch.randn(3, 20)
    torch.testing.assert_close(probabilities(logits, SamplingParams()), torch.softmax(logits, -1))
