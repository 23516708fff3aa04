"""SWIFT inside transformers' own `generate()`.

    model.generate(**inputs, custom_generate=swiftlab.hf_generate, skip_set=skip, max_new_tokens=64)

generate() prepares as usual (generation config, special tokens, logits processors with the sampling
warpers, stopping criteria with max_length / eos / stop strings) and calls `hf_generate` as its decoding
loop, which runs swiftlab's DecodeSession: the same engine as everywhere else. Its rules are applied to
the full model's logits in verification, row by row with each row's own prefix (a tree node's prefix is
its path), and the stopping criteria token by token over each accepted chunk, so greedy output is
generate()'s own and sampling keeps generate()'s distribution (the drafter samples from swiftlab's
SamplingParams, p is the processed full-model distribution: rejection sampling is lossless for any q).

`export_folder` writes a folder with `custom_generate/generate.py`, which transformers runs with
`model.generate(**inputs, custom_generate=FOLDER_OR_HUB_ID, trust_remote_code=True)`.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from .support.errors import SwiftlabError
from .engine.skipset import SkipSet

__all__ = ["export_folder", "folder_generate", "hf_generate", "resolve_skip_set"]

# processors that keep state between calls (their own cache, a step counter): they cannot be asked about
# rows out of order, or about rows that verification then rejects
STATEFUL_PROCESSORS = {"ClassifierFreeGuidanceLogitsProcessor", "UnbatchedClassifierFreeGuidanceLogitsProcessor",
                       "AlternatingCodebooksLogitsProcessor", "WhisperTimeStampLogitsProcessor",
                       "WhisperNoSpeechDetection"}
# what generate() itself puts into the loop's model kwargs for a plain decoder-only prompt
PREPARED_KWARGS = {"attention_mask", "position_ids", "logits_to_keep", "use_cache", "cache"}


def hf_generate(model, input_ids: torch.LongTensor, logits_processor, stopping_criteria, generation_config,
                synced_gpus: bool = False, streamer=None, skip_set=None, swift=None, stop_strings=None,
                swift_tokenizer=None, **model_kwargs):
    """generate()'s decoding loop, run by SWIFT: pass it as `custom_generate=` (see the module docstring).

    Its own arguments, given to generate() beside the usual ones: `skip_set` (a SkipSet, a skip-set JSON
    path, `path#key` of a reference skip_layers.json, or a store key "<model>_<task>"; None: what the
    store knows about the model, else plain steps with lookup drafts: plan.default_skip_plan), `swift`
    (SwiftParams), and `stop_strings` with `swift_tokenizer=` (transformers 5.24 does not pass `tokenizer=`
    on to a custom_generate callable). Returns what generate() returns: the ids (prompt + new), or with
    return_dict_in_generate a GenerateDecoderOnlyOutput whose `.swift` is swiftlab's DecodeResult.
    Anything SWIFT cannot honour exactly is one SwiftlabError; the streamer gets end() also then."""
    streamer = streamer if streamer is not None else _generate_local("streamer")
    try:
        _check_supported(model, input_ids, generation_config, logits_processor, synced_gpus, model_kwargs)
        stopping_criteria = _with_stop_strings(stopping_criteria, stop_strings, swift_tokenizer)
        output = _decode(model, input_ids, logits_processor, stopping_criteria, generation_config, streamer,
                         resolve_skip_set(model, skip_set), swift)
    except BaseException:
        if streamer is not None:  # generate() already sent it the prompt: a reader must not wait forever
            try:
                streamer.end()
            except Exception:  # the run's own error is the one to report
                pass
        raise
    return output


def _generate_local(name: str):
    """A local variable of the generate() call that is running us. transformers 5.24 puts the prompt into
    the `streamer` and then replaces the mode arguments it hands a custom_generate callable by the
    callable's own, so the streamer (and an assistant_model) reach us only this way."""
    from transformers.generation.utils import GenerationMixin

    code = inspect.unwrap(GenerationMixin.generate).__code__
    frame = sys._getframe(1)
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    return None if frame is None else frame.f_locals.get(name)


def _check_supported(model, input_ids, config, processors, synced_gpus, model_kwargs) -> None:
    """One clear error for anything SWIFT cannot honour exactly, never a silent fall-back."""
    problem = _unsupported(model, input_ids, config, processors, synced_gpus, model_kwargs)
    if problem:
        raise SwiftlabError(f"swiftlab.hf_generate: {problem}")


