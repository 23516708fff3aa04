"""`swiftlab chat`: a multi-turn conversation in the terminal, decoded with SWIFT as it is typed.

Every turn re-encodes the whole conversation through the tokenizer's chat template (the answers as
text, as a chat model sees its history), and all turns of one chat are prompts of ONE SwiftStream:
the skip-set search learns across turns within its share of wall time, a verdict ("layer skipping
does not pay here") holds for the turns after it, and at the end what it learned is stored for the
model and task "chat" (store.SkipSetStore, atomically), so the next chat starts from it. Each
verified chunk is printed as it is accepted, whole words at a time (transformers' TextStreamer), and
never taken back: verification keeps the answer the full model's own.

After each answer one line says what it cost: tokens, tokens per full-model pass, tokens/s, and a
speedup estimate against plain steps: the time the answer would have taken at the measured cost of a
plain (autoregressive) step, prompt pass as it was, over the time it took, search included. An
estimate: the plain steps are the engine's own (StepPolicy takes them while it measures, or where
drafting does not pay), the answer's own where it took a few (a shared machine's load changes), else the
chat's latest; a greedy chat nearly always has some, a sampling one only where skip drafting is ruled
out (else the search's expected speedup is shown, once it measured pass costs).

Ctrl-C during an answer stops that answer and keeps what was printed of it in the history (the screen
and the model's context agree; an answer stopped before its first token is dropped with its message);
the chat goes on. When the conversation and --max-new-tokens outgrow the model's context, the oldest
turns are dropped, with a one-line notice. Each answer's prompt pass reads the whole conversation again
(nothing is kept of the previous turn's cache): long chats pay for it in prefill time.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections import deque
from dataclasses import dataclass
from typing import Callable

from transformers import TextStreamer

from .api import decode_continuation
from .engine.decoding import SwiftParams, context_limit
from .support.errors import SwiftlabError
from .engine.records import DecodeResult
from .engine.sampling import SamplingParams
from .search.stream import DOES_NOT_PAY, PAYS
from .engine.streaming import streamed
from .tasks.chat import conversation, encode_turns, uses_chat

TASK = "chat"  # the store's task name for chats
PROMPT = "> "
EXIT_COMMANDS = ("/exit", "/quit")
RESET_COMMAND = "/reset"
LOOKUP = 15  # lookup drafts: a chat repeats names and phrases of its history
VERDICT_WORDS = {PAYS: ", skipping pays", DOES_NOT_PAY: ", skipping does not pay here"}


class MessageTooLong(SwiftlabError):
    """A message that does not fit the model's context even without any history."""


@dataclass
class Turn:
    """One exchange of the conversation: the user's message and the answer as text, as the model sees it in
    its history (stripped; of a stopped answer, the part that was printed)."""
    user: str
    answer: str


@dataclass
class Reply:
    """What `Chat.reply` returns: the answer's text, its DecodeResult (None when Ctrl-C stopped it), the tokens
    emitted, and the plain step's seconds the speedup estimate compares with (None: none timed yet)."""
    text: str
    result: DecodeResult | None  # None when interrupted
    tokens: int  # emitted before the end (or the interrupt)
    interrupted: bool = False
    plain_pass_s: float | None = None  # a plain step's seconds it is compared with (its own, else the chat's latest)


def encode_conversation(tokenizer, turns: list[Turn], user: str, system: str | None = None) -> list[int]:
    """Token ids of the conversation so far and the new message, up to the assistant's answer: the chat
    template applied to all turns (tasks.chat.encode_turns), a system message first where given."""
    questions, answers = [t.user for t in turns] + [user], [t.answer for t in turns]
    if system is None:
        return encode_turns(tokenizer, questions, answers)
    messages = [{"role": "system", "content": system}] + conversation(questions, answers)
    if uses_chat(tokenizer):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    # no template: the system text is the first paragraph, the rest joined as encode_turns joins it
    text = "\n\n".join(m["content"] for m in messages) + ("\n\n" if answers else "")
    return tokenizer(text, add_special_tokens=True)["input_ids"]


class ChatPrinter(TextStreamer):
    """transformers' TextStreamer writing to `out`: whole words as their tokens are verified, the answer's
    leading and trailing blank space dropped (held back until text follows it), a newline at the end (also
    after an interrupt: streaming.streamed ends it). `printed`: what the screen shows of the answer."""

    def __init__(self, tokenizer, out=None):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.out = out if out is not None else sys.stdout
        self.printed = ""
        self._held = ""  # blank space that ends the text so far: printed once more text follows it

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        text = self._held + text
        if not self.printed:
            text = text.lstrip()
        shown = text.rstrip()
        self._held = text[len(shown):]
        self.printed += shown
        self.out.write(shown + ("\n" if stream_end else ""))
        self.out.flush()


