"""The lean drafter is the same skip-mode model as transformers' pass with `skipping(...)`, and
decoding with it is still exactly the full model's."""

import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SkipSet, decode, load_model, num_layers
from swiftlab.engine.cache import SkipAwareCache
from swiftlab.engine.decoding import SwiftParams
from swiftlab.engine import leandraft
from swiftlab.support.errors import SwiftlabError
from swiftlab.engine.leandraft import LeanDrafter, draft_dtype, lean_drafter
from swiftlab.engine.skipping import is_pristine, skipping


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
                         swift=SwiftParams(verify=verify, lean_draft=lean, fallback=False, draft_dtype="model"))
            for lean in (True, False)}
    assert runs[True].token_ids == runs[False].token_ids == ar.token_ids
    assert runs[True].drafted_per_step == runs[False].drafted_per_step
    assert runs[True].accepted_per_step == runs[False].accepted_per_step
    assert len(calls) == sum(runs[True].drafted_per_step) > 0
    assert is_pristine(model)


def run_drafter(model, dtype, skip, prompt_len=40, steps=8, seed=3):
    """Logits per step and the final cache of a lean drafter in `dtype` over random tokens."""
    vocab = model.get_input_embeddings().num_embeddings
    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randint(3, vocab, (1, prompt_len), generator=gen)
    cache = SkipAwareCache(model.config)
    with torch.inference_mode():
        model(input_ids=prompt, cache=cache, use_cache=True)
        lean = lean_drafter(model, cache, dtype)
        logits = [lean.logits(t, prompt_len + j, cache, skip)
                  for j, t in enumerate(torch.randint(3, vocab, (steps,), generator=gen).tolist())]
    return lean, torch.stack(logits), cache


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_reduced_precision_drafter_is_close_to_the_models_own(dtype):
    """A half-precision copy drafts the same skip-mode model up to rounding: float32 logits and KV
    entries, close to the float32 drafter's, mostly the same top token."""
    model, _ = load_model("lab")
    skip = SkipSet.uniform(num_layers(model), 0.45)
    own, want, want_cache = run_drafter(model, "model", skip)
    low, got, got_cache = run_drafter(model, dtype, skip)
    assert own.dtype == torch.float32 and low.dtype == getattr(torch, dtype)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    tol = 0.05 if dtype == "float16" else 0.5  # bfloat16 keeps 8 bits of mantissa
    assert (got - want).abs().max() < tol
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() >= 0.75
    for a, b in zip(got_cache.layers, want_cache.layers):
        assert a.keys.dtype == torch.float32 and a.keys.shape == b.keys.shape
        assert (a.keys - b.keys).abs().max() < tol * 4
    assert not torch.equal(got, want)  # it really read the copy


def test_model_precision_reads_the_models_own_tensors():
    model = tiny_model("llama")
    lean = lean_drafter(model, SkipAwareCache(model.config), "model")
    weights = {p.data_ptr() for p in model.parameters()}
    matrices = [m for layer in lean.layers for m in (layer.qkv, layer.o, layer.gate_up, layer.down)]
    assert all(w.data_ptr() in weights for m in matrices + [lean.lm_head] for w, _ in m.parts)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "auto"])
@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_reduced_precision_drafts_keep_the_output(family, dtype):
    model = tiny_model(family)
    prompt = [1, 5, 9, 14, 3, 7, 22, 40]
    ar = decode(model, prompt, method="ar", max_new_tokens=50)
    swift = decode(model, prompt, method="swift", skip_set=SkipSet.uniform(num_layers(model), 0.4),
                   max_new_tokens=50, swift=SwiftParams(draft_dtype=dtype, fallback=False))
    assert swift.token_ids == ar.token_ids
    assert sum(swift.drafted_per_step) > 0
    assert is_pristine(model)


def test_an_overflowing_copy_falls_back_to_the_models_precision():
    """Activations past float16's range (65504) give inf in the copy: that token is redone with the
    model's own tensors, which the drafter then keeps, so its logits are the float32 drafter's."""
    model = tiny_model("llama")
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.up_proj.weight.mul_(3e3)
            layer.mlp.gate_proj.weight.mul_(3e3)
    skip = SkipSet((), (), num_layers(model))
    own, want, want_cache = run_drafter(model, "model", skip)
    low, got, got_cache = run_drafter(model, "float16", skip)
    assert low.dtype == torch.float32  # switched back
    assert draft_dtype(model, "auto") == torch.float32  # and "auto" does not try again on this model
    torch.testing.assert_close(got, want)
    for a, b in zip(got_cache.layers, want_cache.layers):
        torch.testing.assert_close(a.keys, b.keys)  # the failed attempt left no entries behind


def test_a_copy_is_made_once_and_again_when_the_weights_change():
    model = tiny_model("llama")
    skip = SkipSet((), (), num_layers(model))
    first, before, _ = run_drafter(model, "float16", skip)
    again, same, _ = run_drafter(model, "float16", skip)
    assert again.layers[0].qkv.parts[0][0].data_ptr() == first.layers[0].qkv.parts[0][0].data_ptr()
    torch.testing.assert_close(same, before)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight.mul_(2.0)  # what an optimizer step does: in place
    _, changed, _ = run_drafter(model, "float16", skip)
    _, own, _ = run_drafter(model, "model", skip)
    assert (changed - before).abs().max() > 1e-2  # the new weights are read
    assert (changed - own).abs().max() < 1e-2  # the copy is of them


def test_auto_precision(monkeypatch):
    model = tiny_model("llama")
    assert draft_dtype(model, "auto") == torch.float16  # a tiny float32 model: the copy is cheap
    monkeypatch.setattr(leandraft, "resident_bytes", lambda: 10_000)  # the copy would dominate memory
    assert draft_dtype(model, "auto") == torch.float32
    monkeypatch.setattr(leandraft, "resident_bytes", lambda: None)  # memory unknown: no copy
    assert draft_dtype(model, "auto") == torch.float32
    assert draft_dtype(model.half(), "auto") == torch.float16  # already half: its own tensors
    with pytest.raises(SwiftlabError, match="unknown draft dtype 'int4'"):
        draft_dtype(model, "int4")
    with pytest.raises(SwiftlabError, match="unknown draft dtype 'int4'"):
        SwiftParams(draft_dtype="int4")
