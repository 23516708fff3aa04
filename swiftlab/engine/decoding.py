"""The decoding engine: SWIFT self-speculative decoding and autoregressive decoding, one step at a time.

A run holds one SkipAwareCache with n positions and the pending token `cur` (the last token emitted,
not yet in the cache). After the prompt pass, every step is the same five phases:
  choose  policy.py picks a drafter (drafters.py): skip drafts by the model with its skip set switched
          off (lean, or through transformers; where the context repeats, its first token decides whether
          the lookup continuation is verified instead), a lookup continuation (lookup.py), or a plain step,
          which drafts nothing: autoregressive decoding is the run whose policy only takes plain steps;
  draft   the drafter returns a DraftTree (tree.py): a top-1 chain d1..dk and, with tree verification,
          runner-up siblings per depth, more where the drafter was unsure;
  verify  the drafter's KV entries are dropped, and the full model reads [cur, nodes...] in one pass,
          node i at position n + its depth, under a tree attention mask where there are siblings (its
          linear layers take their few-token products the way measured faster here: smallbatch.py);
  accept  greedy: the longest path whose tokens are the full model's argmax, plus the full model's own
          next token; sampling: recursive rejection sampling (accept x with probability min(1, p/q),
          else sample the residual max(p - q, 0)), which leaves the output distribution exactly the
          full model's;
  keep    the cache keeps cur and the accepted path (cache.keep); the last token emitted is the next cur.
The step returns what happened; `_record` turns it into a StepEvent, and the run's DecodeResult is made
from the events alone. A running skip-set search takes one step after each verification (`_optimize`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .cache import SkipAwareCache
from .compiled import compile_passes, compiled_forward
from ..models.adapters import eos_ids, input_device, last_logits_only
from .drafters import GatedLookup, LookupDrafter, PlainStep, skip_drafter
from ..support.errors import SwiftlabError
from .leandraft import check_draft_dtype
from .lookup import NGRAM_SIZES
from .matchness import matchness_scores
from .policy import Pace, StepPolicy
from .records import DecodeResult
from .sampling import SamplingParams, choose, probabilities, sample
from .skipping import check_skip_set
from .skipset import SkipSet
from .smallbatch import linear_layers, small_batch_products
from ..support import validate
from .tree import SAMPLING_SIBLINGS, DraftTree, accept_greedy, accept_sampled, tree_mask, tree_positions

__all__ = ["DecodeSession", "Pace", "StepEvent", "StepPolicy", "SwiftParams", "context_limit", "decode", "eos_ids",
           "prepare_prompt", "reference_continuation", "tree_supported"]


@dataclass(frozen=True)
class SwiftParams:
    """SWIFT's settings for a decoding run, checked on creation (a SwiftlabError for a bad value): where a
    draft stops (`epsilon`, `max_draft`), how it is verified (`verify`, `max_tree`, the per-depth candidate tables),
    how the skip drafter runs (`lean_draft`, `draft_dtype`), lookup drafts (`lookup`, `lookup_ngrams`), the
    plain-step `fallback`, and whether passes are compiled (`compile`: full-model passes, and lean drafts on a CPU)."""
    epsilon: float = 0.8  # stop drafting when the drafter's top-1 probability falls below this
    max_draft: int = 25  # draft-length cap (the reference's)
    verify: str = "tree"  # "tree": top-1 chain plus runner-up siblings per depth; "chain": top-1 only
    max_tree: int = 64  # cap on tree nodes per step
    # (top-1 probability above, candidates kept) per depth; None: GREEDY_SIBLINGS, or CPU_GREEDY_SIBLINGS on a CPU
    greedy_candidates: tuple | None = None
    sampling_candidates: tuple = SAMPLING_SIBLINGS
    lean_draft: bool = True  # draft through leandraft.py where the family allows (same drafter, less overhead)
    # precision of the lean drafter's matrices: "auto" (a float16 copy of a small float32 model), "model",
    # "float16" or "bfloat16" (leandraft.draft_dtype); drafts only, verification is always the model's own
    draft_dtype: str = "auto"
    lookup: int = 0  # > 0: where the last tokens occurred before, draft up to this many of what followed (lookup.py)
    lookup_ngrams: tuple = NGRAM_SIZES  # n-gram sizes matched, longest first
    fallback: bool = True  # take plain autoregressive steps while drafting is measured slower than them
    compile: bool = False  # full-model passes after the prompt through torch.compile (compiled.py; AR too), lean drafts too

    def __post_init__(self):
        if self.verify not in ("tree", "chain"):
            raise SwiftlabError(f"unknown verification {self.verify!r}: choose tree or chain")
        checked = {"max_tree": validate.integer("max_tree", self.max_tree, 1),
                   "epsilon": validate.number("epsilon", self.epsilon, 0.0, 1.0),
                   "max_draft": validate.integer("max_draft", self.max_draft, 1),
                   "lookup": validate.integer("lookup", self.lookup, 0)}
        for name, value in checked.items():  # numpy integers become ints
            object.__setattr__(self, name, value)
        check_draft_dtype(self.draft_dtype)


def context_limit(model: nn.Module) -> int | None:
    """The model's context length in tokens: the first positive `max_position_embeddings`, `n_positions`
    or `seq_length` of its config; None where it names none (then no prompt is too long)."""
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


_TREE_NOTICE_SHOWN: set[str] = set()


def tree_supported(model: nn.Module) -> bool:
    """Tree verification needs one attention mask for every layer; sliding-window layers would
    need their own windowed tree mask, so those models verify chains (and say so, once)."""
    sliding = any(SkipAwareCache(model.config, rollback=False).is_sliding)
    if sliding:
        name = type(model).__name__
        if name not in _TREE_NOTICE_SHOWN:
            _TREE_NOTICE_SHOWN.add(name)
            warnings.warn(f"{name} has sliding-window attention layers: SWIFT verifies draft chains instead of "
                          "token trees on it (same output, fewer tokens per pass)", stacklevel=3)
        return False
    return True


def prepare_prompt(model: nn.Module, input_ids, max_new_tokens: int) -> torch.Tensor:
    """A [1, n] LongTensor on the model's device, or a clear error."""
    ids = torch.tensor(validate.token_ids(input_ids), dtype=torch.long)  # one sequence of integers, batch of 1 ok
    max_new_tokens = validate.integer("max_new_tokens", max_new_tokens)
    if ids.numel() == 0:
        raise SwiftlabError("empty prompt: give at least one token (the tokenizer added no BOS token)")
    vocab = model.get_input_embeddings().num_embeddings
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise SwiftlabError(f"token id {int(ids.max()) if int(ids.max()) >= vocab else int(ids.min())} "
                            f"is outside the model's vocabulary of {vocab}")
    if max_new_tokens < 1:
        raise SwiftlabError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    limit = context_limit(model)
    if limit is not None and ids.numel() + max_new_tokens > limit:
        raise SwiftlabError(
            f"prompt too long: {ids.numel()} prompt tokens + {max_new_tokens} new tokens exceed the "
            f"model's context of {limit} tokens")
    return ids.unsqueeze(0).to(input_device(model))


