"""Greedy SWIFT decoding is token-identical to model.generate for every supported family."""

import pytest
import torch
from tiny_models import CONFIGS, tiny_model

from swiftlab import ADAPTERS, SkipSet, decode, is_pristine, num_layers

PROMPT = [1, 5, 9, 23, 40, 7, 11]
NEW = 40


def test_every_adapter_has_a_tiny_model():
    assert set(ADAPTERS) == set(CONFIGS)


SLIDING = {"gemma2", "gemma3_text"}  # sliding-window layers: chain verification (with a notice)


@pytest.mark.filterwarnings("ignore:.*sliding-window attention layers")
@pytest.mark.parametrize("verify", ["tree", "chain"])
@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_greedy_identity(family, verify):
    from swiftlab import SwiftParams

    model = tiny_model(family)
    L = num_layers(model)
    reference = model.generate(torch.tensor([PROMPT]), max_new_tokens=NEW, do_sample=False)[0, len(PROMPT):].tolist()
    assert decode(model, PROMPT, method="ar", max_new_tokens=NEW).token_ids == reference
    skip_sets = [SkipSet.uniform(L, 0.5), SkipSet.random(L, 0.4, seed=1), SkipSet.random(L, 0.75, seed=2),
                 SkipSet.early_exit(L, 3)]
    drafted = 0
    for skip_set in skip_sets:
        result = decode(model, PROMPT, method="swift", skip_set=skip_set, max_new_tokens=NEW,
                        swift=SwiftParams(verify=verify, fallback=False))
        assert result.token_ids == reference, f"{family} diverged with {skip_set}"
        assert result.verify == ("chain" if family in SLIDING else verify)
        if result.verify == "tree":
            assert max(result.tree_size_per_step) > max(result.drafted_per_step)  # siblings were verified
        drafted += sum(result.drafted_per_step)
    assert drafted > 0  # speculation really happened
    assert is_pristine(model)
    # and generate() still gives the same answer afterwards: nothing leaked into the model
    again = model.generate(torch.tensor([PROMPT]), max_new_tokens=NEW, do_sample=False)[0, len(PROMPT):].tolist()
    assert again == reference


def test_sliding_window_models_say_they_verify_chains():
    with pytest.warns(UserWarning, match="sliding-window attention layers: SWIFT verifies draft chains"):
        import swiftlab.engine.decoding as d

        d._TREE_NOTICE_SHOWN.clear()
        decode(tiny_model("gemma2"), PROMPT, method="swift", skip_set=SkipSet.uniform(6, 0.5), max_new_tokens=4)


@pytest.mark.filterwarnings("ignore:.*sliding-window attention layers")
@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_short_draft_caps_and_thresholds(family):
    """Identity must not depend on how the drafting is cut: caps 1..4, thresholds 0..1."""
    from swiftlab import SwiftParams

    model = tiny_model(family, seed=3)
    L = num_layers(model)
    reference = decode(model, PROMPT, method="ar", max_new_tokens=30).token_ids
    for cap in (1, 2, 4):
        for eps in (0.0, 0.5, 1.0):
            result = decode(model, PROMPT, method="swift", skip_set=SkipSet.uniform(L, 0.5),
                            max_new_tokens=30, swift=SwiftParams(epsilon=eps, max_draft=cap))
            assert result.token_ids == reference
            assert max(result.drafted_per_step) <= cap
