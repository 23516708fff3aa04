"""The compiled lean draft pass (compileddraft.py): the eager lean pass's logits and KV entries, one graph for every
skip set and context length, eager where the cache cannot take it, and decoding with it still the full model's."""

import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SkipSet, decode, num_layers
from swiftlab.engine.cache import SkipAwareCache
from swiftlab.engine.compileddraft import CompiledDraft
from swiftlab.engine.decoding import SwiftParams
from swiftlab.engine.leandraft import LeanDrafter, lean_drafter
from swiftlab.engine.skipping import is_pristine

PROMPT, STEPS = 9, 5


def graphs_compiled() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def skip_sets(L):
    return [SkipSet.uniform(L, 0.5), SkipSet((), (), L), SkipSet((1, 2), (2, 4), L),
            SkipSet(tuple(range(1, L - 1)), tuple(range(1, L - 1)), L)]


def prefilled(model, prompt, capacity=None):
    cache = SkipAwareCache(model.config, capacity=capacity)
    with torch.inference_mode():
        model(input_ids=prompt, cache=cache, use_cache=True)
    return cache


# biases and grouped queries (4 query heads over 2 KV heads) on; the model's own tensors (a product per linear)
# and a float16 copy (one concatenated product for q/k/v and for gate/up)
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-4), (torch.float16, 3e-2)], ids=["model", "float16"])
def test_the_compiled_pass_is_the_eager_lean_pass_for_every_skip_set_and_length(dtype, atol):
    model = tiny_model("llama", seed=5, attention_bias=True, mlp_bias=True)
    L, vocab = num_layers(model), model.config.vocab_size
    torch.manual_seed(2)
    eager, compiled = LeanDrafter(model, dtype), LeanDrafter(model, dtype, compiled=True)
    graphs = None
    for prompt_len in (PROMPT, PROMPT + 4):  # another context length: the same graph
        prompt = torch.randint(3, vocab, (1, prompt_len))
        for skip in skip_sets(L):
            mine, theirs = prefilled(model, prompt, capacity=prompt_len + STEPS), prefilled(model, prompt)
            with torch.inference_mode():
                for j, token in enumerate(torch.randint(3, vocab, (STEPS,)).tolist()):
                    ours = compiled.logits(token, prompt_len + j, mine, skip)
                    graphs = graphs_compiled() if graphs is None else graphs
                    torch.testing.assert_close(ours, eager.logits(token, prompt_len + j, theirs, skip), atol=atol, rtol=1e-3)
            # every layer moved on together (skipped ones hold zeros at the draft's positions); the kept ones
            # hold the eager pass's entries
            assert all(layer.get_seq_length() == prompt_len + STEPS for layer in mine.layers)
            for i, (a, b) in enumerate(zip(mine.layers, theirs.layers)):
                if i in skip.attention:
                    assert b.get_seq_length() == prompt_len and not a.keys[:, :, prompt_len:].any()
                else:
                    torch.testing.assert_close(a.keys, b.keys, atol=atol, rtol=1e-3)
                    torch.testing.assert_close(a.values, b.values, atol=atol, rtol=1e-3)
    assert graphs_compiled() == graphs, "the compiled draft pass was compiled again"
    assert is_pristine(model)


def test_a_cache_it_cannot_write_drafts_eagerly():
    model = tiny_model("llama", seed=5, attention_bias=True, mlp_bias=True)
    L, prompt = num_layers(model), torch.randint(3, 90, (1, PROMPT))
    skip = SkipSet.uniform(L, 0.5)
    eager, compiled = LeanDrafter(model, torch.float32), LeanDrafter(model, torch.float32, compiled=True)
    with torch.inference_mode():
        growing = prefilled(model, prompt)  # transformers' own layers, no preallocated buffers
        assert compiled.compiled.logits(5, PROMPT, growing, skip) is None
        assert growing.get_seq_length() == PROMPT
        torch.testing.assert_close(compiled.logits(5, PROMPT, growing, skip), eager.logits(5, PROMPT, prefilled(model, prompt), skip))
        uneven = prefilled(model, prompt, capacity=PROMPT + 4)
        eager.logits(5, PROMPT, uneven, skip)  # an eager draft: skipped layers stay behind
        lengths = [layer.get_seq_length() for layer in uneven.layers]
        assert len(set(lengths)) == 2 and uneven.draft_slot(PROMPT + 1) is None
        assert [layer.get_seq_length() for layer in uneven.layers] == lengths  # nothing changed


def test_compiled_decoding_drafts_compiled_and_stays_the_full_models(monkeypatch):
    model = tiny_model("llama", seed=3)  # test_compiled.py's model: its full passes' kernels are on disk by now
    model.generation_config.eos_token_id = None
    compiled_drafts = []
    logits = CompiledDraft.logits

    def counted(self, *args):
        out = logits(self, *args)
        compiled_drafts.append(out is not None)
        return out
    monkeypatch.setattr(CompiledDraft, "logits", counted)
    skip = SkipSet.uniform(num_layers(model), 0.5)
    for prompt in ([1, 5, 9, 23, 40], [7, 7, 12, 30, 31, 32, 33, 34, 7, 7, 12]):
        eager = decode(model, prompt, method="ar", max_new_tokens=24).token_ids
        for verify in ("tree", "chain"):
            swift = SwiftParams(verify=verify, fallback=False, compile=True)
            assert decode(model, prompt, method="swift", skip_set=skip, max_new_tokens=24, swift=swift).token_ids == eager
    assert compiled_drafts and all(compiled_drafts), "drafts of a compiled run went eager"
    assert lean_drafter(model, SkipAwareCache(model.config), compiled=True).compiled is not None
    assert is_pristine(model)


def test_a_model_the_graph_does_not_compile_for_drafts_eagerly_and_says_so():
    model = tiny_model("llama", seed=6)
    prompt, skip = torch.randint(3, 90, (1, PROMPT)), SkipSet.uniform(num_layers(model), 0.5)
    compiled = LeanDrafter(model, torch.float32, compiled=True)

    calls = []

    def failing(*args):
        calls.append(1)
        raise RuntimeError("inductor could not compile this\nmore detail")
    compiled.compiled.graph.fn = failing
    with torch.inference_mode():
        cache = prefilled(model, prompt, capacity=PROMPT + 8)
        with pytest.warns(UserWarning, match="did not compile for LlamaForCausalLM .*RuntimeError: inductor could not compile this"):
            ours = compiled.logits(5, PROMPT, cache, skip)
        assert compiled.compiled is None  # eager from now on
        theirs = LeanDrafter(model, torch.float32).logits(5, PROMPT, prefilled(model, prompt, capacity=PROMPT + 8), skip)
        torch.testing.assert_close(ours, theirs)
        again = LeanDrafter(model, torch.float32, compiled=True)  # the same graph: not tried again
        assert again.compiled.logits(6, PROMPT, prefilled(model, prompt, capacity=PROMPT + 8), skip) is None
        assert len(calls) == 1
