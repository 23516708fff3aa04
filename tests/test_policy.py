"""The step policy: one object chooses each step's drafter; a kind ruled out is never chosen."""

from tiny_models import tiny_model

from swiftlab import SkipSet, SwiftParams, decode, num_layers
from swiftlab.decoding import DecodeSession
from swiftlab.policy import StepPolicy

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
