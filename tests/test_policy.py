"""The step policy: one object chooses each step's drafter; a kind ruled out is never chosen."""

from tiny_models import tiny_model

from swiftlab import SkipSet, SwiftParams, decode, num_layers
from swiftlab.engine.decoding import DecodeSession
from swiftlab.engine.policy import StepPolicy

PROMPT = [1, 5, 9, 14, 3, 7, 22, 40]


def test_a_ruled_out_kind_is_never_chosen_until_allowed():
    policy = StepPolicy()
    assert policy.choose(lookup=False, greedy=True, fallback=True).drafter == "skip"
    policy.rule_out("skip", "layer skipping does not pay on this model here")
    for greedy in (True, False):
        plain = policy.choose(lookup=False, greedy=greedy, fallback=True)
        assert plain == ("plain", "layer skipping does not pay on this model here")
        assert policy.choose(lookup=True, greedy=greedy, fallback=False).drafter == "lookup"
    policy.rule_out("lookup", "no")
    assert policy.choose(lookup=True, greedy=True, fallback=True).drafter == "plain"
    policy.allow("skip")
    policy.allow("lookup")
    assert policy.choose(lookup=True, greedy=True, fallback=False).drafter == "gated"
    assert policy.choose(lookup=True, greedy=False, fallback=True).drafter == "lookup"  # sampling: always lookup
    policy.rule_out("ar", "plain steps are off")
    assert policy.choose(lookup=False, greedy=True, fallback=True) == ("skip", "plain steps are off")


def test_with_skipping_ruled_out_swift_takes_plain_steps_and_says_why():
    model = tiny_model("llama")
    reference = decode(model, PROMPT, method="ar", max_new_tokens=20).token_ids
    policy = StepPolicy()
    policy.rule_out("skip", "layer skipping does not pay on this model here: plain/lookup steps")
    session = DecodeSession(model, PROMPT, skip_set=SkipSet.uniform(num_layers(model), 0.5), max_new_tokens=20,
                            pace=policy)
    while not session.done:
        session.step()
    assert session.result().token_ids == reference
    assert {e.kind for e in session.events[1:]} == {"ar"}
    assert all("does not pay" in e.reason for e in session.events[1:])
    policy.allow("skip")  # the same policy, allowed again: drafting comes back, the output stays
    r = decode(model, PROMPT, skip_set=SkipSet.uniform(num_layers(model), 0.5), max_new_tokens=20, pace=policy,
               swift=SwiftParams(fallback=False))
    assert r.token_ids == reference and r.drafters["skip"] > 0


def test_autoregressive_decoding_is_the_plain_step_path():
    model = tiny_model("llama")
    session = DecodeSession(model, PROMPT, method="ar", max_new_tokens=6)
    while not session.done:
        session.step()
    assert [e.kind for e in session.events] == ["prefill"] + ["ar"] * 5
    assert all(e.drafted == [] and e.tree_size == 0 for e in session.events)
    assert session.result().timings_s["draft"] == 0.0


def _run_steps(policy: StepPolicy, costs: dict[str, float], steps: int) -> list[str]:
    """`steps` greedy steps where the context always repeats; each kind costs `costs[kind]` s per token."""
    kinds = []
    for _ in range(steps):
        choice = policy.choose(lookup=True, greedy=True, fallback=True)
        policy.took(choice.drafter, costs[choice.drafter], 1)
        kinds.append(choice.drafter)
    return kinds


