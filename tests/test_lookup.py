"""Lookup drafts and plain-step fallback: both change where tokens are drafted, never which tokens come out."""

import numpy as np
import pytest
import torch
from test_sampling import N, V, chi_square_p
from test_sampling import model as sampling_model  # noqa: F401 (a fixture)
from tiny_models import tiny_model

from swiftlab import SamplingParams, SkipSet, SwiftParams, decode, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.engine.decoding import DecodeSession, Pace
from swiftlab.engine.leandraft import LeanDrafter
from swiftlab.engine.lookup import lookup_continuation
from swiftlab.engine.sampling import probabilities
from swiftlab.engine.skipping import is_pristine


def test_lookup_continuation():
    #         0  1  2  3  4  5  6  7  8  9
    tokens = [5, 6, 7, 8, 9, 6, 7, 1, 2, 6, 7]
    # the bigram (6, 7) occurred twice before: the first one (at 1) wins, as in transformers
    assert lookup_continuation(tokens, 3) == [8, 9, 6]
    assert lookup_continuation(tokens, 1) == [8]
    assert lookup_continuation(tokens[:-2] + [7, 1], 4) == [2, 7, 1]  # cut short by the end of the context
    assert lookup_continuation(tokens, 0) == []
    # the longest n-gram is tried first: (9, 6, 7) occurred at 4, so its continuation wins
    assert lookup_continuation([9, 6, 7, 4, 4, 6, 7, 3, 9, 6, 7], 2) == [4, 4]
    assert lookup_continuation([1, 2, 3, 4], 5) == []  # nothing repeats
    assert lookup_continuation([1, 2, 1], 5) == []  # a single repeated token is not enough
    assert lookup_continuation([4, 4], 5) == []  # the tail itself does not count as a match
    assert lookup_continuation([1, 2, 1, 2], 5) == [1, 2]  # the continuation may run into the tail


def run_pace(pace, kinds, cost, steps):
    """Let `pace` choose `steps` times, each kind costing cost[kind] seconds per token; the picks."""
    picks = []
    for _ in range(steps):
        picks.append(pace.pick(kinds))
        pace.record(picks[-1], cost[picks[-1]], 1)
    return picks


def test_pace_takes_plain_steps_while_drafting_is_slower_and_keeps_retrying():
    pace = Pace()
    both = ("skip", "ar")
    assert pace.pick(both) == "skip"  # nothing measured yet: draft
    pace.record("skip", 0.030, 1)  # 30 ms per token drafting
    assert pace.pick(both) == "ar"  # the plain step gets measured at once
    pace.record("ar", 0.010, 1)
    picks = run_pace(pace, both, {"skip": 0.030, "ar": 0.010}, pace.MAX_PROBE * 3)
    tries = [i for i, k in enumerate(picks) if k == "skip"]
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    # tries back off while they confirm, but drafting is never left alone longer than a plain-step spell
    assert len(tries) >= 3 and gaps == sorted(gaps) and max(gaps) == pace.MAX_PLAIN_SPELL
    for _ in range(10):
        pace.record("skip", 0.002, 1)  # drafting got better (say, the search found a better set)
    assert pace.pick(both) == "skip"
    assert pace.pick(("skip",)) == "skip"  # without fallback there is nothing else to take


def test_pace_keeps_drafting_within_its_margin_and_backs_off_its_tries():
    pace = Pace()
    both = ("skip", "ar")
    # drafting measured 5% slower than plain steps: within the margin, so it keeps drafting (a drafted
    # step's yield swings with the text; a plain step's cost hardly at all)
    picks = run_pace(pace, both, {"skip": 0.0105, "ar": 0.010}, pace.MAX_PROBE * 3)
    plain = [i for i, k in enumerate(picks) if k == "ar"]
    gaps = [b - a for a, b in zip(plain, plain[1:])]
    assert picks[0] == "skip" and picks[1] == "ar"  # measured at once
    assert gaps == sorted(gaps) and gaps[-1] == pace.MAX_PROBE and len(plain) < 10
    # 20% slower: past the margin, plain steps it is
    picks = run_pace(pace, both, {"skip": 0.012, "ar": 0.010}, 20)
    assert picks.count("ar") > 15