class Chat:
    """One conversation with `model`, every answer a prompt of `stream` (a stream.SwiftStream)."""

    def __init__(self, model, tokenizer, stream, *, system: str | None = None, max_new_tokens: int = 256,
                 sampling: SamplingParams = SamplingParams(), seed: int | None = None,
                 notify: Callable[[str], None] = lambda line: None):
        self.model, self.tokenizer, self.stream = model, tokenizer, stream
        self.system, self.max_new_tokens, self.sampling, self.seed = system, max_new_tokens, sampling, seed
        self.notify = notify
        self.limit = context_limit(model)
        if self.limit is not None and max_new_tokens >= self.limit:
            raise SwiftlabError(f"--max-new-tokens {max_new_tokens} leaves no room for a message in the model's "
                                f"context of {self.limit} tokens")
        self.turns: list[Turn] = []
        self.answered = 0  # answers given in this chat (a seeded chat's turn t samples with seed + t)
        self.plain_pass_s: deque[float] = deque(maxlen=32)  # the latest plain steps' seconds, for the estimate

    def reset(self) -> None:
        """Forget the conversation (the stream, and what its search learned, stay)."""
        self.turns = []

    def fit(self, user: str) -> tuple[list[int], int]:
        """The encoded conversation with `user`'s message, without as many of the oldest turns as it takes
        to leave room for max_new_tokens in the context: (ids, turns to drop)."""
        for dropped in range(len(self.turns) + 1):
            ids = encode_conversation(self.tokenizer, self.turns[dropped:], user, self.system)
            if self.limit is None or len(ids) + self.max_new_tokens <= self.limit:
                return ids, dropped
        raise MessageTooLong(f"message too long: {len(ids)} tokens (with the chat template) + {self.max_new_tokens} "
                             f"new tokens exceed the model's context of {self.limit}; shorten it or lower "
                             "--max-new-tokens")

    def reply(self, user: str, streamer=None) -> Reply:
        """Answer `user`'s message in the conversation, each verified chunk sent to `streamer` (a
        transformers streamer, e.g. ChatPrinter). A KeyboardInterrupt stops the answer: what was printed
        of it (emitted, without a ChatPrinter) stays in the history and is returned, marked interrupted."""
        ids, dropped = self.fit(user)
        if dropped:
            self.turns = self.turns[dropped:]
            self.notify(f"the conversation outgrew the model's context of {self.limit} tokens: dropped the oldest "
                        f"{dropped} turn(s), {len(self.turns)} kept")
        emitted: list[int] = []
        plain_now: list[float] = []
        seed = None if self.seed is None else self.seed + self.answered

        def run(hook):
            def on_step(event):
                emitted.extend(event.new_tokens)
                if event.kind == "ar" and "verify" in event.timings:  # a plain step: one full-model pass (its
                    plain_now.append(event.timings["verify"])  # seconds without a search step after it)
                if hook is not None:
                    hook(event)
            return self.stream.decode(ids, max_new_tokens=self.max_new_tokens, sampling=self.sampling, seed=seed,
                                      on_step=on_step)

        self.answered += 1
        try:
            result = streamed(streamer, ids, run)
        except KeyboardInterrupt:
            self.plain_pass_s.extend(plain_now)
            # what the screen shows, where the streamer keeps it (a chunk the interrupt caught half-way through
            # the printer is printed or not, whatever the order of counting and printing); else what was emitted
            printed = getattr(streamer, "printed", None)
            text = (printed if isinstance(printed, str) else decode_continuation(self.tokenizer, ids, emitted)).strip()
            if text:
                self.turns.append(Turn(user, text))
            return Reply(text, None, len(emitted), interrupted=True)
        # the plain steps timed during this answer, where there are enough: the load of a shared machine changes
        own = statistics.median(plain_now) if len(plain_now) >= self.OWN_PLAIN_STEPS else None
        self.plain_pass_s.extend(plain_now)
        text = decode_continuation(self.tokenizer, ids, result.token_ids).strip()
        self.turns.append(Turn(user, text))
        return Reply(text, result, result.new_tokens, plain_pass_s=own or self._recent_plain_s())

    OWN_PLAIN_STEPS = 4  # an answer with this many plain steps is compared with them, else with the chat's latest

    def _recent_plain_s(self) -> float | None:
        return statistics.median(self.plain_pass_s) if self.plain_pass_s else None

    def speedup(self, reply: Reply) -> str:
        """The answer against plain steps, in words: see the module's docstring."""
        result, plain = reply.result, reply.plain_pass_s
        if plain is not None and result.wall_s > 0:
            as_plain = result.timings_s.get("prefill", 0.0) + max(result.new_tokens - 1, 0) * plain
            return f"~{as_plain / result.wall_s:.2f}x plain steps"
        expected = self.stream.expected_speedup()
        if expected is not None:
            return f"~{expected:.2f}x expected by the search"
        return "no plain step timed yet"

    def stats_line(self, reply: Reply) -> str:
        """The one line printed after an answer."""
        if reply.result is None:
            if not reply.text:
                return "[stopped before the answer began; the message is dropped from the history]"
            return f"[stopped after {_tokens(reply.tokens)}; the partial answer stays in the history]"
        r = reply.result
        steps = ", ".join(f"{'plain' if kind == 'ar' else kind} {n}" for kind, n in r.drafters.items() if n)
        verdict = VERDICT_WORDS.get(self.stream.verdict, "")
        records = self.stream.records
        if records and records[-1].lookup == "pure":  # the stream chose it for this answer (search/lookupchoice.py)
            verdict = f", pure prompt lookup{verdict}"
        return (f"[{_tokens(r.new_tokens)}, {r.mean_accepted_tokens:.2f} tokens/pass, {r.tokens_per_s:.1f} tok/s, "
                f"{self.speedup(reply)}; steps: {steps or 'prompt pass only'}{verdict}]")


