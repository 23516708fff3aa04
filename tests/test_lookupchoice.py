"""Pure prompt lookup as a stream's choice: the replay that prices it, the choice, and the stream that takes it."""

import pytest
from tiny_models import tiny_model

from swiftlab import SamplingParams, SkipSet, SwiftParams, decode, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.engine.decoding import Pace, eos_ids
from swiftlab.engine.lookup import PURE_TOKENS, replay_pure_lookup
from swiftlab.engine.skipping import is_pristine
from swiftlab.search.lookupchoice import LookupChoice, PassLog, priced_seconds, width_costs
from swiftlab.search.stream import StreamSettings, SwiftStream


def repeating_prompt():
    model, tokenizer = load_model("lab")
    start = encode_prompt(tokenizer, "Tom has 3 red apples.")
    said = decode(model, start, method="ar", max_new_tokens=30).token_ids
    return model, start + said + start + said + start  # the prompt repeats itself: n-grams to look up


def test_the_replay_takes_the_passes_a_pure_lookup_run_takes():
    """Every offer verified (no fallback): the replay of the run's own tokens gives exactly its verify widths."""
    model, ids = repeating_prompt()
    reference = decode(model, ids, method="ar", max_new_tokens=60).token_ids
    pace = Pace()
    pace.pure_lookup = "a test"
    r = decode(model, ids, method="swift", skip_set=SkipSet.uniform(num_layers(model), 0.45), max_new_tokens=60,
               swift=SwiftParams(lookup=15, fallback=False), pace=pace)
    assert r.token_ids == reference and r.stop_reason == "max_new_tokens"
    assert "skip" not in r.step_kinds and r.drafters["lookup"] > 0
    widths = [size + 1 for size in r.tree_size_per_step[1:]]  # the prefill takes no verify pass
    assert replay_pure_lookup(r.prompt_ids, r.token_ids, eos=eos_ids(model)) == widths
    assert max(widths) == PURE_TOKENS + 1 and min(widths) == 1  # offers of 10 every time, and plain steps
    assert is_pristine(model)


def test_the_replay_of_an_unrepeating_text_is_plain_steps_and_offers_stop_at_end_of_text():
    assert replay_pure_lookup([1, 2, 3], [4, 5, 6, 7]) == [1, 1, 1]
    # after "4 5" the 1-gram 5 matches the prompt's first: [6, 9, 5] offered, 6 accepted, then 8 instead of 9;
    # offers leave the last token to a pass of its own (at most remaining - 1 tokens)
    assert replay_pure_lookup([5, 6, 9, 5], [4, 5, 6, 8, 1, 1], max_tokens=3) == [1, 4, 1, 1]
    # an offer is cut after an end-of-text token (0): what follows it is never needed
    assert replay_pure_lookup([7, 0, 3, 3, 3], [7, 0, 1, 2]) == [3, 1]
    assert replay_pure_lookup([7, 0, 3, 3, 3], [7, 0, 1, 2], eos={0}) == [2, 1]


def test_verify_seconds_are_priced_per_width_between_and_beyond_the_measured_ones():
    costs = width_costs([(1, 1.0), (1, 3.0), (1, 1.2), (5, 2.0), (9, 4.0)])
    assert costs == {1: 1.2, 5: 2.0, 9: 4.0}  # medians per width
    assert priced_seconds([1], costs, 0.0) == 1.2
    assert priced_seconds([3], costs, 0.0) == pytest.approx(1.6)  # between 1 and 5
    assert priced_seconds([11], costs, 0.0) == pytest.approx(5.0)  # along the last two
    assert priced_seconds([1, 9], costs, 0.5) == pytest.approx(6.2)  # plus the overhead of each step
    assert priced_seconds([4], {5: 2.0}, 0.0) == 2.0 and priced_seconds([9], {5: 2.0}, 0.0) == 2.0
    assert priced_seconds([1], {}, 0.0) is None


def test_a_pure_lookup_choice_takes_no_skip_drafts_when_greedy_and_leaves_sampling_alone():
    pace = Pace()
    pace.pure_lookup = "the stream takes pure prompt lookup"
    lookup = pace.choose(lookup=True, greedy=True, fallback=False)
    plain = pace.choose(lookup=False, greedy=True, fallback=True)
    assert (lookup.drafter, plain.drafter) == ("lookup", "plain") and "pure prompt lookup" in plain.why
    assert pace.choose(lookup=False, greedy=False, fallback=True).drafter == "skip"
    assert pace.choose(lookup=True, greedy=False, fallback=True).drafter == "lookup"
    pace.rule_out("skip", "ruled out")  # a rule-out's own reason comes first
    assert pace.choose(lookup=False, greedy=True, fallback=True).why == "ruled out"


def test_a_pure_lookup_drafter_offers_transformers_way():
    from types import SimpleNamespace

    from swiftlab.engine.drafters import LookupDrafter
    from swiftlab.engine.tree import DraftTree

    def run(greedy=True):
        return SimpleNamespace(eos=set(), sampling=SimpleNamespace(greedy=greedy),
                               model=SimpleNamespace(get_input_embeddings=lambda: SimpleNamespace(num_embeddings=50)))

    drafter = LookupDrafter(run(), SwiftParams(lookup=15), pure=True)
    assert (drafter.length, drafter.ngrams) == (PURE_TOKENS, (2, 1))
    drafter.verified(DraftTree(chain=[1] * 10, siblings=[[]] * 10, source="lookup"), [0, 1], long=False)
    assert drafter.length == PURE_TOKENS  # a miss does not shorten the next offer
    assert LookupDrafter(run(), SwiftParams(lookup=4), pure=True).length == 4  # never beyond swift.lookup
    sampling = LookupDrafter(run(greedy=False), SwiftParams(lookup=15), pure=True)
    assert not sampling.pure and sampling.length == 3