def _unsupported(model, input_ids, config, processors, synced_gpus, model_kwargs) -> str | None:
    if getattr(model.config, "is_encoder_decoder", False):
        return "encoder-decoder models are not supported (decoder-only models only)"
    if (config.num_beams or 1) > 1:
        return f"beam search (num_beams={config.num_beams}) is not supported: SWIFT decodes one sequence"
    if (config.num_return_sequences or 1) > 1:
        return f"num_return_sequences={config.num_return_sequences} is not supported: one sequence per call"
    assisted = _generate_local("assistant_model") is not None
    if assisted or config.prompt_lookup_num_tokens or config.assistant_early_exit:
        return ("assisted generation (assistant_model, prompt_lookup_num_tokens, assistant_early_exit) is not "
                "supported: SWIFT drafts with the model itself (its lookup drafts: swift=SwiftParams(lookup=N))")
    if input_ids.ndim != 2 or input_ids.shape[0] != 1:
        return f"a batch of {input_ids.shape[0]} prompts is not supported: one prompt per call"
    if synced_gpus:
        return "synced_gpus is not supported"
    for flag in ("output_attentions", "output_hidden_states"):
        if getattr(config, flag, False) and config.return_dict_in_generate:
            return f"{flag}=True is not supported: verification passes hold several tokens, not one per step"
    mask = model_kwargs.get("attention_mask")
    if mask is not None and bool((mask == 0).any()):
        return "padding in attention_mask is not supported: give one unpadded prompt"
    cache = model_kwargs.get("cache")
    if cache is not None and cache.get_seq_length() > 0:
        return "a filled cache is not supported: SWIFT keeps its own cache, give the whole prompt"
    extra = sorted(k for k, v in model_kwargs.items() if k not in PREPARED_KWARGS and v is not None)
    if extra:
        return f"model input {', '.join(extra)} is not supported (input_ids, attention_mask only)"
    stateful = [type(p).__name__ for p in processors if type(p).__name__ in STATEFUL_PROCESSORS]
    if stateful:
        return (f"logits processor {stateful[0]} keeps state between calls and cannot be applied row by row "
                "(negative_prompt_ids / guidance_scale included)")
    return None


def _with_stop_strings(criteria, stop_strings, tokenizer):
    """generate()'s stopping criteria plus a StopStringCriteria, as generate() would have built it."""
    if stop_strings is None:
        return criteria
    if tokenizer is None:
        raise SwiftlabError("swiftlab.hf_generate: stop_strings need the tokenizer, and transformers does not pass "
                            "tokenizer= on to a custom_generate callable: give it as swift_tokenizer=tokenizer")
    from transformers import StoppingCriteriaList
    from transformers.generation.stopping_criteria import StopStringCriteria

    strings = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings)
    return StoppingCriteriaList(list(criteria) + [StopStringCriteria(tokenizer=tokenizer, stop_strings=strings)])


# --- the skip set


def resolve_skip_set(model, skip_set) -> SkipSet | None:
    """A SkipSet for this model from a SkipSet, a skip-set JSON path (`path#key` for one entry of a reference
    skip_layers.json) or a store key ("<model>_<task>"); None stays None. A set for another layer count is an error."""
    from .models.adapters import num_layers
    from .engine.skipping import check_skip_set

    if skip_set is None or isinstance(skip_set, SkipSet):
        if skip_set is not None:
            check_skip_set(model, skip_set)
        return skip_set
    if not isinstance(skip_set, (str, os.PathLike)):
        raise SwiftlabError("skip_set must be a SkipSet, a skip-set file or a store key, "
                            f"got {type(skip_set).__name__}")
    n = num_layers(model)
    path, _, key = str(skip_set).partition("#")
    if Path(path).is_file():
        return SkipSet.load(path, n, key or None)
    from .search.store import SkipSetStore

    store = SkipSetStore()
    name, _, task = str(skip_set).partition("_")  # store.model_key leaves no "_" in a model's part of a key
    found = store.get(name, task, n) if task else None
    if found is None:
        raise SwiftlabError(f"skip_set {str(skip_set)!r} is neither a skip-set file nor a key of the store "
                            f"{store.path} (keys look like <model>_<task>)")
    return found


def _runner(model, skip_set: SkipSet | None, swift):
    """(decode(prompt, max_new_tokens, sampling, seed, on_step, **hooks), then-what): the given set, or with none
    the plan swiftlab.generate takes (plan.default_skip_plan: a stored set or verdict from the default store,
    else plain steps with lookup drafts while a budgeted search judges a set), whose save() then stores what
    the run learned."""
    from .engine.decoding import SwiftParams, decode
    from .search.plan import default_skip_plan

    swift = swift or SwiftParams()
    if skip_set is not None:
        def given(prompt, max_new_tokens, sampling, seed, on_step, **hooks):
            return decode(model, prompt, method="swift", skip_set=skip_set, max_new_tokens=max_new_tokens,
                          sampling=sampling, swift=swift, seed=seed, on_step=on_step, **hooks)
        return given, lambda: None
    plan = default_skip_plan(model, swift=swift)
    return plan.decode, plan.save