def _tokens(n: int) -> str:
    return f"{n} token{'' if n == 1 else 's'}"


def chat_stream(model, store, model_name: str, lookup: int = LOOKUP):
    """The chat's SwiftStream: from the set (and verdict) stored for this model's chats, else a fresh search
    that also chooses the skip ratio. A stored search that had not finished (a short chat: no verdict, not
    stopped) resumes from its best set rather than freezing it, as `optimize` resumes from a stored set."""
    from .models.adapters import num_layers
    from .search.skipsearch import RATIOS, SearchConfig
    from .search.stream import StreamSettings, SwiftStream

    settings, config = StreamSettings(swift=SwiftParams(lookup=lookup)), SearchConfig(ratios=RATIOS)
    entry = store.entries().get(store.key(model_name, TASK))
    if entry is None or entry.get("verdict") or entry.get("stopped_because"):
        return SwiftStream.from_store(model, store, model_name, TASK, config, settings)
    stream = SwiftStream(model, config, store.get(model_name, TASK, num_layers(model)), settings)
    stream.started_from = f"{store.path} [{store.key(model_name, TASK)}] (an unfinished search: it goes on)"
    return stream


def save_stream(stream, store, model_name: str) -> str:
    """Store what the chat's search learned (stream.save_to: atomic, only where it beats the stored entry);
    the line to print."""
    key, why_not = stream.save_to(store, model_name, TASK)
    if why_not:
        return f"nothing stored for {key}: {why_not}"
    return f"stored what the search learned in {store.path} [{key}]"


class Terminal:
    """Where the chat talks: answers to `out`, notices and stats lines to `err` (dim on a terminal)."""

    def __init__(self, read: Callable[[str], str] = input, out=None, err=None):
        self.read = read
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.dim = _is_terminal(self.err) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"

    def note(self, line: str) -> None:
        """Write a notice or stats line to `err` (dim on a terminal), after flushing `out` so it follows the answer."""
        self.out.flush()
        self.err.write((f"\033[2m{line}\033[0m" if self.dim else line) + "\n")
        self.err.flush()


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run_chat(chat: Chat, terminal: Terminal) -> None:
    """Read messages and answer them until /exit, end of input (Ctrl-D) or Ctrl-C at the prompt."""
    while True:
        try:
            line = terminal.read(PROMPT)
        except (EOFError, KeyboardInterrupt):
            terminal.out.write("\n")
            terminal.out.flush()
            return
        text = line.strip()
        if not text:
            continue
        if text in EXIT_COMMANDS:
            return
        if text == RESET_COMMAND:
            chat.reset()
            terminal.note("[conversation forgotten]")
            continue
        if text.startswith("/") and len(text.split()) == 1:
            terminal.note(f"[unknown command {text}: {RESET_COMMAND} forgets the conversation, "
                          f"{' or '.join(EXIT_COMMANDS)} (or Ctrl-D) quits]")
            continue
        try:
            reply = chat.reply(text, ChatPrinter(chat.tokenizer, terminal.out))
        except MessageTooLong as e:
            terminal.note(f"[{e}]")
            continue
        terminal.note(chat.stats_line(reply) + "\n")  # a blank line between exchanges


def start_note(stream) -> str | None:
    """Where the chat's stream starts from, when not from scratch: the stored set, and its verdict."""
    if not stream.started_from:
        return None
    verdict = ("; its verdict: layer skipping does not pay here (plain and lookup steps)"
               if stream.verdict == DOES_NOT_PAY else "")
    return f"[starting from the stored set {stream.started_from}{verdict}]"


def banner(model_name: str, chat: Chat) -> str:
    """The chat's first line: the model, how it drafts, greedy or the temperature, and the commands."""
    lookup = chat.stream.settings.swift.lookup
    how = "SWIFT" + (f" with lookup drafts (up to {lookup})" if lookup else "")
    sampling = "greedy" if chat.sampling.greedy else f"sampling at temperature {chat.sampling.temperature:g}"
    return (f"swiftlab chat: {model_name}, {how}, {sampling}. {RESET_COMMAND} forgets the conversation, "
            f"{EXIT_COMMANDS[0]} or Ctrl-D quits, Ctrl-C stops an answer.")


def default_model() -> str:
    """smollm2-135m (a real chat model) where its package is installed or it is converted, else the lab model."""
    from .models.registry import describe

    smollm2 = {row["name"]: row for row in describe()}.get("smollm2-135m")
    return "smollm2-135m" if smollm2 and (smollm2["present"] or smollm2["installed"]) else "lab"
