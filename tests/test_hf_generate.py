"""SWIFT inside transformers' generate(): `custom_generate=swiftlab.hf_generate` and an exported folder.

Every option is checked against generate() itself with the same options: greedy output token for token,
sampling by a chi-square over the exact distribution generate() samples from (processors included)."""

import json
import sys

import numpy as np
import pytest
import torch
from transformers import (LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList,
                          TextIteratorStreamer)

import swiftlab
from swiftlab import SkipSet, SwiftlabError, SwiftParams, is_pristine
from swiftlab.models.adapters import num_layers
from swiftlab.hf import export_folder

from test_sampling import chi_square_p


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two cores shared by many workers: torch's own threads only fight each other here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lab():
    model, tokenizer = swiftlab.load_model("lab")
    return model, tokenizer, SkipSet.uniform(num_layers(model), 0.45)


def _inputs(tokenizer, text="Once upon a time, there was a little girl named Lily. She"):
    return tokenizer(text, return_tensors="pt")


def swift_generate(model, inputs, skip, **options):
    return model.generate(**inputs, custom_generate=swiftlab.hf_generate, skip_set=skip, **options)


class BanToken(LogitsProcessor):
    """A user's processor: token `ban` never follows token `after` (reads the row's own prefix)."""

    def __init__(self, after, ban):
        self.after, self.ban = after, ban

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[input_ids[:, -1] == self.after, self.ban] = -float("inf")
        return scores


class StopAfter(StoppingCriteria):
    """A user's criterion: stop once `token` has been generated twice after the prompt."""

    def __init__(self, prompt_length, token):
        self.prompt_length, self.token = prompt_length, token

    def __call__(self, input_ids, scores, **kwargs):
        return (input_ids[:, self.prompt_length:] == self.token).sum(-1) >= 2


def _greedy_options(tokenizer, inputs):
    n = inputs["input_ids"].shape[1]
    the = tokenizer(" and", add_special_tokens=False)["input_ids"][-1]  # generated at token 13 and 23
    return {
        "plain": {},
        "max_length": dict(max_length=n + 17),
        "repetition_penalty": dict(repetition_penalty=1.4),
        "no_repeat_ngram_size": dict(no_repeat_ngram_size=1),
        "bad_words_ids": dict(bad_words_ids=[[the]]),
        "eos_list_min_new_tokens": dict(eos_token_id=[tokenizer.eos_token_id, the], min_new_tokens=14),
        "eos_list": dict(eos_token_id=[tokenizer.eos_token_id, the]),
        "custom_processor": dict(logits_processor=LogitsProcessorList([BanToken(the, the + 1)]),
                                 repetition_penalty=1.2),
        "custom_stopping": dict(stopping_criteria=StoppingCriteriaList([StopAfter(n, the)])),
        "prefix_allowed_tokens_fn": dict(prefix_allowed_tokens_fn=lambda batch, ids: list(range(0, 2000, 3))),
    }


OPTIONS = ["plain", "max_length", "repetition_penalty", "no_repeat_ngram_size", "bad_words_ids",
           "eos_list_min_new_tokens", "eos_list", "custom_processor", "custom_stopping", "prefix_allowed_tokens_fn"]


@pytest.mark.parametrize("option", OPTIONS)
def test_greedy_equals_generate_with_the_same_options(lab, option):
    model, tokenizer, skip = lab
    inputs = _inputs(tokenizer)
    options = dict(max_new_tokens=24)
    options.update(_greedy_options(tokenizer, inputs)[option])
    if "max_length" in options:
        del options["max_new_tokens"]
    want = model.generate(**inputs, do_sample=False, **options)
    got = swift_generate(model, inputs, skip, return_dict_in_generate=True, **options)
    assert got.sequences.tolist() == want.tolist()
    assert got.swift.token_ids == want[0, inputs["input_ids"].shape[1]:].tolist()
    assert is_pristine(model)


def test_drafts_are_verified_under_the_processors(lab):
    """The repetition penalty reads each tree row's own prefix: drafted tokens are accepted, output still exact."""
    model, tokenizer, skip = lab
    inputs = _inputs(tokenizer)
    want = model.generate(**inputs, do_sample=False, max_new_tokens=40, repetition_penalty=1.3)
    got = swift_generate(model, inputs, skip, max_new_tokens=40, repetition_penalty=1.3, return_dict_in_generate=True,
                         swift=SwiftParams(fallback=False))
    assert got.sequences.tolist() == want.tolist()
    r = got.swift
    assert sum(r.accepted_per_step) > 5  # drafts were accepted ...
    assert any(size > drafted for size, drafted in zip(r.tree_size_per_step, r.drafted_per_step))  # ... from trees


