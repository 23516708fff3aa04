"""Serving a stream of prompts: optimization then acceleration, identical output throughout."""

import pytest
from tiny_models import tiny_model

import swiftlab.search.stream as stream_module
from swiftlab import DecodeResult, decode, is_pristine
from swiftlab.search.skipsearch import SearchConfig
from swiftlab.search.stream import StreamSettings, SwiftStream

PROMPTS = [[1, 5, 9, 23, 40, 7], [1, 8, 3, 3, 60], [1, 44, 12, 9], [1, 2, 3, 4, 5, 6, 7]]
REFERENCE = StreamSettings(search_share=None, give_up=False)  # a search step after every verification, as SWIFT's


def test_greedy_output_identical_while_the_search_runs():
    model = tiny_model("llama")
    model.generation_config.eos_token_id = None
    stream = SwiftStream(model, SearchConfig(window=8, candidates_per_step=2, bayes_interval=4, max_steps=400,
                                             tolerance=1000, max_score=1.0), settings=REFERENCE)
    for ids in PROMPTS:
        result = stream.decode(ids, max_new_tokens=40)
        assert result.token_ids == decode(model, ids, method="ar", max_new_tokens=40).token_ids
        assert result.timings_s["optimize"] > 0 or stream.records[-1].phase == "accelerate"
    steps = stream.search.trajectory.steps
    assert stream.search.iteration > 0 and {s.kind for s in steps} >= {"start", "random", "bayes"}
    assert {s.prompt_index for s in steps} == {0, 1, 2, 3}  # the search ran during every prompt
    assert is_pristine(model)


def test_optimization_stops_then_accelerates_with_the_frozen_set():
    model = tiny_model("llama")
    model.generation_config.eos_token_id = None
    stream = SwiftStream(model, SearchConfig(window=8, max_steps=5, tolerance=1000, max_score=1.0), settings=REFERENCE)
    for ids in PROMPTS:
        stream.decode(ids, max_new_tokens=30)
    phases = [r.phase for r in stream.records]
    assert phases[0] == "optimize" and phases[-1] == "accelerate"
    frozen = stream.search.best.to_dict()
    assert all(r.skip_set == frozen and r.optimize_s == 0 for r in stream.records if r.phase == "accelerate")
    assert stream.summary()["stopped_because"] == "max_steps"


def fake_decode(acceptances):
    """Stand-in for the engine: acceptance follows a script (task A, then task B)."""
    it = iter(acceptances)

    def run(model, ids, **kwargs):
        if kwargs.get("search") is not None:  # an optimization-phase prompt: one search step
            kwargs["search"].step(lambda sets: [0.5] * len(sets))
        return DecodeResult("swift", list(ids), [1] * 10, skip_set=kwargs["skip_set"].to_dict(),
                            drafted_per_step=[10], accepted_per_step=[round(10 * next(it))], wall_s=1.0)
    return run


def test_domain_shift_reopens_the_search(monkeypatch):
    model = tiny_model("llama")
    # 1 prompt optimizes (max_steps=1), then task A accelerates at ~0.9, then task B drops to ~0.4
    script = [0.9, 0.9, 0.8, 0.9, 0.9, 0.4, 0.3, 0.9]
    monkeypatch.setattr(stream_module, "decode", fake_decode(script))
    stream = SwiftStream(model, SearchConfig(max_steps=1, tolerance=1000, max_score=1.0), settings=REFERENCE)
    for _ in range(7):
        stream.decode([1, 2, 3])
    phases = [r.phase for r in stream.records]
    reopened = [r.reopened for r in stream.records]
    # prompt 0 scores the start set, prompt 1 makes the single allowed proposal: then frozen
    assert phases == ["optimize", "optimize"] + ["accelerate"] * 5
    assert reopened.index(True) == 6  # the second low-acceptance prompt of task B triggers it
    assert stream.phase == "optimize"


def test_domain_shift_can_be_switched_off(monkeypatch):
    model = tiny_model("llama")
    monkeypatch.setattr(stream_module, "decode", fake_decode([0.9, 0.9, 0.8, 0.9, 0.9, 0.4, 0.3, 0.2]))
    stream = SwiftStream(model, SearchConfig(max_steps=1, tolerance=1000, max_score=1.0),
                         settings=StreamSettings(reopen_on_shift=False, search_share=None, give_up=False))
    for _ in range(8):
        stream.decode([1, 2, 3])
    assert not any(r.reopened for r in stream.records) and stream.phase == "accelerate"


def test_search_needs_swift():
    from swiftlab import SwiftlabError
    from swiftlab.search.skipsearch import SkipSearch

    model = tiny_model("llama")
    with pytest.raises(SwiftlabError, match="SWIFT decoding only"):
        decode(model, [1, 2], method="ar", search=SkipSearch(6))
