"""Text in, record out: the one call the CLI, the benchmark and the notebooks use."""

from __future__ import annotations

from .engine.decoding import SwiftParams, decode
from .search.plan import SkipPlan, StoreWarning, default_skip_plan, model_name_of  # noqa: F401 (the API's names)
from .support.errors import SwiftlabError
from .engine.records import DecodeResult
from .engine.sampling import SamplingParams
from .engine.skipset import SkipSet
from .tasks.chat import decode_continuation, encode_prompt  # noqa: F401 (the API's names)


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
    from .models.adapters import num_layers
    from .engine.streaming import streamed

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