def test_scores_and_logits_are_generates(lab):
    model, tokenizer, skip = lab
    inputs = _inputs(tokenizer)
    options = dict(max_new_tokens=20, repetition_penalty=1.3, return_dict_in_generate=True, output_scores=True,
                   output_logits=True)
    want = model.generate(**inputs, **options)
    got = swift_generate(model, inputs, skip, **options)
    assert type(got).__name__ == "GenerateDecoderOnlyOutput"
    assert got.sequences.tolist() == want.sequences.tolist()
    assert len(got.scores) == len(want.scores) == len(got.logits) == 20
    for mine, theirs in zip(got.scores + got.logits, want.scores + want.logits):
        assert mine.shape == theirs.shape
        finite = torch.isfinite(theirs)
        assert torch.equal(finite, torch.isfinite(mine))
        torch.testing.assert_close(mine[finite], theirs[finite], atol=1e-3, rtol=1e-3)
    assert swift_generate(model, inputs, skip, max_new_tokens=5).shape == (1, inputs["input_ids"].shape[1] + 5)


def test_stop_strings_need_and_use_the_tokenizer(lab):
    model, tokenizer, skip = lab
    inputs = _inputs(tokenizer)
    want = model.generate(**inputs, do_sample=False, max_new_tokens=40, stop_strings=["Jon"], tokenizer=tokenizer)
    got = swift_generate(model, inputs, skip, max_new_tokens=40, stop_strings=["Jon"], swift_tokenizer=tokenizer)
    assert got.tolist() == want.tolist()
    assert tokenizer.decode(want[0]).endswith(" Jonas")  # stopped by the string, inside the token
    with pytest.raises(SwiftlabError, match="swift_tokenizer"):
        swift_generate(model, inputs, skip, max_new_tokens=8, stop_strings=["Jon"], tokenizer=tokenizer)
    assert is_pristine(model)