# --- the loop


class _Rules:
    """generate()'s logits processors as DecodeSession's logits_transform (row by row, each row with its own
    prefix), keeping the raw and processed rows of the last call where scores or logits are to be returned."""

    def __init__(self, processors, keep: bool):
        self.processors, self.keep = processors, keep
        self.last = None

    def __call__(self, prefixes: list[list[int]], logits: torch.Tensor) -> torch.Tensor:
        raw = logits.float()  # generate() processes float32 logits
        if len(self.processors):
            rows = [self.processors(torch.tensor([prefix], device=raw.device), raw[i:i + 1].clone())[0]
                    for i, prefix in enumerate(prefixes)]
            processed = torch.stack(rows)
        else:
            processed = raw
        if self.keep:
            self.last = (raw, processed)
        return processed


class _Outputs:
    """The on_step hook: each pass's emitted tokens to the streamer, and their rows of scores and logits."""

    def __init__(self, rules: _Rules, streamer, want_scores: bool, want_logits: bool):
        from .engine.streaming import StreamTo

        self.rules, self.want_scores, self.want_logits = rules, want_scores, want_logits
        self.stream = StreamTo(streamer, []) if streamer is not None else None  # generate() sent the prompt
        self.scores: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []

    def __call__(self, event) -> None:
        if self.rules.keep and event.new_tokens:
            raw, processed = self.rules.last
            # token k of a pass was chosen from the row after its k-th accepted node (row 0: the pending token)
            rows = ([0] + [node + 1 for node in event.path])[:len(event.new_tokens)]
            self.scores += [processed[r:r + 1] for r in rows] if self.want_scores else []
            self.logits += [raw[r:r + 1] for r in rows] if self.want_logits else []
        if self.stream is not None:
            self.stream(event)


def _drafter_sampling(config):
    """The drafter's q: generate()'s temperature / top-k / top-p where it samples (what p is made of, so
    drafts are accepted often); greedy otherwise."""
    from .engine.sampling import SamplingParams

    if not config.do_sample:
        return SamplingParams()
    temperature = config.temperature if config.temperature is not None else 1.0  # generate() checked it is > 0
    return SamplingParams(temperature, config.top_k or 0, config.top_p if config.top_p is not None else 1.0)


def _beyond_the_engine(criteria, max_length: int, eos: list[int]):
    """The stopping criteria the engine does not already apply itself (its length limit and eos ids), so
    that a plain call checks nothing per token."""
    from transformers import StoppingCriteriaList
    from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria

    def own(criterion) -> bool:
        if type(criterion) is MaxLengthCriteria:
            return criterion.max_length == max_length
        return type(criterion) is EosTokenCriteria and set(criterion.eos_token_id.view(-1).tolist()) == set(eos)

    return StoppingCriteriaList([c for c in criteria if not own(c)])


def _decode(model, input_ids, processors, criteria, config, streamer, skip_set, swift):
    prompt = input_ids[0].tolist()
    want_scores = bool(config.return_dict_in_generate and config.output_scores)
    want_logits = bool(config.return_dict_in_generate and config.output_logits)
    rules = _Rules(processors, keep=want_scores or want_logits)
    outputs = _Outputs(rules, streamer, want_scores, want_logits)
    run, learned = _runner(model, skip_set, swift)
    eos = [] if config._eos_token_tensor is None else config._eos_token_tensor.view(-1).tolist()
    criteria = _beyond_the_engine(criteria, config.max_length, eos)
    result = run(prompt, config.max_length - len(prompt), _drafter_sampling(config),
                 int(torch.randint(0, 2 ** 62, (1,))) if config.do_sample else None,  # torch.manual_seed repeats a run
                 outputs, logits_transform=rules if (len(processors) or rules.keep) else None,
                 stop_check=(lambda ids: bool(criteria(torch.tensor([ids], device=input_ids.device), None).any()))
                 if criteria else None, eos=eos)
    learned()  # what a run without a given set learned goes to the store (a warning, never an error, if it cannot)
    if outputs.stream is not None:
        outputs.stream.finish()
    return _returned(result, outputs, config, input_ids.device)


