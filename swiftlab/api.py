"""Text in, record out: the one call the CLI, the benchmark and the notebooks use."""

from __future__ import annotations

from .decoding import SwiftParams, decode
from .plan import SkipPlan, StoreWarning, default_skip_plan, model_name_of  # noqa: F401 (the API's names)
from .errors import SwiftlabError
from .records import DecodeResult
from .sampling import SamplingParams
from .skipset import SkipSet


def encode_prompt(tokenizer, prompt: str, chat: str | bool = "auto") -> list[int]:
    """Token ids for a prompt: a user turn through the chat template where the tokenizer has one
    (chat="auto"; "on" insists, "off" sends the raw text), else the text itself."""
    from .tasks.chat import encode_turns, uses_chat

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


def generate(model, tokenizer, prompt: str, *, method: str = "swift", skip_set: SkipSet | None = None,
             skip_ratio: float | None = None, max_new_tokens: int = 128, temperature: float = 0.0,
             top_p: float = 1.0, top_k: int = 0, seed: int | None = None,
             swift: SwiftParams = SwiftParams(), chat: str | bool = "auto", streamer=None,
             plan: "SkipPlan | None" = None, store=None, model_name: str | None = None) -> DecodeResult:
    """Decode `prompt` (sent as a chat turn where the tokenizer has a template, see `encode_prompt`).
    SWIFT drafts with `skip_set`, or the uniform set at `skip_ratio`; with neither, with what is known
    about the model (`default_skip_plan`: a stored set or verdict, else plain steps with lookup drafts
    while a budgeted search looks for a set), and what the run learns goes to the skip-set `store`
    (None: the default store; False: neither read nor written) under `model_name` (default: the model's
    folder name). A `streamer` (transformers' TextStreamer, TextIteratorStreamer, ...) gets each verified
    chunk of tokens as it is accepted (streaming.py)."""
    from .adapters import num_layers
    from .streaming import streamed

    if plan is not None and (skip_set is not None or skip_ratio is not None or method != "swift"):
        raise SwiftlabError("give a plan, or a skip_set / skip_ratio, not both (a plan is for method='swift')")
    if method == "swift" and skip_set is None:
        if skip_ratio is not None:
            skip_set = SkipSet.uniform(num_layers(model), skip_ratio)
        elif plan is None:
            plan = default_skip_plan(model, model_name=model_name, store=store, swift=swift)
    prompt_ids = encode_prompt(tokenizer, prompt, chat)
    sampling = SamplingParams(temperature, top_k, top_p)
    if plan is not None:
        run = lambda on_step: plan.decode(prompt_ids, max_new_tokens, sampling, seed, on_step)  # noqa: E731
    else:
        run = lambda on_step: decode(model, prompt_ids, method=method, skip_set=skip_set,  # noqa: E731
                                     max_new_tokens=max_new_tokens, sampling=sampling, swift=swift, seed=seed,
                                     on_step=on_step)
    result = streamed(streamer, prompt_ids, run)
    if plan is not None:
        plan.save()  # never raises for the store's sake: a warning (StoreWarning) where it cannot be written
    result.text = decode_continuation(tokenizer, result.prompt_ids, result.token_ids)
    return result


def decode_continuation(tokenizer, prompt_ids: list[int], new_ids: list[int]) -> str:
    """The text the new tokens add to the prompt. Decoding them alone would lose the word
    boundary (SentencePiece drops a leading space), so decode both and take the difference."""
    before = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    after = tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)
    if after.startswith(before):
        return after[len(before):]
    return tokenizer.decode(new_ids, skip_special_tokens=True)