def decode(model: nn.Module, input_ids, *, method: str = "swift", skip_set: SkipSet | None = None,
           max_new_tokens: int = 128, sampling: SamplingParams = SamplingParams(),
           swift: SwiftParams = SwiftParams(), seed: int | None = None, search=None,
           pace: StepPolicy | None = None, stop_ids=None, selector=None,
           on_step: Callable | None = None, logits_transform: Callable | None = None,
           stop_check: Callable | None = None, eos=None) -> DecodeResult:
    """Decode one prompt with autoregressive ("ar") or SWIFT ("swift") decoding; return the record.

    With a `search` (a SkipSearch that is still running), SWIFT's optimization phase runs too: after
    every verification, once a window of generated tokens exists, one search step scores its
    candidates by matchness on those tokens, and drafting continues with the best set so far.
    The output does not depend on it: verification keeps it the full model's.

    The model is left exactly as it was found: training flag restored, no skip overrides.
    A `pace` (policy.StepPolicy, also called Pace) carries the measured cost of each kind of step from
    run to run (a stream passes one), so a new prompt starts with what earlier ones measured.
    Decoding stops after an end-of-text token of the model's generation config (swiftlab's loader adds a
    chat model's end-of-turn tokens there) or any of `stop_ids`.
    A `selector` (layerselect.LayerSelector) chooses the skip set after verifications instead of a search.
    `on_step(event)` is called after every full-model pass with its StepEvent (`event.new_tokens`: the tokens
    that pass emitted), while the model is as it was found: streaming hangs here. `logits_transform`,
    `stop_check` and `eos` are DecodeSession's hooks for a caller's own decoding rules (hf.py).
    """
    session = DecodeSession(model, input_ids, method=method, skip_set=skip_set, max_new_tokens=max_new_tokens,
                            sampling=sampling, swift=swift, seed=seed, search=search, pace=pace, stop_ids=stop_ids,
                            selector=selector, on_step=on_step, logits_transform=logits_transform,
                            stop_check=stop_check, eos=eos)
    while not session.done:
        session.step()
    return session.result()