def logged(seconds: float, steps: int, width_s: float = 0.01) -> PassLog:
    """A PassLog of `steps` one-token passes at `width_s` each, whose steps took `seconds` in all."""
    log = PassLog()
    log.verify = [(1, width_s)] * steps
    log.step_seconds = [seconds / steps] * steps
    log.other_seconds = [0.0] * steps
    return log


def test_the_choice_takes_pure_lookup_where_the_gate_is_slower_and_retries_the_gate():
    choice = LookupChoice()
    prompt, tokens = list(range(100, 110)), list(range(10))  # nothing repeats: pure lookup takes 9 plain steps
    price = 9 * 0.01

    def prompt_ran(ratio: float) -> bool:
        pure = choice.pure
        choice.after(prompt, tokens, logged(ratio * price, 9), ran_pure=pure)
        return pure

    assert not prompt_ran(1.04) and choice.reason is None  # within the margin: the gate stays
    assert not prompt_ran(1.5) and choice.pure and "1.27x" in choice.reason  # the median of the two
    assert [prompt_ran(1.0) for _ in range(choice.RETRY)] == [True] * choice.RETRY
    assert not choice.pure  # a re-try of the gate ...
    assert not prompt_ran(1.4) and choice.pure  # ... that confirmed pure lookup: the next re-try comes later
    assert [prompt_ran(1.0) for _ in range(2 * choice.RETRY)] == [True] * (2 * choice.RETRY)
    assert not prompt_ran(0.8) and choice.pure  # one prompt that suits the gate: the median is still 1.4
    assert [prompt_ran(1.0) for _ in range(choice.RETRY)] == [True] * choice.RETRY  # re-tried sooner, though
    assert not prompt_ran(0.9) and not choice.pure  # the median of the last three gated prompts, 0.9
    assert not prompt_ran(1.0) and not choice.pure
    assert [h["kind"] for h in choice.history][:3] == ["gated", "gated", "pure"]
    assert choice.summary()["history"][-1]["ratio"] == pytest.approx(1.0)


def test_pure_prompts_too_short_to_price_still_bring_the_gate_back():
    choice = LookupChoice()
    choice.pure = True
    for _ in range(choice.RETRY):  # one-token answers: no pass after the prompt's to learn from
        choice.after([1, 2, 3], [4], PassLog(), ran_pure=True)
    assert not choice.pure and choice.retrying and choice.history == []


def test_pure_prompts_calibrate_the_price():
    choice = LookupChoice()
    choice.pure = True
    prompt, tokens = list(range(100, 110)), list(range(10))
    choice.after(prompt, tokens, logged(1.3 * 0.09, 9), ran_pure=True)
    assert choice.calibration == pytest.approx(1.3)
    choice.pure = False
    for _ in range(2):  # 1.35 times the price is only 1.04 times what pure lookup is measured to take
        choice.after(prompt, tokens, logged(1.35 * 0.09, 9), ran_pure=False)
    assert choice.gate_over_pure == pytest.approx(1.35 / 1.3) and not choice.pure


@pytest.mark.parametrize("margin", [0.0, float("inf")])
def test_a_stream_takes_pure_lookup_by_its_choice_and_never_leaks_it(margin, monkeypatch):
    """MARGIN 0: every gated prompt counts as slower, so the stream goes pure after its first prompt and re-tries
    the gate after RETRY; inf: never. Output is the full model's either way."""
    monkeypatch.setattr(LookupChoice, "MARGIN", margin)
    model, ids = repeating_prompt()
    reference = decode(model, ids, method="ar", max_new_tokens=40).token_ids
    stream = SwiftStream(model, settings=StreamSettings(swift=SwiftParams(lookup=15)))
    kinds = []
    for _ in range(5):
        r = stream.decode(ids, max_new_tokens=40)
        assert r.token_ids == reference and stream.pace.pure_lookup is None
        kinds.append(r.step_kinds)
    chosen = [record.lookup for record in stream.records]
    if margin == 0.0:
        assert chosen == ["gated", "pure", "pure", "gated", "pure"]
        assert all("skip" not in k for k in kinds[1:3] + kinds[4:]) and "skip" in kinds[0] + kinds[3]
        assert stream.search_facts()["lookup_reason"].startswith("pure prompt lookup on 3 of 5 prompts: gated")
    else:
        assert chosen == ["gated"] * 5 and stream.summary()["lookup_choice"]["pure"] is False
    assert len(stream.lookup_choice.history) == 5
    sampled = stream.decode(ids, max_new_tokens=10, sampling=SamplingParams(temperature=1.0), seed=1)
    assert stream.records[-1].lookup == "gated" and len(stream.lookup_choice.history) == 5  # sampling keeps the gate
    assert sampled.new_tokens == 10 and is_pristine(model)


def test_a_stream_without_lookup_drafts_has_no_choice_to_make():
    stream = SwiftStream(tiny_model("llama"))
    stream.decode([1, 5, 9, 14, 3, 7], max_new_tokens=8)
    assert stream.lookup_choice is None and stream.records[-1].lookup is None