def test_streamer_gets_the_verified_text(lab):
    model, tokenizer, skip = lab
    inputs = _inputs(tokenizer)
    want = model.generate(**inputs, do_sample=False, max_new_tokens=30)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
    got = swift_generate(model, inputs, skip, max_new_tokens=30, streamer=streamer)
    text = "".join(streamer)  # ends: end() was called
    assert got.tolist() == want.tolist()
    assert text == tokenizer.decode(want[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


class Recorder:
    def __init__(self, fail_after=None):
        self.puts, self.ended, self.fail_after = [], 0, fail_after

    def put(self, ids):
        self.puts.append(ids.view(-1).tolist())
        if self.fail_after is not None and len(self.puts) > self.fail_after:
            raise RuntimeError("the screen went away")

    def end(self):
        self.ended += 1


def test_streamer_chunks_and_a_streamer_that_raises(lab):
    model, tokenizer, skip = lab
    inputs = _inputs(tokenizer)
    recorder = Recorder()
    got = swift_generate(model, inputs, skip, max_new_tokens=30, streamer=recorder)
    prompt = inputs["input_ids"][0].tolist()
    assert recorder.puts[0] == prompt and recorder.ended == 1  # the prompt once (generate() sends it), end once
    assert sum(recorder.puts[1:], []) == got[0, len(prompt):].tolist()
    assert max(map(len, recorder.puts[1:])) > 1  # verified chunks, several tokens at a time
    failing = Recorder(fail_after=2)
    with pytest.raises(SwiftlabError, match="the streamer .*raised RuntimeError: the screen went away"):
        swift_generate(model, inputs, skip, max_new_tokens=30, streamer=failing)
    assert failing.ended == 1 and is_pristine(model)


def test_no_skip_set_takes_plain_steps_and_lookup_drafts(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("SWIFTLAB_STORE", str(tmp_path / "empty.json"))  # nothing known: plan.default_skip_plan's start
    model, tokenizer, _ = lab
    inputs = _inputs(tokenizer, "Once upon a time, there was a little girl named Lily. She liked to play. "
                                "Once upon a time, there was a little")  # the text repeats: lookup drafts
    want = model.generate(**inputs, do_sample=False, max_new_tokens=24)
    got = model.generate(**inputs, custom_generate=swiftlab.hf_generate, max_new_tokens=24,
                         return_dict_in_generate=True)
    assert got.sequences.tolist() == want.tolist()
    assert "skip" not in got.swift.step_kinds and "lookup" in got.swift.step_kinds


def test_no_skip_set_stores_what_the_run_learned_and_the_next_run_uses_it(lab, tmp_path, monkeypatch):
    """As swiftlab.generate does: a cold generate() call searches within its budget and stores what it found;
    the next call starts from it (no search)."""
    import swiftlab.search.plan as plan_module
    from swiftlab.search.store import SkipSetStore

    monkeypatch.setenv("SWIFTLAB_STORE", str(tmp_path / "store.json"))
    monkeypatch.setattr(plan_module, "PLAN_SEARCH_SHARE", 1.0)  # let a short run's search score, so it learns
    model, tokenizer, _ = lab
    inputs = _inputs(tokenizer)
    want = model.generate(**inputs, do_sample=False, max_new_tokens=64)
    cold = model.generate(**inputs, custom_generate=swiftlab.hf_generate, max_new_tokens=64,
                          return_dict_in_generate=True)
    assert cold.sequences.tolist() == want.tolist() and cold.swift.timings_s["optimize"] > 0  # it searched
    entry = SkipSetStore().entries()["lab_generate"]
    assert entry["iterations"] > 0
    assert plan_module.default_skip_plan(model).used == "lab_generate"  # the next call starts from what it stored
    warm = model.generate(**inputs, custom_generate=swiftlab.hf_generate, max_new_tokens=64,
                          return_dict_in_generate=True)
    assert warm.sequences.tolist() == want.tolist()
    if entry.get("verdict") is not None:  # a judged set or verdict: no search again
        assert warm.swift.timings_s["optimize"] == 0
    assert is_pristine(model)


def test_skip_set_as_file_key_and_store_entry(lab, tmp_path, monkeypatch):
    from swiftlab.search.store import SkipSetStore

    monkeypatch.setenv("SWIFTLAB_STORE", str(tmp_path / "store.json"))

    model, tokenizer, skip = lab
    inputs = _inputs(tokenizer)
    want = swift_generate(model, inputs, skip, max_new_tokens=12, return_dict_in_generate=True)
    own = tmp_path / "set.json"
    skip.save(own)
    reference = tmp_path / "skip_layers.json"
    reference.write_text(json.dumps({"lab_story": {"attention": list(skip.attention), "mlp": list(skip.mlp)},
                                     "other_task": {"attention": [], "mlp": []}}))
    key = SkipSetStore().put("lab", "hf-test", skip)
    for given in (str(own), own, f"{reference}#lab_story", key):
        got = swift_generate(model, inputs, given, max_new_tokens=12, return_dict_in_generate=True)
        assert got.sequences.tolist() == want.sequences.tolist()
        assert got.swift.skip_set == skip.to_dict()


def _one_line_error(call, match):
    with pytest.raises(SwiftlabError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_bad_skip_sets_are_one_clear_error(lab, tmp_path):
    model, tokenizer, _ = lab
    inputs = _inputs(tokenizer)
    other = SkipSet.uniform(num_layers(model) + 4, 0.4)
    reference = tmp_path / "skip_layers.json"
    reference.write_text(json.dumps({"a": {"attention": [2], "mlp": []}, "b": {"attention": [3], "mlp": []}}))
    for given, match in ((other, "skip set is for a 20-layer model, this model has 16 layers"),
                         (str(tmp_path / "missing.json"), "neither a skip-set file nor a key of the store"),
                         ("nomodel_notask", "neither a skip-set file nor a key of the store"),
                         (f"{reference}#c", "has no skip set 'c'"),
                         (str(reference), "holds 2 skip sets"),
                         (3, "skip_set must be a SkipSet")):
        _one_line_error(lambda: swift_generate(model, inputs, given, max_new_tokens=4), match)
        assert is_pristine(model)


def test_unsupported_options_are_one_clear_error(lab):
    model, tokenizer, skip = lab
    inputs = _inputs(tokenizer)
    batch = tokenizer(["Once upon a time", "The cat sat on the mat"], return_tensors="pt", padding=True)
    padded = dict(inputs)
    padded["attention_mask"] = inputs["attention_mask"].clone()
    padded["attention_mask"][0, 0] = 0
    cases = [
        (dict(num_beams=2), "beam search"),
        (dict(num_return_sequences=2, do_sample=True), "num_return_sequences=2"),
        (dict(assistant_model=model), "assisted generation"),
        (dict(prompt_lookup_num_tokens=3), "assisted generation"),
        (dict(return_dict_in_generate=True, output_attentions=True), "output_attentions=True is not supported"),
        (dict(return_dict_in_generate=True, output_hidden_states=True), "output_hidden_states=True"),
        (dict(guidance_scale=1.5), "keeps state between calls"),
        (dict(inputs_embeds=model.get_input_embeddings()(inputs["input_ids"])), "model input inputs_embeds"),
    ]
    for options, match in cases:
        _one_line_error(lambda: swift_generate(model, inputs, skip, max_new_tokens=4, **options), match)
        assert is_pristine(model)
    recorder = Recorder()
    _one_line_error(lambda: model.generate(**batch, custom_generate=swiftlab.hf_generate, skip_set=skip,
                                           max_new_tokens=4, streamer=recorder), "a batch of 2 prompts")
    assert recorder.ended == 1  # generate() sent the prompt: its end comes too
    _one_line_error(lambda: swift_generate(model, padded, skip, max_new_tokens=4), "padding in attention_mask")
    assert is_pristine(model)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2", "qwen3", "phi"])
def test_families(family):
    from tiny_models import tiny_model

    model = tiny_model(family)
    skip = SkipSet.uniform(num_layers(model), 0.45)
    inputs = {"input_ids": torch.tensor([[5, 17, 33, 8, 5, 17, 40, 12]])}
    for options in (dict(), dict(repetition_penalty=1.3, no_repeat_ngram_size=3)):
        want = model.generate(**inputs, do_sample=False, max_new_tokens=30, **options)
        got = swift_generate(model, inputs, skip, max_new_tokens=30, **options)
        assert got.tolist() == want.tolist(), (family, options)
        assert is_pristine(model)


def test_real_weights(stories_path):
    model, tokenizer = swiftlab.load_model(stories_path)
    skip = SkipSet.uniform(num_layers(model), 0.45)
    inputs = _inputs(tokenizer, "Once upon a time")
    for options in (dict(), dict(repetition_penalty=1.3, min_new_tokens=10)):
        want = model.generate(**inputs, do_sample=False, max_new_tokens=40, **options)
        got = swift_generate(model, inputs, skip, max_new_tokens=40, **options)
        assert got.tolist() == want.tolist()


# --- sampling: generate()'s distribution, processors included

V, PROMPT, N = 12, [3, 7, 1], 1000
SAMPLING = dict(do_sample=True, temperature=0.8, top_k=8, repetition_penalty=2.5)


@pytest.fixture(scope="module")
def small():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=6,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         bos_token_id=None, eos_token_id=None, pad_token_id=0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(6.0)
    return model


def _target(model, prefixes, processors):
    """generate()'s sampling distribution after each prefix (all the same length)."""
    ids = torch.tensor(prefixes)
    with torch.no_grad():
        logits = model(ids).logits[:, -1].float()
    return torch.softmax(processors(ids, logits), -1)


def exact_second_and_third(model, processors):
    p1 = _target(model, [PROMPT], processors)[0]
    p2 = _target(model, [PROMPT + [a] for a in range(V)], processors)  # [a, b]
    p3 = _target(model, [PROMPT + [a, b] for a in range(V) for b in range(V)], processors).view(V, V, V)
    joint12 = p1[:, None] * p2
    return joint12.sum(0).double().numpy(), (joint12[:, :, None] * p3).sum((0, 1)).double().numpy()


def test_sampling_keeps_generates_distribution(small):
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    inputs = {"input_ids": torch.tensor([PROMPT])}
    prepared = []  # the processors generate() itself builds for these options: the exact target is made of them
    small.generate(**inputs, max_new_tokens=3, **SAMPLING,
                   custom_generate=lambda model, input_ids, logits_processor, **rest: prepared.append(
                       logits_processor) or input_ids)
    processors = prepared[0]
    assert [type(p).__name__ for p in processors] == ["RepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper",
                                                      "TopKLogitsWarper"]
    want2, want3 = exact_second_and_third(small, processors)
    # the drafter samples without the penalty: q differs from p, and the output must not
    unpenalized2, _ = exact_second_and_third(small, LogitsProcessorList(
        [p for p in processors if not isinstance(p, RepetitionPenaltyLogitsProcessor)]))
    skip = SkipSet((1, 2, 3), (2, 4), 6)
    swift = SwiftParams(epsilon=0.0, max_draft=4, sampling_candidates=((0.0, 3),), fallback=False)
    second, third, drafted, accepted = [], [], 0, 0
    torch.manual_seed(0)
    for _ in range(N):
        out = swift_generate(small, inputs, skip, max_new_tokens=3, swift=swift, return_dict_in_generate=True,
                             **SAMPLING)
        second.append(out.swift.token_ids[1])
        third.append(out.swift.token_ids[2])
        drafted += sum(out.swift.drafted_per_step)
        accepted += sum(out.swift.accepted_per_step)
    assert 0.1 < accepted / drafted < 0.97  # accept and reject-and-resample both ran many times
    assert chi_square_p(np.array(second), want2) > 1e-3
    assert chi_square_p(np.array(third), want3) > 1e-3
    assert chi_square_p(np.array(second), unpenalized2) < 1e-6  # the test tells the processors' absence apart
    torch.manual_seed(5)
    a = swift_generate(small, inputs, skip, max_new_tokens=8, **SAMPLING)
    torch.manual_seed(5)
    assert swift_generate(small, inputs, skip, max_new_tokens=8, **SAMPLING).tolist() == a.tolist()  # seeded: repeats


# --- the exported folder


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """transformers copies remote code into its modules cache: a fresh one per test, not the user's."""
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path / "modules"


def test_exported_folder_round_trip(lab, tmp_path, modules_cache):
    model, tokenizer, skip = lab
    folder = export_folder(tmp_path / "swift-lab", skip, model="lab", task="story", source="a test set")
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "README.md", "custom_generate/generate.py", "custom_generate/requirements.txt", "skip_set.json"]
    assert SkipSet.load(folder / "skip_set.json") == skip
    assert "upload_folder" in (folder / "README.md").read_text()
    inputs = _inputs(tokenizer)
    want = model.generate(**inputs, do_sample=False, max_new_tokens=30, repetition_penalty=1.2)
    recorder = Recorder()
    got = model.generate(**inputs, custom_generate=str(folder), trust_remote_code=True, max_new_tokens=30,
                         repetition_penalty=1.2, streamer=recorder, return_dict_in_generate=True)
    assert got.sequences.tolist() == want.tolist()
    assert got.swift.skip_set == skip.to_dict() and recorder.ended == 1
    stop = dict(max_new_tokens=40, stop_strings=["Jon"], tokenizer=tokenizer)
    assert model.generate(**inputs, custom_generate=str(folder), trust_remote_code=True, **stop).tolist() == \
        model.generate(**inputs, do_sample=False, **stop).tolist()
    assert is_pristine(model)
    with pytest.raises(SwiftlabError, match="already exists"):
        export_folder(folder, skip, model="lab", task="story", source="again")


def test_folder_without_a_skip_set_names_the_folder(lab, tmp_path, modules_cache):
    model, tokenizer, skip = lab
    folder = export_folder(tmp_path / "broken", skip, model="lab", task="story", source="a test set")
    code = folder / "custom_generate" / "generate.py"
    lines = [("SKIP_SET = None" if line.startswith("SKIP_SET = ") else line) for line in code.read_text().splitlines()]
    code.write_text("\n".join(lines) + "\n")
    _one_line_error(lambda: model.generate(**_inputs(tokenizer), custom_generate=str(folder), trust_remote_code=True,
                                           max_new_tokens=4), "custom_generate folder broken has no skip set")


def test_cli_export_hf(tmp_path, capsys, modules_cache):
    from swiftlab.cli import main
    from swiftlab.search.store import SkipSetStore

    store = tmp_path / "store.json"
    model, tokenizer = swiftlab.load_model("lab")
    skip = SkipSet.uniform(num_layers(model), 0.3)
    SkipSetStore(store).put("lab", "story", skip)
    folder = tmp_path / "out"
    assert main(["export-hf", str(folder), "--model", "lab", "--task", "story", "--store", str(store)]) == 0
    assert SkipSet.load(folder / "skip_set.json") == skip
    assert "store entry lab_story" in (folder / "custom_generate" / "generate.py").read_text()
    inputs = _inputs(tokenizer)
    got = model.generate(**inputs, custom_generate=str(folder), trust_remote_code=True, max_new_tokens=12)
    assert got.tolist() == model.generate(**inputs, do_sample=False, max_new_tokens=12).tolist()
    capsys.readouterr()
    assert main(["export-hf", str(tmp_path / "none"), "--model", "lab", "--task", "math", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "no skip set for model 'lab' and task 'math'" in err and "none was not written" in err
    assert not (tmp_path / "none").exists()
    assert main(["export-hf", str(folder), "--model", "lab", "--task", "story", "--store", str(store)]) == 2
    assert "already exists" in capsys.readouterr().err
    own = tmp_path / "set.json"
    skip.save(own)
    assert main(["export-hf", str(tmp_path / "from-file"), "--model", "lab", "--skip-set", str(own)]) == 0
    assert SkipSet.load(tmp_path / "from-file" / "skip_set.json") == skip