@torch.inference_mode()
def reference_continuation(model: nn.Module, prompt_ids: list[int], new_tokens: int):
    """The full model's greedy continuation of a prompt, and a cache holding all but its last
    token: the state a decoding run is in, ready for matchness over the generated tokens."""
    result = decode(model, prompt_ids, method="ar", max_new_tokens=new_tokens)
    tokens = result.prompt_ids + result.token_ids
    device = input_device(model)
    cache = SkipAwareCache(model.config, rollback=False)
    model(input_ids=torch.tensor([tokens[:-1]], device=device),
          position_ids=torch.arange(len(tokens) - 1, device=device).unsqueeze(0), cache=cache, use_cache=True,
          **last_logits_only(model))
    return tokens, cache


def _checked(model: nn.Module, method: str, sampling, swift, skip_set, search, selector=None) -> SkipSet | None:
    """The skip set to start from, or a clear error about the arguments."""
    if method not in ("ar", "swift"):
        raise SwiftlabError(f"unknown method {method!r}: choose 'ar' or 'swift'")
    _check_types(sampling=(sampling, SamplingParams), swift=(swift, SwiftParams),
                 skip_set=(skip_set, (SkipSet, type(None))))
    if search is not None:
        if method != "swift":
            raise SwiftlabError("a skip-set search runs with SWIFT decoding only")
        skip_set = search.best if skip_set is None else skip_set
    if selector is not None:
        if method != "swift" or search is not None:
            raise SwiftlabError("a layer selector runs with SWIFT decoding, without a search")
        skip_set = selector.first_set() if skip_set is None else skip_set
    if method == "swift":
        if skip_set is None:
            raise SwiftlabError("SWIFT decoding needs a skip set (e.g. SkipSet.uniform(L, 0.45))")
        check_skip_set(model, skip_set)
    return skip_set


def _check_types(**given) -> None:
    for name, (value, kind) in given.items():
        if not isinstance(value, kind):
            wanted = kind.__name__ if isinstance(kind, type) else kind[0].__name__
            raise SwiftlabError(f"{name} must be a {wanted}, got {type(value).__name__}")


@dataclass
class StepEvent:
    """What one full-model pass did (index 0 is the prefill, which yields the first token)."""
    index: int
    drafted: list[int]  # the drafter's top-1 chain this step
    siblings: list[list[int]]  # runner-up candidates per depth (tree verification)
    accepted: int  # drafted tokens the full model accepted (a sibling counts)
    new_tokens: list[int]  # emitted: the accepted tokens, then the full model's own next token (none after an
    # end-of-text token)
    skip_set: SkipSet | None  # the set the drafter used
    kind: str = ""  # prefill, skip (drafted by the skipping model), lookup, or ar (a plain step)
    reason: str = ""  # why this kind of pass, and why drafting stopped where it did
    path: list[int] = field(default_factory=list)  # accepted node indices (chain first, then siblings)
    position: int = 0  # cache positions before the pass; the pending token sits here
    seconds: float = 0.0  # wall time of the pass, drafting included
    tree_size: int = 0  # nodes verified besides the pending token
    timings: dict = field(default_factory=dict)  # seconds of this pass per phase: prefill, draft, verify, optimize


