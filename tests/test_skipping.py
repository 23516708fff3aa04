"""Sub-layer skipping: it really skips, it never leaks, and the cache stays consistent."""

import pytest
import torch
from tiny_models import tiny_model

from swiftlab import SkipSet, SwiftlabError, decode, is_pristine, num_layers, skipping
from swiftlab.models.adapters import adapter_for, check_supported
from swiftlab.engine.cache import SkipAwareCache

IDS = torch.tensor([[1, 5, 9, 23, 40, 7, 11, 3, 60, 2, 17, 33, 8, 19, 4, 50]])


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox", "opt", "gemma2"])
def test_skipped_layer_is_identity_on_the_residual_stream(family):
    """Skipping both sub-layers of layer i makes layer i's output equal its input."""
    model = tiny_model(family)
    layers = adapter_for(model).layers(model)
    seen = {}
    hook = layers[2].register_forward_hook(
        lambda mod, args, kwargs, out: seen.update(inp=(args[0] if args else kwargs["hidden_states"]), out=out),
        with_kwargs=True)
    try:
        with skipping(model, SkipSet((2,), (2,), num_layers(model))):
            skipped = logits(model)
        out = seen["out"][0] if isinstance(seen["out"], tuple) else seen["out"]
        assert torch.equal(out, seen["inp"])
        full = logits(model)
        out = seen["out"][0] if isinstance(seen["out"], tuple) else seen["out"]
        assert not torch.equal(out, seen["inp"])
        assert not torch.allclose(skipped, full)
    finally:
        hook.remove()


def test_attention_and_mlp_skip_independently():
    model = tiny_model("llama")
    L = num_layers(model)
    outs = {}
    for name, s in {"attn": SkipSet((2,), (), L), "mlp": SkipSet((), (2,), L), "both": SkipSet((2,), (2,), L)}.items():
        with skipping(model, s):
            outs[name] = logits(model)
    assert not torch.allclose(outs["attn"], outs["mlp"])
    assert not torch.allclose(outs["attn"], outs["both"])


def test_no_leak_after_context_and_after_exception():
    model = tiny_model("llama")
    before = logits(model)
    keys = list(model.state_dict())
    s = SkipSet.uniform(num_layers(model), 0.5)
    with skipping(model, s):
        assert not is_pristine(model)
    assert is_pristine(model)
    with pytest.raises(RuntimeError):
        with skipping(model, s):
            raise RuntimeError("boom")
    assert is_pristine(model)
    assert torch.equal(logits(model), before)
    assert list(model.state_dict()) == keys


def test_decode_restores_training_flag_and_model_on_error():
    model = tiny_model("llama").train()
    s = SkipSet.uniform(num_layers(model), 0.5)
    decode(model, [1, 2, 3], method="swift", skip_set=s, max_new_tokens=5)
    assert model.training and is_pristine(model)
    model.eval()
    calls = {"n": 0}
    original = model.lm_head.forward

    def failing(*a, **k):  # fail in the middle of a draft pass
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated failure")
        return original(*a, **k)

    model.lm_head.forward = failing
    try:
        with pytest.raises(RuntimeError, match="simulated"):
            decode(model, [1, 2, 3], method="swift", skip_set=s, max_new_tokens=20)
    finally:
        del model.lm_head.forward
    assert is_pristine(model)


def test_existing_instance_forward_is_preserved():
    """accelerate's device hooks live in an instance-level forward; skipping must put it back."""
    model = tiny_model("llama")
    attn = adapter_for(model).layers(model)[2].self_attn
    marker = attn.forward  # bound method, stored as an instance attribute like accelerate does
    attn.forward = marker
    with skipping(model, SkipSet((2,), (), num_layers(model))):
        assert attn.forward is not marker
    assert attn.__dict__["forward"] is marker


def test_skip_set_for_another_depth_is_rejected():
    model = tiny_model("llama")
    with pytest.raises(SwiftlabError, match="6 layers"):
        with skipping(model, SkipSet((1,), (), 8)):
            pass


def test_unsupported_architecture_names_class_and_remedy():
    from transformers import BloomConfig

    with pytest.raises(SwiftlabError, match=r"BloomForCausalLM.*adapters\.py"):
        check_supported(BloomConfig(architectures=["BloomForCausalLM"]))


@pytest.mark.parametrize("family", ["llama", "gemma2", "gemma3_text"])
def test_multi_token_skip_pass_on_a_cache_with_stale_layers(family):
    """A teacher-forced multi-token pass in skip mode, after skipped draft steps left some layers
    behind and the cache was rolled back, equals the same pass computed without any cache.

    This is the pattern the optimizer's matchness uses; on Gemma 2 the first global-attention
    layer is skippable, and its stale length would size the attention mask wrong."""
    model = tiny_model(family)
    L = num_layers(model)
    s = SkipSet((1, 2, 3), (2,), L)
    ids = IDS[0].tolist()
    cache = SkipAwareCache(model.config)

    def run(chunk, start):
        pos = torch.arange(start, start + len(chunk)).unsqueeze(0)
        return model(input_ids=torch.tensor([chunk]), position_ids=pos, cache=cache, use_cache=True).logits[0]

    with torch.no_grad():
        run(ids[:6], 0)  # prefill with the full model
        with skipping(model, s):  # two draft steps: skipped layers fall behind the others
            run(ids[6:7], 6)
            run(ids[7:8], 7)
        cache.crop_to(6)  # roll back the drafts
        with skipping(model, s):
            got = run(ids[6:14], 6)
        # the same pass on a cache that never saw a draft
        cache = SkipAwareCache(model.config)
        run(ids[:6], 0)
        with skipping(model, s):
            ref = run(ids[6:14], 6)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
