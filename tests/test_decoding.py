"""The decode call: limits, stop rules, bad input, and the record it returns."""

import json

import pytest
import torch
from tiny_models import tiny_model

from swiftlab import DecodeResult, SkipSet, SwiftlabError, decode, load_model, num_layers
from swiftlab.engine.decoding import DecodeSession
from swiftlab.api import encode_prompt, generate


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def uniform(model, r=0.5):
    return SkipSet.uniform(num_layers(model), r)


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([[1, 2, 3], [4, 5, 6]]), "batch size 2 is not supported"),
    ([], "empty prompt"),
    ([1, 2, 500], "outside the model's vocabulary of 96"),
    ([1, -3], "outside the model's vocabulary"),
])
def test_bad_prompts(model, bad, message):
    for method in ("ar", "swift"):
        with pytest.raises(SwiftlabError, match=message):
            decode(model, bad, method=method, skip_set=uniform(model), max_new_tokens=4)


def test_prompt_too_long_for_the_context(model):
    with pytest.raises(SwiftlabError, match=r"prompt too long: 250 prompt tokens \+ 10 new tokens exceed .* 256"):
        decode(model, [5] * 250, method="swift", skip_set=uniform(model), max_new_tokens=10)
    # exactly at the limit is fine, and never runs past it
    result = decode(model, [5] * 246, method="swift", skip_set=uniform(model), max_new_tokens=10)
    assert result.new_tokens <= 10


def test_other_bad_arguments(model):
    with pytest.raises(SwiftlabError, match="max_new_tokens must be >= 1"):
        decode(model, [1, 2], method="ar", max_new_tokens=0)
    with pytest.raises(SwiftlabError, match="unknown method 'beam'"):
        decode(model, [1, 2], method="beam")
    with pytest.raises(SwiftlabError, match="needs a skip set"):
        decode(model, [1, 2], method="swift")
    with pytest.raises(SwiftlabError, match="8-layer model, this model has 6"):
        decode(model, [1, 2], method="swift", skip_set=SkipSet.uniform(8, 0.5))


def test_max_new_tokens_is_exact(model):
    model.generation_config.eos_token_id = None  # make sure eos cannot cut it short
    try:
        for n in (1, 2, 3, 17):
            r = decode(model, [1, 5, 9], method="swift", skip_set=uniform(model), max_new_tokens=n)
            assert r.new_tokens == n and r.stop_reason == "max_new_tokens"
    finally:
        model.generation_config.eos_token_id = 2


def test_eos_stops_like_generate(model):
    """Force an eos mid-draft: output must stop right after it, as generate() does."""
    ids = [1, 5, 9, 23]
    free = decode(model, ids, method="ar", max_new_tokens=30).token_ids
    eos = free[7]  # pretend the 8th generated token is the eos token
    model.generation_config.eos_token_id = eos
    try:
        ref = model.generate(torch.tensor([ids]), max_new_tokens=30, do_sample=False)[0, len(ids):].tolist()
        for method in ("ar", "swift"):
            r = decode(model, ids, method=method, skip_set=uniform(model), max_new_tokens=30)
            assert r.token_ids == ref == free[:free.index(eos) + 1]
            assert r.stop_reason == "eos"
    finally:
        model.generation_config.eos_token_id = 2


def test_record_counts_and_round_trip(model):
    r = decode(model, [1, 5, 9], method="swift", skip_set=uniform(model), max_new_tokens=40)
    assert r.steps == len(r.accepted_per_step) == len(r.drafted_per_step)
    assert all(0 <= a <= d for a, d in zip(r.accepted_per_step, r.drafted_per_step))
    # each pass yields its accepted drafts plus one token from the full model
    assert r.new_tokens == sum(r.accepted_per_step) + r.steps
    assert r.mean_accepted_tokens == pytest.approx(r.new_tokens / r.steps)
    assert r.acceptance_rate == pytest.approx(sum(r.accepted_per_step) / sum(r.drafted_per_step))
    assert set(r.timings_s) == {"prefill", "draft", "verify", "optimize", "other"}
    assert r.timings_s["prefill"] > 0
    assert sum(r.timings_s.values()) == pytest.approx(r.wall_s, rel=1e-6)
    assert r.timings_s["draft"] > 0 and r.timings_s["verify"] > 0
    back = DecodeResult.from_json(r.to_json())
    assert back == r
    assert json.loads(r.to_json())["mean_accepted_tokens"] == pytest.approx(r.mean_accepted_tokens)


def test_ar_record(model):
    r = decode(model, [1, 5, 9], method="ar", max_new_tokens=12)
    assert r.mean_accepted_tokens == 1.0 and r.acceptance_rate == 0.0 and r.skip_set is None
    assert r.timings_s["draft"] == 0.0


def test_local_folder_load_and_generate(local_llama_dir):
    model, tokenizer = load_model(local_llama_dir)
    result = generate(model, tokenizer, "hello", method="swift", skip_ratio=0.5, max_new_tokens=10)
    ar = generate(model, tokenizer, "hello", method="ar", max_new_tokens=10)
    assert result.token_ids == ar.token_ids and isinstance(result.text, str)
    assert encode_prompt(tokenizer, "") == [tokenizer.bos_token_id]  # empty prompt conditions on BOS


def test_load_errors(tmp_path, local_llama_dir):
    with pytest.raises(SwiftlabError, match="cannot load model .*nope"):
        load_model(tmp_path / "nope")
    with pytest.raises(SwiftlabError, match="is a file"):
        load_model(local_llama_dir / "config.json")
    with pytest.raises(SwiftlabError, match="unknown dtype"):
        load_model(local_llama_dir, dtype="int3")