def test_lookup_stands_in_for_plain_steps_only_while_it_is_not_measured_slower():
    # skipping ruled out (the search's verdict): each step is a lookup or a plain one, chosen by measured cost
    slow, fast = StepPolicy(), StepPolicy()
    for policy in (slow, fast):
        policy.rule_out("skip", "layer skipping does not pay on this model here: plain/lookup steps")
    slow_kinds = _run_steps(slow, {"lookup": 2.0, "plain": 1.0}, 200)  # a CPU: lookup verify passes cost 2x
    fast_kinds = _run_steps(fast, {"lookup": 0.5, "plain": 1.0}, 200)
    assert slow_kinds[-100:].count("plain") >= 90  # plain steps, with a re-try of lookup now and then
    assert "lookup" in slow_kinds[-100:]
    assert fast_kinds[-100:].count("lookup") >= 90
    why = slow.choose(lookup=True, greedy=True, fallback=True).why
    assert "does not pay" in why and "the time per token of plain steps" in why
    # sampling and a fallback that is off never time the choice: the lookup continuation is verified
    assert slow.choose(lookup=True, greedy=False, fallback=True).drafter == "lookup"
    assert slow.choose(lookup=True, greedy=True, fallback=False).drafter == "lookup"


def test_with_skipping_ruled_out_lookup_and_plain_steps_keep_the_output():
    model = tiny_model("llama")
    prompt = PROMPT * 3  # repeats: lookup is on offer
    reference = decode(model, prompt, method="ar", max_new_tokens=30).token_ids
    policy = StepPolicy()
    policy.rule_out("skip", "layer skipping does not pay on this model here: plain/lookup steps")
    r = decode(model, prompt, skip_set=SkipSet.uniform(num_layers(model), 0.5), max_new_tokens=30, pace=policy,
               swift=SwiftParams(lookup=10))
    assert r.token_ids == reference and set(r.step_kinds[1:]) <= {"lookup", "ar"}


def test_a_lookup_continuation_after_an_accepted_one_is_verified_without_the_gate():
    policy = StepPolicy()
    policy.rule_out("ar", "no plain steps in this test")
    assert policy.choose(lookup=True, greedy=True, fallback=True).drafter == "gated"
    copying = policy.choose(lookup=True, greedy=True, fallback=True, copying=True)
    assert copying.drafter == "ungated" and "without the drafter's say" in copying.why
    assert policy.choose(lookup=False, greedy=True, fallback=True, copying=True).drafter == "skip"
    # sampling always verifies a lookup match, copying or not
    assert policy.choose(lookup=True, greedy=False, fallback=True).drafter == "lookup"


def test_long_lookup_offers_only_where_verifying_8_tokens_is_measured_cheap_and_only_greedy():
    policy = StepPolicy()
    assert not policy.long_offers(True)  # nothing measured
    policy.verify_took(4, 0.010)
    assert not policy.long_offers(True)  # a verify pass over 8 not measured yet
    policy.verify_took(8, 0.012)  # the lab model: 8 tokens cost about 1.2 times 4
    assert policy.long_offers(True) and not policy.long_offers(False)  # never when sampling
    for _ in range(10):
        policy.verify_took(8, 0.015)  # SmolLM2 on a CPU: about 1.5 times
    assert not policy.long_offers(True)
    assert policy.verify_seconds[8] > 0.0145  # a running average


def test_lookup_steps_after_accepted_ones_skip_the_gate_and_keep_the_output(monkeypatch):
    import swiftlab.engine.drafters as drafters

    model = tiny_model("llama")
    reference = decode(model, PROMPT, method="ar", max_new_tokens=40).token_ids

    def truth(context, n, ngrams):  # a lookup that always continues the model's own output
        done = len(context) - len(PROMPT)
        return reference[done:done + n]

    monkeypatch.setattr(drafters, "lookup_continuation", truth)
    whys = []
    r = decode(model, PROMPT, skip_set=SkipSet.uniform(num_layers(model), 0.4), max_new_tokens=40,
               swift=SwiftParams(lookup=15, fallback=False), on_step=lambda e: whys.append(e.reason))
    assert r.token_ids == reference and set(r.step_kinds[1:]) == {"lookup"}
    assert "agreed with" in whys[1]  # the first lookup step is gated: no continuation accepted yet
    assert all("without the drafter's say" in why for why in whys[2:])
