"""The preallocated cache a decoding run uses: written in place, outgrown safely, no bigger than the dynamic one."""

import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SkipSet, decode, num_layers
from swiftlab.engine.cache import PreallocatedLayer, SkipAwareCache
from swiftlab.engine.decoding import DecodeSession, SwiftParams

PROMPT = [1, 5, 9, 23, 40, 7, 7, 12]


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def storage_bytes(cache) -> int:
    """Bytes the cache's layers hold: the storage under their keys and values (a cropped dynamic layer's
    keys are a view: it holds its longest pass's positions until the next one; a preallocated one its buffers)."""
    return sum(t.untyped_storage().nbytes() for layer in cache.layers for t in (layer.keys, layer.values))


def run(model, cache=None, **kwargs):
    session = DecodeSession(model, PROMPT, method="swift", skip_set=SkipSet.uniform(num_layers(model), 0.5),
                            max_new_tokens=40, **kwargs)
    if cache is not None:
        session.cache = cache  # before the prompt pass: the run fills this cache instead
    buffers = []  # per pass: (the last position it wrote, the buffers after it)
    session.peak_bytes = 0
    while not session.done:
        event = session.step()
        buffers.append((event.position + event.tree_size, {layer.key_buffer.data_ptr() for layer in
                                                           session.cache.layers if isinstance(layer, PreallocatedLayer)}))
        session.peak_bytes = max(session.peak_bytes, storage_bytes(session.cache))
    return session, buffers


def test_a_run_writes_its_preallocated_layers_in_place(model):
    model.generation_config.eos_token_id = None
    steady = SwiftParams(fallback=False)  # drafts at every step: the two runs take the same passes
    session, buffers = run(model, swift=steady)
    assert all(isinstance(layer, PreallocatedLayer) for layer in session.cache.layers)
    assert len(session.tokens) == 40 and sum(e.kind in ("skip", "lookup") for e in session.events) > 3
    # one buffer per layer from the prompt pass on: no pass within the run's length copied a layer, however
    # much was rolled back (a tree verification near the end may write past it, and move them)
    overshoot = next((i for i, (last, _) in enumerate(buffers) if last >= len(PROMPT) + 40), len(buffers))
    within = [b for _, b in buffers[:overshoot]]
    assert len(within[0]) == num_layers(model) and len(within) > 15 and all(b == within[0] for b in within)
    dynamic, _ = run(model, cache=SkipAwareCache(model.config), swift=steady)
    assert session.tokens == dynamic.tokens
    assert session.tokens == decode(model, PROMPT, method="ar", max_new_tokens=40).token_ids
    # memory: the preallocated layers hold at most 1.1 times what the dynamic ones hold after the same passes
    assert session.peak_bytes <= 1.1 * dynamic.peak_bytes


@pytest.mark.parametrize("verify", ["tree", "chain"])
def test_outgrowing_the_capacity_moves_layers_and_changes_no_token(model, verify):
    model.generation_config.eos_token_id = None
    swift = SwiftParams(verify=verify, fallback=False)
    small, buffers = run(model, cache=SkipAwareCache(model.config, capacity=3), swift=swift)
    assert len({frozenset(b) for _, b in buffers}) > 2  # moved more than once
    assert small.tokens == run(model, cache=SkipAwareCache(model.config), swift=swift)[0].tokens


def test_a_layer_no_longer_viewing_its_buffer_moves_before_writing(model):
    cache = SkipAwareCache(model.config, capacity=32)
    with torch.inference_mode():
        model(input_ids=torch.tensor([PROMPT]), cache=cache, use_cache=True)
        cache.batch_repeat_interleave(2)  # keys become new tensors, no longer views of the buffers
        out = model(input_ids=torch.tensor([[3], [3]]), cache=cache, use_cache=True).logits
        fresh = SkipAwareCache(model.config)
        ref = model(input_ids=torch.tensor([PROMPT + [3]]), cache=fresh, use_cache=True).logits
    torch.testing.assert_close(out[0, -1], ref[0, -1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1, -1], ref[0, -1], rtol=1e-5, atol=1e-5)
    for layer in cache.layers:
        assert layer.keys.data_ptr() == layer.key_buffer.data_ptr() and layer.key_buffer.shape[0] == 2


def test_reserve_refuses_a_cache_whose_layers_disagree(model):
    # a compiled pass reads the length of the layer it is in (compiled.py): a layer a draft left behind
    # would make it attend over the wrong positions, so reserve (asked before every compiled pass) says so
    cache = SkipAwareCache(model.config, rollback=False, capacity=20)
    with torch.inference_mode():
        model(input_ids=torch.tensor([PROMPT]), cache=cache, use_cache=True)
    cache.reserve(len(PROMPT) + 1)  # all layers at the prompt's length: fine
    cache.layers[1].crop(-2)
    with pytest.raises(RuntimeError, match=r"different lengths \[6, 8\]"):
        cache.reserve(len(PROMPT) + 1)