def test_fallback_takes_plain_steps_when_drafting_is_slow(monkeypatch):
    model = tiny_model("llama")
    L = num_layers(model)
    prompt = [1, 5, 9, 14, 3, 7, 22, 40]
    reference = decode(model, prompt, method="ar", max_new_tokens=80).token_ids
    # A made-up clock, so the test does not depend on this machine's speed: every full-model pass
    # costs 1 ms, every draft pass 10 ms (drafting cannot pay at that price).
    now = [0.0]
    real_draft, real_forward = LeanDrafter.logits, DecodeSession.forward
    monkeypatch.setattr(DecodeSession, "clock", lambda self: now[0])
    monkeypatch.setattr(LeanDrafter, "logits", lambda self, *a: now.__setitem__(0, now[0] + 0.010) or real_draft(self, *a))
    monkeypatch.setattr(DecodeSession, "forward", lambda self, *a, **k: now.__setitem__(0, now[0] + 0.001) or real_forward(self, *a, **k))
    slow = decode(model, prompt, method="swift", skip_set=SkipSet.uniform(L, 0.5), max_new_tokens=80)
    assert slow.token_ids == reference
    assert slow.drafters["ar"] > 3 * slow.drafters["skip"] > 0
    assert slow.drafters["ar"] + slow.drafters["skip"] == slow.steps - 1  # every step after the prefill
    assert slow.tree_size_per_step.count(0) == slow.drafters["ar"] + 1 and len(slow.tree_size_per_step) == slow.steps
    never = decode(model, prompt, method="swift", skip_set=SkipSet.uniform(L, 0.5), max_new_tokens=80,
                   swift=SwiftParams(fallback=False))
    assert never.token_ids == reference and never.drafters["ar"] == 0
    assert is_pristine(model)


@pytest.mark.parametrize("verify", ["tree", "chain"])
def test_lookup_drafts_keep_greedy_output(verify):
    model, tokenizer = load_model("lab")
    L = num_layers(model)
    start = encode_prompt(tokenizer, "Tom has 3 red apples.")
    said = decode(model, start, method="ar", max_new_tokens=30).token_ids
    ids = start + said + start + said + start  # the prompt repeats itself: n-grams to look up
    reference = model.generate(torch.tensor([ids]), max_new_tokens=60, do_sample=False)[0, len(ids):].tolist()
    for lookup in (1, 10):
        r = decode(model, ids, method="swift", skip_set=SkipSet.uniform(L, 0.45), max_new_tokens=60,
                   swift=SwiftParams(lookup=lookup, verify=verify, fallback=False))
        assert r.token_ids == reference
        assert r.drafters["lookup"] > 0 and max(r.drafted_per_step) <= max(lookup, 25)
    assert is_pristine(model)


@pytest.mark.parametrize("right", [True, False])
def test_the_drafter_decides_whether_a_lookup_continuation_is_verified(right, monkeypatch):
    """A lookup continuation is verified where the drafter's first token is its first token (or the
    drafter is unsure of it: epsilon 0 here rules that out). Made-up lookups: the model's own
    continuation (taken, and accepted whole), or one whose first token is off by one (never taken:
    the drafter's own chain is verified)."""
    import swiftlab.engine.drafters as drafters

    model = tiny_model("llama")
    prompt = [1, 5, 9, 14, 3, 7, 22, 40]
    reference = decode(model, prompt, method="ar", max_new_tokens=60).token_ids
    vocab = model.config.vocab_size

    def made_up(context, n, ngrams):
        done = len(context) - len(prompt)
        truth = reference[done:done + n]
        return truth if right else [(truth[0] + 1) % vocab] + truth[1:] if truth else []

    monkeypatch.setattr(drafters, "lookup_continuation", made_up)
    r = decode(model, prompt, method="swift", skip_set=SkipSet.uniform(num_layers(model), 0.4), max_new_tokens=60,
               swift=SwiftParams(lookup=6, fallback=False, epsilon=0.0))
    assert r.token_ids == reference
    lookups = [i for i, kind in enumerate(r.step_kinds) if kind == "lookup"]
    if right:
        assert lookups and all(r.accepted_per_step[i] == r.drafted_per_step[i] for i in lookups)
    else:
        assert lookups == [] and r.drafters["skip"] > 0


