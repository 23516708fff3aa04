"""Prompts as an instruct model expects them: task text sent as a user turn through the tokenizer's
chat template, and multi-turn conversations (Spec-Bench's MT-bench questions) where each later turn
follows the model's own answer to the one before, as Spec-Bench runs them.

`chat`: "on" uses the template (an error where the tokenizer has none), "off" sends the raw text,
"auto" (default) uses it where the tokenizer has one. Base models and the lab model have none, so
"auto" changes nothing for them.
"""

from __future__ import annotations

from ..support.errors import SwiftlabError

CHAT_MODES = ("auto", "on", "off")


def uses_chat(tokenizer, chat: str | bool = "auto") -> bool:
    """Whether prompts go through `tokenizer`'s chat template under `chat` ("auto", "on" or "off"; True and
    False mean "on" and "off"): "auto" where the tokenizer has a template. Raises SwiftlabError for an
    unknown mode, or "on" with a tokenizer that has no template."""
    if chat is True or chat is False:
        chat = "on" if chat else "off"
    if chat not in CHAT_MODES:
        raise SwiftlabError(f"unknown chat mode {chat!r}; choose one of {', '.join(CHAT_MODES)}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat == "on" and not has_template:
        raise SwiftlabError("chat='on' but this tokenizer has no chat template; use chat='off' (raw text) "
                            "or 'auto'")
    return chat == "on" or (chat == "auto" and has_template)


def conversation(turns: list[str], answers: list[str]) -> list[dict]:
    """User turns interleaved with the assistant's answers so far (one fewer answer than turns)."""
    if len(answers) != len(turns) - 1:
        raise SwiftlabError(f"a conversation of {len(turns)} user turn(s) needs {len(turns) - 1} answer(s), "
                            f"got {len(answers)}")
    messages = []
    for i, turn in enumerate(turns):
        messages.append({"role": "user", "content": turn})
        if i < len(answers):
            messages.append({"role": "assistant", "content": answers[i]})
    return messages


def encode_turns(tokenizer, turns: list[str], answers: list[str] = (), chat: str | bool = "auto") -> list[int]:
    """Token ids of a conversation up to the assistant's next answer: the chat template with its
    generation prompt, or (without a template) the turns and answers joined by blank lines."""
    answers = list(answers)
    messages = conversation(list(turns), answers)
    if uses_chat(tokenizer, chat):
        # text first, then tokens: apply_chat_template's tokenized return type differs across versions
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    text = "\n\n".join(m["content"] for m in messages)
    if answers:
        text += "\n\n"
    return tokenizer(text, add_special_tokens=True)["input_ids"]


def encode_prompt(tokenizer, prompt: str, chat: str | bool = "auto") -> list[int]:
    """Token ids for a prompt: a user turn through the chat template where the tokenizer has one
    (chat="auto"; "on" insists, "off" sends the raw text), else the text itself."""
    if not isinstance(prompt, str):
        raise SwiftlabError(f"prompt must be a string, got {type(prompt).__name__}")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates: undecodable bytes that reached us through argv or a file
        raise SwiftlabError(f"prompt is not valid UTF-8 text (character {e.start}: {prompt[e.start]!r})") from None
    if uses_chat(tokenizer, chat):
        return encode_turns(tokenizer, [prompt], chat="on")
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    if not ids and tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id]  # an empty prompt conditions on BOS alone
    return ids


def decode_continuation(tokenizer, prompt_ids: list[int], new_ids: list[int]) -> str:
    """The text the new tokens add to the prompt. Decoding them alone would lose the word
    boundary (SentencePiece drops a leading space), so decode both and take the difference."""
    before = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    after = tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)
    if after.startswith(before):
        return after[len(before):]
    return tokenizer.decode(new_ids, skip_special_tokens=True)