class DecodeSession:
    """One decoding run, advanced one full-model pass at a time: `decode` runs it to the end, the
    lab's token stepper shows it step by step. It holds the run's state (cache, tokens, events); the
    events are its only record. Between steps the model is exactly as it was found.

    `observer(stage, run=session, **info)` is called at each phase of a step after the prompt pass
    (stages "start", "drafted", "verified", "kept"; info: tree, position, logits, path): the lab's
    views of one step. It never changes a token. `on_step(event)` is called after each whole step (the
    model restored, the event recorded): what a streamer needs.

    Hooks for callers that bring their own decoding rules (hf.py: transformers' logits processors and
    stopping criteria); None costs nothing. `logits_transform(prefixes, logits)` maps the full model's
    logits [rows, vocab] of the prompt pass and of every verify pass to the target's, row i read after
    the tokens `prefixes[i]` (a tree node's prefix is its path): greedy takes their argmax, sampling
    softmax(them) as p, unchanged (the warpers are the transform's), while `sampling` still shapes the
    drafter's q, so rejection sampling stays lossless. `stop_check(ids)` is asked after every emitted
    token with prompt and tokens so far; True ends the run there (the rest of the pass is dropped).
    `eos`: the ids that end the run instead of the model's end-of-text tokens."""

    def __init__(self, model: nn.Module, input_ids, *, method: str = "swift", skip_set: SkipSet | None = None,
                 max_new_tokens: int = 128, sampling: SamplingParams = SamplingParams(),
                 swift: SwiftParams = SwiftParams(), seed: int | None = None, search=None,
                 pace: StepPolicy | None = None, observer: Callable | None = None, stop_ids=None, selector=None,
                 on_step: Callable | None = None, logits_transform: Callable | None = None,
                 stop_check: Callable | None = None, eos=None):
        skip_set = _checked(model, method, sampling, swift, skip_set, search, selector)
        self.selector = selector  # layerselect.LayerSelector: re-chooses the skip set after passes
        seed = validate.optional_integer("seed", seed)
        self.prompt = prepare_prompt(model, input_ids, max_new_tokens)
        self.generator = None
        if not sampling.greedy:
            self.generator = torch.Generator(device=self.prompt.device)
            self.generator.manual_seed(seed if seed is not None else torch.seed())
        self.model, self.method, self.skip_set, self.swift, self.search = model, method, skip_set, swift, search
        self.max_new_tokens, self.sampling, self.observer, self.on_step = max_new_tokens, sampling, observer, on_step
        self.eos = (eos_ids(model) if eos is None else {int(t) for t in eos}) | {int(t) for t in stop_ids or ()}
        self.logits_transform, self.stop_check = logits_transform, stop_check
        # plain steps never roll back; the run's longest context is the capacity its layers start with (a last
        # tree verification past it moves them to a little more room)
        self.cache = SkipAwareCache(model.config, rollback=method == "swift",
                                    capacity=self.prompt.shape[1] + max_new_tokens)
        self.tree = method == "swift" and swift.verify == "tree" and tree_supported(model)  # else chains
        self.device = self.prompt.device
        self._sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        # a custom 4D mask is used as given: boolean for SDPA, additive for eager attention
        eager = getattr(model.config, "_attn_implementation", "sdpa") == "eager"
        self.additive_mask_dtype = model.get_input_embeddings().weight.dtype if eager else None
        self.prompt_ids = self.prompt[0].tolist()
        self.tokens: list[int] = []
        self.events: list[StepEvent] = []
        self.stop_reason = ""
        self.done = False
        self.broken: str | None = None  # what stopped a step half-way, if anything did: the run cannot go on
        self._cur = None  # the pending token
        self._start = self._end = None
        if method == "swift":
            self.policy = pace if pace is not None else Pace()
        else:
            self.policy = StepPolicy.plain_only("autoregressive decoding: one token per full-model pass")
        self.drafters = self._drafters()
        # verify and scoring passes take few tokens: their linear layers run the faster way (smallbatch.py);
        # one-token passes (plain steps, all of autoregressive decoding) and the prompt pass run as
        # transformers runs them
        self.linears = linear_layers(model) if method == "swift" else []
        self.compiled = None  # with swift.compile: verify and plain passes run compiled (compiled.py), drafts too
        if swift.compile:
            swifting = method == "swift"  # autoregressive decoding takes one-token passes alone
            compile_passes(model, tree=self.tree and swifting, verify=swifting,
                           draft=swift.draft_dtype if swifting and swift.lean_draft else None)
            self.compiled = compiled_forward(model)

    def _drafters(self) -> dict:
        drafters = {"plain": PlainStep()}
        if self.method == "swift":
            drafters["skip"] = skip_drafter(self, self.skip_set, self.swift)
            if self.swift.lookup:
                drafters["lookup"] = LookupDrafter(self, self.swift, long=self._long_offers(),
                                                   pure=self.policy.pure_lookup is not None)
                drafters["gated"] = GatedLookup(drafters["skip"], drafters["lookup"])
                drafters["ungated"] = drafters["lookup"]  # the same continuation, measured as drafting (policy.py)
        return drafters

    def _long_offers(self) -> bool:
        """Whether a lookup offer restarts at LookupDrafter.LONG tokens after a miss (StepPolicy.long_offers)."""
        return self.policy.long_offers(self.sampling.greedy, LookupDrafter.SHORT, LookupDrafter.LONG)

    # --- the run's state, as drafters and observers see it

    def forward(self, ids: list[int] | torch.Tensor, start: int, positions: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, last_only: bool = False, full: bool = False) -> torch.Tensor:
        """Logits [len(ids), vocab] for ids at positions start, start+1, ... (or the given positions,
        with the given 4D attention mask, for a token tree); with `last_only`, [1, vocab] of the last.
        `full`: a full-model pass, which runs compiled where the run compiles (never under a skip set)."""
        ids = torch.as_tensor(ids, device=self.device).view(1, -1)
        if positions is None:
            positions = torch.arange(start, start + ids.shape[1], device=self.device).unsqueeze(0)
        model = self.model
        if full and self.compiled is not None:
            model = self.compiled
            self.cache.reserve(start + ids.shape[1])  # a pass that moved the cache would be another graph
        out = model(input_ids=ids, position_ids=positions, attention_mask=mask, cache=self.cache, use_cache=True,
                    **(last_logits_only(self.model) if last_only else {}))
        return out.logits[0]

    def context(self) -> list[int]:
        """Prompt and generated tokens so far (the last one is the pending token)."""
        return self.prompt_ids + self.tokens

    def clock(self) -> float:
        """Seconds on `time.perf_counter`, read after the GPU's queued work has finished (on a CUDA
        device), so that a phase's time includes its kernels."""
        self._sync()
        return time.perf_counter()

    @property
    def remaining(self) -> int:
        return self.max_new_tokens - len(self.tokens)

    # --- one step

    def step(self) -> StepEvent:
        """Take the next full-model pass (the prompt pass first, then draft, verify, accept) and return
        its StepEvent, after `on_step` has seen it. Raises SwiftlabError once the run is `done`, or after a step that
        was interrupted half-way (`broken`: the cache no longer matches the tokens)."""
        if self.done:
            raise SwiftlabError("this decoding run has finished")
        if self.broken:
            raise SwiftlabError(f"this decoding run was stopped in the middle of a step ({self.broken}): its cache no "
                                "longer matches its tokens, so it cannot go on; start a new run (the model is as it was)")
        was_training = self.model.training
        if was_training:  # only then: train()/eval() walk every module, a large share of a small model's step
            self.model.eval()
        if self._start is None:
            self._start = self.clock()
        t0 = self.clock()
        try:
            with torch.inference_mode():
                event = self._prefill() if self._cur is None else self._step()
                if not self.done and self.selector is not None:
                    event.timings["optimize"] = event.timings.get("optimize", 0.0) + self._select_step(event)
        except BaseException as e:  # Ctrl-C or an error half-way: the cache may hold a draft, the tokens not
            self.broken = type(e).__name__
            raise
        finally:
            if was_training:
                self.model.train()
            self._end = self.clock()
        event.seconds = self._end - t0
        self.events.append(event)
        if self.on_step is not None:
            self.on_step(event)
        return event

    def _prefill(self) -> StepEvent:
        t0 = self.clock()
        logits = self.forward(self.prompt[0], 0, last_only=True)[-1:]
        if self.logits_transform is None:
            token = choose(logits[-1], self.sampling, self.generator)
        else:
            token = self._choose_target(self.logits_transform([self.prompt_ids], logits)[-1])
        seconds = self.clock() - t0
        return StepEvent(0, [], [], 0, self._emit([token]), None, kind="prefill",
                         reason="the prompt pass: the full model reads the prompt and picks the first token "
                                "(nothing to draft yet)", timings={"prefill": seconds})

    def _step(self) -> StepEvent:
        n, lookup = self.prompt.shape[1] + len(self.tokens) - 1, self.drafters.get("lookup")  # cur goes at n
        choice = self.policy.choose(lookup=lookup is not None and lookup.offer(self), greedy=self.sampling.greedy,
                                    fallback=self.swift.fallback, copying=lookup is not None and lookup.copying)
        tree, new, path, seconds = self._speculate(self.drafters[choice.drafter], self._cur, n)
        self.policy.took(choice.drafter, sum(seconds.values()), len(new))
        if lookup is not None:  # only lookup offers read verify costs per width: plain runs do not time them
            self.policy.verify_took(tree.size + 1, seconds["verify"])  # the pending token and the tree
            lookup.verified(tree, path, long=self._long_offers())
        event = self._record(tree, new, path, n, choice.why, seconds)
        if not self.done and self.search is not None and not self.search.done:
            event.timings["optimize"] = self._search_step()
        return event

    def _speculate(self, drafter, cur: int, n: int):
        """Draft, verify, accept, keep the cache: (tree, new tokens, accepted node path, seconds per phase)."""
        start = self._stage("start", position=n)
        tree = drafter.draft(self, cur, n, min(self.swift.max_draft, self.remaining - 1))
        drafted = self._stage("drafted", tree=tree, position=n)
        rollback = tree.source != "ar"  # a plain step drafted nothing, so there is nothing to roll back
        if rollback:
            self.cache.crop_to(n)  # drop the drafter's KV entries: the full model recomputes these positions
        logits = self._verify(cur, tree, n)
        if self.logits_transform is not None:
            logits = self.logits_transform(_row_prefixes(self.context(), tree), logits)
        self._stage("verified", tree=tree, position=n, logits=logits)
        if self.sampling.greedy:
            new, path = accept_greedy(tree, logits)
        else:
            p = (probabilities(logits, self.sampling) if self.logits_transform is None
                 else torch.softmax(logits.float(), -1))  # a transform's logits are the target as they are
            new, path = accept_sampled(tree, p, self.generator)
        if rollback:  # keep cur and the accepted path (a chain prefix, maybe one sibling)
            self.cache.keep(n + 1, path, len(tree.chain))
        kept = self._stage("kept", tree=tree, position=n, path=path)
        seconds = {"draft": drafted - start, "verify": kept - drafted} if rollback else {"verify": kept - start}
        return tree, new, path, seconds

    def _verify(self, cur: int, tree: DraftTree, n: int) -> torch.Tensor:
        """The full model's logits for the pending token and every node, in one pass."""
        # a compiled pass chooses its own products
        with small_batch_products(self.model, self.linears if tree.size and self.compiled is None else []):
            if tree.size > len(tree.chain):  # siblings: the whole tree under a tree mask
                return self.forward([cur] + tree.tokens(), n, positions=tree_positions(tree, n, self.device),
                                    mask=tree_mask(tree, n, additive_dtype=self.additive_mask_dtype, device=self.device),
                                    full=True)
            return self.forward([cur] + tree.chain, n, full=True)

    def _choose_target(self, logits: torch.Tensor) -> int:
        """One token from one row of a logits_transform's logits: they are the target as they are."""
        if self.sampling.greedy:
            return int(logits.argmax())
        return sample(torch.softmax(logits.float(), -1), self.generator)

    def _stage(self, stage: str, **info) -> float:
        """The clock at one phase boundary of a step, after the observer has seen it."""
        if self.observer is not None:
            self.observer(stage, run=self, **info)
        return self.clock()

    # --- the record

    def _emit(self, new: list[int]) -> list[int]:
        """Append a pass's tokens, up to end-of-text, the length limit or a stop_check; the ones appended."""
        before = len(self.tokens)
        for token in new:
            self.tokens.append(token)
            if token in self.eos:
                self.stop_reason = "eos"
                break
            if len(self.tokens) >= self.max_new_tokens:
                self.stop_reason = "max_new_tokens"
                break
            if self.stop_check is not None and self.stop_check(self.context()):
                self.stop_reason = "stop_check"
                break
        self._cur, self.done = new[-1], bool(self.stop_reason)
        return self.tokens[before:]

    def _record(self, tree: DraftTree, new: list[int], path: list[int], n: int, why: str,
                seconds: dict) -> StepEvent:
        return StepEvent(len(self.events), list(tree.chain), [list(s) for s in tree.siblings], len(path),
                         self._emit(new), self.skip_set if tree.source == "skip" else None, kind=tree.source,
                         reason=why + (f"; {tree.stop}" if tree.stop else ""), path=list(path), position=n,
                         tree_size=tree.size, timings=seconds)

    def _search_step(self) -> float:
        """One step of the running search; drafting continues with its best set. Its seconds."""
        t0 = self.clock()
        better = _optimize(self, self.search)
        if better is not None and better != self.skip_set:
            self.policy.forget("skip")  # a new drafter: what the old one cost says nothing about it
            self.skip_set = better
            self.drafters["skip"].use(better)
        return self.clock() - t0

    def _select_step(self, event: StepEvent) -> float:
        """Per-step layer selection after a pass (layerselect.py); drafting continues with its choice. Its seconds."""
        t0 = self.clock()
        chosen = self.selector.after_step(self.cache, self.context(), event.kind, len(event.drafted), event.accepted)
        if chosen is not None and chosen != self.skip_set:
            self.skip_set = chosen
            self.drafters["skip"].use(chosen)
        return self.clock() - t0

    def result(self) -> DecodeResult:
        """The run's DecodeResult, made from its events: tokens, per-pass counts and seconds per phase
        ("other": wall time no phase accounts for). It can be asked at any point; `decode` asks once `done`."""
        wall = (self._end - self._start) if self._start is not None else 0.0
        timings = dict.fromkeys(("prefill", "draft", "verify", "optimize"), 0.0)
        for event in self.events:
            for phase, seconds in event.timings.items():
                timings[phase] += seconds
        timings["other"] = max(wall - sum(timings.values()), 0.0)
        swift = self.method == "swift"
        return DecodeResult(
            method=self.method, prompt_ids=list(self.prompt_ids), token_ids=list(self.tokens),
            skip_set=self.skip_set.to_dict() if swift else None,
            drafted_per_step=[len(e.drafted) for e in self.events], accepted_per_step=[e.accepted for e in self.events],
            wall_s=wall, tree_size_per_step=[e.tree_size for e in self.events] if swift else [],
            verify=("tree" if self.tree else "chain") if swift else "", step_kinds=[e.kind for e in self.events],
            timings_s=timings, stop_reason=self.stop_reason)


def _row_prefixes(context: list[int], tree: DraftTree) -> list[list[int]]:
    """The tokens before each verify row: the context (ending with the pending token), then each node's path."""
    tokens, prefixes = tree.tokens(), [context]
    for i, (parent, _) in enumerate(tree.nodes()):  # a node's parent comes before it
        prefixes.append(prefixes[parent + 1] + [tokens[i]])
    return prefixes


def _optimize(run: DecodeSession, search) -> SkipSet | None:
    """One search step on the tokens generated so far; the best set to draft with next."""
    probe = getattr(search, "probe", None)  # a BudgetedSearch's stream reads the running decode first
    if probe is not None:
        probe(run)
    window = search.config.window
    if len(run.tokens) < window + 1:  # matchness needs `window` generated tokens and their successors
        return None
    tokens = run.context()
    confidence = getattr(search, "min_confidence", None)  # a stream's confident matchness, where it asks for it
    with small_batch_products(run.model, run.linears):  # a scoring pass reads a window of a few tokens
        search.step(lambda sets: matchness_scores(run.model, run.cache, tokens, window, sets, confidence))
    return search.best