def test_where_the_drafter_is_unsure_the_lookup_is_verified_with_its_candidates(monkeypatch):
    """epsilon 1: the drafter is always unsure, so every step verifies the (wrong) lookup continuation,
    with the drafter's own top candidates as siblings: the output is still the model's."""
    import swiftlab.engine.drafters as drafters

    model = tiny_model("llama")
    prompt = [1, 5, 9, 14, 3, 7, 22, 40]
    reference = decode(model, prompt, method="ar", max_new_tokens=40).token_ids
    monkeypatch.setattr(drafters, "lookup_continuation", lambda context, n, ngrams: [3] * n)
    r = decode(model, prompt, method="swift", skip_set=SkipSet.uniform(num_layers(model), 0.4), max_new_tokens=40,
               swift=SwiftParams(lookup=4, fallback=False, epsilon=1.0))
    assert r.token_ids == reference
    # every pass that drafted verified the lookup (a last pass with one token left drafts nothing)
    drafting = {kind for kind, n in zip(r.step_kinds[1:], r.drafted_per_step[1:]) if n}
    assert drafting == {"lookup"} and max(r.tree_size_per_step) > 4  # siblings were verified too


def test_lookup_rejects_a_negative_length():
    with pytest.raises(Exception, match="lookup must be >= 0"):
        SwiftParams(lookup=-1)


def test_lookup_sampling_matches_the_model_distribution(sampling_model):  # noqa: F811
    """The prompt holds "7 x" for every token x and ends in 7, so whatever the first token x is, the
    next step drafts by lookup (one-hot q): the 2nd token's distribution must still be the model's own."""
    model = sampling_model
    prompt = [t for x in range(V) for t in (7, x)] + [7]
    params = SamplingParams(temperature=1.0)
    with torch.no_grad():
        p1 = probabilities(model(torch.tensor([prompt])).logits[0, -1], params)
        p2_given = probabilities(model(torch.tensor([prompt + [a] for a in range(V)])).logits[:, -1], params)
    want2 = (p1[:, None] * p2_given).sum(0).double().numpy()
    second, lookups, accepted = [], 0, []
    for seed in range(N):
        r = decode(model, prompt, method="swift", skip_set=SkipSet((1, 2, 3), (2, 4), 6), max_new_tokens=3,
                   sampling=params, seed=seed, swift=SwiftParams(lookup=3, fallback=False))
        second.append(r.token_ids[1])
        lookups += r.drafters["lookup"]
        accepted.append(r.accepted_per_step[1])
    assert lookups >= N  # the first step after the prefill drafted by lookup every time
    assert 0.05 < np.mean(np.array(accepted) > 0) < 0.95  # both the accept and the resample paths ran
    assert chi_square_p(np.array(second), want2) > 1e-3


def test_a_stream_carries_its_pace_from_prompt_to_prompt():
    from swiftlab.search.stream import StreamSettings, SwiftStream

    model = tiny_model("llama")
    # give_up off: the paying stream may hold skip drafts back while its search runs (then the policy
    # picks nothing and its step count stands still), which depends on how this machine times them
    stream = SwiftStream(model, settings=StreamSettings(give_up=False))
    prompt = [1, 5, 9, 14, 3, 7, 22, 40]
    stream.decode(prompt, max_new_tokens=20)
    measured, steps = dict(stream.pace.cost), stream.pace.steps
    assert {"skip", "ar"} <= set(measured)
    stream.decode(prompt, max_new_tokens=20)
    assert stream.pace.cost != measured and stream.pace.steps > steps  # the same pace went on measuring


