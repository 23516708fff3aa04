"""The lean drafter is the same skip-mode model as transformers' pass with `skipping(...)`, and
decoding with it is still exactly the full model's."""

import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SkipSet, decode, load_model, num_layers
from swiftlab.cache import SkipAwareCache
from swiftlab.decoding import SwiftParams
from swiftlab.leandraft import LeanDrafter, lean_drafter
from swiftlab.skipping import is_pristine, skipping


def skip_sets(L):
    return [SkipSet((), (), L), SkipSet.uniform(L, 0.5),
            SkipSet((1, 2), (2, 4), L),  # layer 2 skipped whole
            SkipSet(tuple(range(1, L - 1)), (), L)]


def compare_draft_passes(model, prompt_len=20, steps=6, atol=1e-4):
    """Feed the same tokens through both drafters into two caches; logits and KV must agree."""
    L = num_layers(model)
    vocab = model.get_input_embeddings().num_embeddings
    torch.manual_seed(1)
    prompt = torch.randint(3, vocab, (1, prompt_len))
    for skip in skip_sets(L):
        caches = [SkipAwareCache(model.config) for _ in range(2)]
        with torch.inference_mode():
            for cache in caches:
                model(input_ids=prompt, cache=cache, use_cache=True)
            lean = lean_drafter(model, caches[0])
            assert isinstance(lean, LeanDrafter)
            for j, token in enumerate(torch.randint(3, vocab, (steps,)).tolist()):
                mine = lean.logits(token, prompt_len + j, caches[0], skip)
                with skipping(model, skip):
                    theirs = model(input_ids=torch.tensor([[token]]), position_ids=torch.tensor([[prompt_len + j]]),
                                   cache=caches[1], use_cache=True).logits[0, -1]
                torch.testing.assert_close(mine, theirs, atol=atol, rtol=1e-4)
                assert int(mine.argmax()) == int(theirs.argmax())
        for a, b in zip(caches[0].layers, caches[1].layers):
            assert a.get_seq_length() == b.get_seq_length()  # skipped attention wrote nothing in both
            torch.testing.assert_close(a.keys, b.keys, atol=atol, rtol=1e-4)
            torch.testing.assert_close(a.values, b.values, atol=atol, rtol=1e-4)
    assert is_pristine(model)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2"])
def test_same_drafter_as_transformers(family):
    compare_draft_passes(tiny_model(family))


def test_same_drafter_with_biases_and_grouped_heads():
    # qwen2 has q/k/v biases; an MLP/attention bias on llama exercises the other branch; the tiny
    # configs already use 4 query heads over 2 KV heads
    compare_draft_passes(tiny_model("llama", attention_bias=True, mlp_bias=True))


def test_same_drafter_on_the_lab_model():
    model, _ = load_model("lab")
    compare_draft_passes(model, prompt_len=300, steps=4)


@pytest.mark.parametrize("family", ["qwen3", "gemma", "gemma2", "phi3", "gpt2", "opt", "granite"])
def test_other_families_draft_through_transformers(family):
    model = tiny_model(family)
    assert lean_drafter(model, SkipAwareCache(model.config)) is None


def test_length_dependent_rotary_is_left_to_transformers():
    model = tiny_model("llama", rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0})
    assert lean_drafter(model, SkipAwareCache(model.config)) is None


@pytest.mark.parametrize("verify", ["tree", "chain"])
def test_lean_drafts_are_transformers_drafts(verify, monkeypatch):
    """Same output as autoregressive decoding, same drafts as the transformers drafter, and the lean
    drafter really is the one drafting."""
    model = tiny_model("llama")
    L = num_layers(model)
    calls = []
    real = LeanDrafter.logits
    monkeypatch.setattr(LeanDrafter, "logits", lambda self, *a: calls.append(1) or real(self, *a))
    prompt = [1, 5, 9, 14, 3, 7, 22, 40]
    ar = decode(model, prompt, method="ar", max_new_tokens=60)
    runs = {lean: decode(model, prompt, method="swift", skip_set=SkipSet.uniform(L, 0.4), max_new_tokens=60,
                         swift=SwiftParams(verify=verify, lean_draft=lean, fallback=False)) for lean in (True, False)}
    assert runs[True].token_ids == runs[False].token_ids == ar.token_ids
    assert runs[True].drafted_per_step == runs[False].drafted_per_step
    assert runs[True].accepted_per_step == runs[False].accepted_per_step
    assert len(calls) == sum(runs[True].drafted_per_step) > 0
    assert is_pristine(model)