def _returned(result, outputs: _Outputs, config, device):
    """What generate() returns: the ids, or its output record with swiftlab's DecodeResult as `.swift`."""
    sequences = torch.tensor([result.prompt_ids + result.token_ids], dtype=torch.long, device=device)
    if not config.return_dict_in_generate:
        return sequences
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    output = GenerateDecoderOnlyOutput(sequences=sequences,
                                       scores=tuple(outputs.scores) if outputs.want_scores else None,
                                       logits=tuple(outputs.logits) if outputs.want_logits else None)
    output.swift = result
    return output


# --- a folder transformers runs as remote code


GENERATE_PY = '''"""SWIFT self-speculative decoding (swiftlab) for
`model.generate(**inputs, custom_generate=<this folder or its Hub id>, trust_remote_code=True)`.

The skip set below: {source}. Needs swiftlab installed (requirements.txt).
"""

import swiftlab.hf

FOLDER = {folder!r}
SKIP_SET = {skip_set!r}  # swiftlab's SkipSet JSON (the same as ../skip_set.json)


def generate(model, **kwargs):
    return swiftlab.hf.folder_generate(model, SKIP_SET, FOLDER, **kwargs)
'''

README = """# SWIFT for `{model}` ({task})

Self-speculative decoding by layer skipping ([SWIFT](https://arxiv.org/abs/2410.06916)) through
swiftlab: the model drafts with some of its own sub-layers switched
off and verifies with all of them, so the output is the model's own (greedy: token-identical to
`model.generate`; sampling: the same distribution).

Skip set ({source}): attention {attention}, MLP {mlp} of {num_layers} layers (`skip_set.json`, the same
set as in `custom_generate/generate.py`, which carries it because transformers copies only the Python file).
A model with another layer count gives a clear error.

```python
model.generate(**inputs, custom_generate="path/to/this/folder", trust_remote_code=True, max_new_tokens=128)
```

Needs swiftlab installed where it runs (`custom_generate/requirements.txt`). One prompt at a time; greedy and
sampling, logits processors, stopping criteria, eos ids, stop strings (`tokenizer=`) and streamers work
as in `generate()`; beam search, batches and assistant models give a clear error.

## Put it on the Hub

```bash
huggingface-cli upload YOUR_NAME/REPO path/to/this/folder .
```

or from Python: `huggingface_hub.HfApi().upload_folder(folder_path="path/to/this/folder", repo_id="YOUR_NAME/REPO")`;
then `custom_generate="YOUR_NAME/REPO"`.
"""


def folder_generate(model, skip_set: dict | None, folder: str, **generate_arguments):
    """What an exported folder's generate.py runs: generate() with hf_generate and the folder's skip set.
    `generate_arguments` are all of generate()'s (transformers hands a folder's generate() every one)."""
    if not skip_set:
        raise SwiftlabError(f"the custom_generate folder {folder} has no skip set: export it again with "
                            "`swiftlab export-hf DIR --model M --task T`")
    # a callable is not handed generate()'s tokenizer (transformers 5.24): hf_generate takes it as swift_tokenizer
    generate_arguments["swift_tokenizer"] = generate_arguments.pop("tokenizer", None)
    generate_arguments = {k: v for k, v in generate_arguments.items() if v is not None}
    return model.generate(custom_generate=hf_generate, skip_set=SkipSet.from_dict(skip_set), **generate_arguments)


def export_folder(folder: str | os.PathLike, skip_set: SkipSet, *, model: str, task: str, source: str) -> Path:
    """Write `folder` (which must not exist yet) whole or not at all: custom_generate/generate.py and
    requirements.txt, skip_set.json and README.md."""
    folder = Path(folder)
    if folder.exists():
        raise SwiftlabError(f"{folder} already exists: give a new folder")
    from .support.storage import make_folder, write_failure

    make_folder(folder.parent)  # `export-hf runs/x` makes runs/ as a file writer would
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as e:
        raise write_failure(e, folder, "folder") from None
    try:
        (tmp / "custom_generate").mkdir()
        d = skip_set.to_dict()
        (tmp / "custom_generate" / "generate.py").write_text(
            GENERATE_PY.format(source=source, folder=folder.name, skip_set=d), encoding="utf-8")
        (tmp / "custom_generate" / "requirements.txt").write_text("swiftlab\n", encoding="utf-8")
        (tmp / "skip_set.json").write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(README.format(model=model, task=task, source=source, attention=d["attention"],
                                                     mlp=d["mlp"], num_layers=d["num_layers"]), encoding="utf-8")
        tmp.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would hide the folder from other users
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