def test_the_offer_grows_while_continuations_are_accepted_whole_and_drops_after_a_miss():
    from types import SimpleNamespace

    from swiftlab.engine.drafters import LookupDrafter
    from swiftlab.engine.tree import DraftTree

    run = SimpleNamespace(eos=set(), sampling=SimpleNamespace(greedy=True),
                          model=SimpleNamespace(get_input_embeddings=lambda: SimpleNamespace(num_embeddings=50)))
    drafter = LookupDrafter(run, SwiftParams(lookup=12))

    def step(source: str, chain: int, path: list[int], long: bool = False) -> int:
        tree = DraftTree(chain=[1] * chain, siblings=[[2]] + [[] for _ in range(chain - 1)], source=source)
        drafter.verified(tree, path, long=long)
        return drafter.length

    assert drafter.length == 3 and not drafter.copying
    assert step("lookup", 3, [0, 1, 2]) == 7 and drafter.copying
    assert step("skip", 7, []) == 7 and drafter.copying  # another drafter's step says nothing about lookups
    assert step("lookup", 7, list(range(7))) == 12  # 15, capped at swift.lookup
    assert step("lookup", 12, list(range(12))) == 12
    assert step("lookup", 12, [0, 1, 2]) == 3 and not drafter.copying  # cut short
    assert step("lookup", 3, [0, 1, 2]) == 7
    assert step("lookup", 3, [3]) == 3 and not drafter.copying  # a sibling accepted instead of its first token
    assert step("lookup", 3, []) == 3 and not drafter.copying
    # where the policy measured a verify pass over 8 tokens cheap, an offer restarts at 7
    assert step("lookup", 3, [], long=True) == 7
    assert step("lookup", 7, [0, 1], long=True) == 7
    assert LookupDrafter(run, SwiftParams(lookup=2)).length == 2
    assert LookupDrafter(run, SwiftParams(lookup=12), long=True).length == 7
    assert LookupDrafter(run, SwiftParams(lookup=5), long=True).length == 5


def test_lookup_steps_offer_3_then_7_then_15_tokens_on_a_copied_span(monkeypatch):
    import swiftlab.engine.drafters as drafters

    model = tiny_model("llama")
    prompt = [1, 5, 9, 14, 3, 7, 22, 40]
    reference = decode(model, prompt, method="ar", max_new_tokens=60).token_ids

    def truth(context, n, ngrams):  # a lookup that always continues the model's own output
        done = len(context) - len(prompt)
        return reference[done:done + n]

    monkeypatch.setattr(drafters, "lookup_continuation", truth)
    r = decode(model, prompt, method="swift", skip_set=SkipSet.uniform(num_layers(model), 0.4), max_new_tokens=60,
               swift=SwiftParams(lookup=15, fallback=False))
    assert r.token_ids == reference
    lookups = [n for kind, n in zip(r.step_kinds, r.drafted_per_step) if kind == "lookup"]
    assert lookups[:4] == [3, 7, 15, 15]
    # a draft cap below the lookup length cuts every continuation to it, as it cuts the skip drafter's chains
    capped = decode(model, prompt, method="swift", skip_set=SkipSet.uniform(num_layers(model), 0.4), max_new_tokens=60,
                    swift=SwiftParams(lookup=15, max_draft=5, fallback=False))
    assert capped.token_ids == reference
    lookups = [n for kind, n in zip(capped.step_kinds, capped.drafted_per_step) if kind == "lookup"]
    assert lookups[:4] == [3, 5, 5, 5] and max(capped.drafted_per_step) <= 5


def test_lookup_runs_time_their_verify_passes_per_width_and_plain_runs_do_not():
    """long_offers reads the verify cost per width that a lookup run records in its pace; an autoregressive
    run (and SWIFT without lookup) has no offers to size, so its steps skip the timing."""
    model, tokenizer = load_model("lab")
    start = encode_prompt(tokenizer, "Tom has 3 red apples.")
    said = decode(model, start, method="ar", max_new_tokens=20).token_ids
    ids = start + said + start
    with_lookup, without = Pace(), Pace()
    decode(model, ids, method="swift", skip_set=SkipSet.uniform(num_layers(model), 0.45), max_new_tokens=30,
           swift=SwiftParams(lookup=15), pace=with_lookup)
    decode(model, ids, method="swift", skip_set=SkipSet.uniform(num_layers(model), 0.45), max_new_tokens=30,
           pace=without)
    assert with_lookup.verify_seconds and all(s > 0 for s in with_lookup.verify_seconds.values())
    assert without.verify_seconds == {}