def test_load_refuses_pickle_weights(tmp_path):
    """Weights load from safetensors only: a folder with just a pickle checkpoint is refused."""
    model = tiny_model("llama")
    model.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(SwiftlabError, match="cannot load model"):
        load_model(tmp_path)


def test_real_weights_identity(stories_path):
    model, tokenizer = load_model(stories_path)
    ids = encode_prompt(tokenizer, "Once upon a time")
    ref = model.generate(torch.tensor([ids]), max_new_tokens=120, do_sample=False)[0, len(ids):].tolist()
    L = num_layers(model)
    for skip_set in (SkipSet.uniform(L, 0.33), SkipSet.uniform(L, 0.5), SkipSet((1, 3), (2,), L)):
        r = decode(model, ids, method="swift", skip_set=skip_set, max_new_tokens=120)
        assert r.token_ids == ref
    assert r.acceptance_rate > 0.3  # a real model's drafts are mostly right
    text = generate(model, tokenizer, "Once upon a time", max_new_tokens=12).text
    assert "Once upon a time" + text == tokenizer.decode(ids + ref[:12], skip_special_tokens=True)


def test_session_steps_one_pass_at_a_time(model):
    from swiftlab import SwiftParams, is_pristine
    from swiftlab.engine.decoding import DecodeSession

    s = uniform(model, 0.75)
    session = DecodeSession(model, [1, 5, 9], method="swift", skip_set=s, max_new_tokens=30,
                            swift=SwiftParams(verify="chain"))
    events = []
    while not session.done:
        events.append(session.step())
        assert is_pristine(model)  # nothing left switched off between steps
    result = session.result()
    assert result.token_ids == decode(model, [1, 5, 9], method="ar", max_new_tokens=30).token_ids
    assert [t for e in events for t in e.new_tokens] == result.token_ids
    assert events[0].index == 0 and events[0].drafted == [] and len(events[0].new_tokens) == 1
    for e in events[1:]:
        assert e.new_tokens[:e.accepted] == e.drafted[:e.accepted]  # accepted drafts come first
        if e.accepted < len(e.drafted):
            assert e.new_tokens[-1] != e.drafted[e.accepted]  # the rejected draft was replaced
    with pytest.raises(SwiftlabError, match="finished"):
        session.step()


@pytest.mark.parametrize("method", ["ar", "swift"])
def test_the_prompt_pass_computes_the_last_logits_only(model, method):
    # the output head over every prompt position is wasted work (transformers' generate skips it too);
    # the head's input is watched: one position at the prompt pass, and the output stays the model's own
    widths = []
    hook = model.lm_head.register_forward_hook(lambda module, args, out: widths.append(args[0].shape[1]))
    try:
        result = decode(model, list(range(5, 45)), method=method, skip_set=uniform(model), max_new_tokens=6)
    finally:
        hook.remove()
    assert widths[0] == 1
    reference = model.generate(torch.tensor([list(range(5, 45))]), max_new_tokens=6, do_sample=False)
    assert result.token_ids == reference[0, 40:].tolist()


@pytest.mark.parametrize("method", ["ar", "swift"])
def test_on_step_sees_every_token_as_it_is_emitted(model, method):
    seen, lengths = [], []

    def on_step(event):
        seen.extend(event.new_tokens)
        lengths.append(len(seen))

    result = decode(model, [1, 2, 3, 4], method=method, skip_set=uniform(model) if method == "swift" else None,
                    max_new_tokens=24, on_step=on_step)
    assert seen == result.token_ids
    assert len(lengths) == result.steps  # once per full-model pass, the prompt pass included
    assert lengths == sorted(lengths) and lengths[0] == 1


def test_on_step_that_raises_leaves_the_model_as_found(model):
    before = {name: dict(module.__dict__).keys() for name, module in model.named_modules()}

    def on_step(event):
        if event.index == 2:
            raise RuntimeError("streamer broke")

    with pytest.raises(RuntimeError, match="streamer broke"):
        decode(model, [1, 2, 3, 4], skip_set=uniform(model), max_new_tokens=24, on_step=on_step)
    after = {name: dict(module.__dict__).keys() for name, module in model.named_modules()}
    assert before == after  # no instance forward left behind
    assert decode(model, [1, 2, 3, 4], skip_set=uniform(model), max_new_tokens=24).token_ids == \
        decode(model, [1, 2, 3, 4], method="ar", max_new_tokens=24).token_ids


def test_a_step_interrupted_half_way_refuses_to_go_on_with_a_clear_error(model, monkeypatch):
    """Ctrl-C 10 ms into a step left the model pristine but the session's next step() failed deep in torch
    ("size of tensor a (6) must match ... (12)"): now it refuses, saying why and what to do."""
    session = DecodeSession(model, [1, 2, 3, 4], skip_set=uniform(model), max_new_tokens=24)
    session.step()
    session.step()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "_verify", interrupted)  # after the draft wrote its KV entries
    with pytest.raises(KeyboardInterrupt):
        session.step()
    monkeypatch.undo()
    with pytest.raises(SwiftlabError, match=r"stopped in the middle of a step \(KeyboardInterrupt\).*start a new run"):
        session.step()
    fresh = decode(model, [1, 2, 3, 4], skip_set=uniform(model), max_new_tokens=24)
    assert fresh.token_ids == decode(model, [1, 2, 3, 4], method="ar", max_new_tokens=24).token_ids
