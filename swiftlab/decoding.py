"""The decoding engine: autoregressive decoding and SWIFT self-speculative chain decoding.

Both run on the same machinery (one SkipAwareCache, explicit position ids, the same token
choice), so the only difference between them is the draft/verify step. Every caller (the CLI,
the benchmark, later the optimizer, probes and widgets) goes through `decode`.

One SWIFT step, with `cur` the last emitted token (not yet in the cache, which holds n positions):
  draft   feed cur, then each drafted token, through the model with the skip set switched off,
          until the drafter's top-1 probability drops below epsilon or the length cap is hit;
  verify  cut every cache layer back to n, then feed [cur, d1..dk] through the full model once;
  accept  greedy: the longest prefix of drafts equal to the full model's argmax, plus one bonus
          token from the full model; sampling: speculative rejection sampling (accept d_i with
          probability min(1, p/q), else sample the residual max(p - q, 0)), which leaves the
          output distribution exactly the full model's;
  rollback keep cache entries for cur and the accepted drafts only.
"""

from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .cache import SkipAwareCache
from .errors import SwiftlabError
from .leandraft import LeanDrafter, check_draft_dtype, lean_drafter
from .lookup import NGRAM_SIZES, lookup_continuation
from .records import DecodeResult
from .sampling import SamplingParams, choose, probabilities, sample
from .skipping import check_skip_set, skipping
from .skipset import SkipSet
from . import validate
from .tree import (CPU_GREEDY_SIBLINGS, GREEDY_SIBLINGS, SAMPLING_SIBLINGS, DraftTree, accept_greedy, accept_sampled,
                   candidates_for, tree_mask, tree_positions)


@dataclass(frozen=True)
class SwiftParams:
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
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def eos_ids(model: nn.Module) -> set[int]:
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    if eos is None:
        eos = getattr(model.config, "eos_token_id", None)
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


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
    return ids.unsqueeze(0).to(model.get_input_embeddings().weight.device)


@dataclass
class _Run:
    """State of one decoding run: the cache, what has been emitted, and the clock."""

    model: nn.Module
    prompt: torch.Tensor
    max_new_tokens: int
    sampling: SamplingParams
    eos: set[int]
    generator: torch.Generator | None
    rollback: bool = True  # SWIFT rolls the cache back; autoregressive decoding never does
    tree: bool = False  # verify token trees (else chains)
    cache: SkipAwareCache = None
    tokens: list[int] = field(default_factory=list)
    drafted: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    timings: dict = field(default_factory=lambda: {"prefill": 0.0, "draft": 0.0, "verify": 0.0, "optimize": 0.0,
                                                   "other": 0.0})
    tree_sizes: list[int] = field(default_factory=list)
    step_kinds: list[str] = field(default_factory=list)  # per pass: prefill, skip, lookup or ar
    stop_reason: str = ""
    # observer(stage, **info), called inside a draft/verify cycle (stages "start", "drafted", "verified",
    # "kept"; info: run, tree, position, logits, path); for the lab's views of one step, never changes a token
    observer: Callable | None = None

    def __post_init__(self):
        self.cache = SkipAwareCache(self.model.config, rollback=self.rollback)
        self.device = self.prompt.device
        self._sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        # a custom 4D mask is used as given: boolean for SDPA, additive for eager attention
        eager = getattr(self.model.config, "_attn_implementation", "sdpa") == "eager"
        self.additive_mask_dtype = self.model.get_input_embeddings().weight.dtype if eager else None
        self._prompt_list = self.prompt[0].tolist()

    def forward(self, ids: list[int] | torch.Tensor, start: int, positions: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [len(ids), vocab] for ids at positions start, start+1, ... (or the given positions,
        with the given 4D attention mask, for a token tree)."""
        ids = torch.as_tensor(ids, device=self.device).view(1, -1)
        if positions is None:
            positions = torch.arange(start, start + ids.shape[1], device=self.device).unsqueeze(0)
        out = self.model(input_ids=ids, position_ids=positions, attention_mask=mask, cache=self.cache, use_cache=True)
        return out.logits[0]

    def observe(self, stage: str, **info) -> None:
        if self.observer is not None:
            self.observer(stage, run=self, **info)

    def context(self) -> list[int]:
        """Prompt and generated tokens so far (the last one is the pending token)."""
        return self._prompt_list + self.tokens

    def clock(self) -> float:
        self._sync()
        return time.perf_counter()

    def emit(self, new: list[int], drafted: int, accepted: int) -> bool:
        """Record one full-model pass's tokens; False once decoding must stop."""
        self.drafted.append(drafted)
        self.accepted.append(accepted)
        for token in new:
            self.tokens.append(token)
            if token in self.eos:
                self.stop_reason = "eos"
                return False
            if len(self.tokens) >= self.max_new_tokens:
                self.stop_reason = "max_new_tokens"
                return False
        return True

    @property
    def remaining(self) -> int:
        return self.max_new_tokens - len(self.tokens)


def decode(model: nn.Module, input_ids, *, method: str = "swift", skip_set: SkipSet | None = None,
           max_new_tokens: int = 128, sampling: SamplingParams = SamplingParams(),
           swift: SwiftParams = SwiftParams(), seed: int | None = None, search=None,
           pace: "Pace | None" = None, stop_ids=None, selector=None) -> DecodeResult:
    """Decode one prompt with autoregressive ("ar") or SWIFT ("swift") decoding; return the record.

    With a `search` (a SkipSearch that is still running), SWIFT's optimization phase runs too: after
    every verification, once a window of generated tokens exists, one search step scores its
    candidates by matchness on those tokens, and drafting continues with the best set so far.
    The output does not depend on it: verification keeps it the full model's.

    The model is left exactly as it was found: training flag restored, no skip overrides.
    A `pace` (decoding.Pace) carries the measured cost of each kind of step from run to run (a
    stream passes one), so a new prompt starts with what earlier ones measured.
    Decoding stops after an end-of-text token of the model's generation config (swiftlab's loader adds a
    chat model's end-of-turn tokens there) or any of `stop_ids`.
    A `selector` (layerselect.LayerSelector) chooses the skip set after verifications instead of a search.
    """
    session = DecodeSession(model, input_ids, method=method, skip_set=skip_set, max_new_tokens=max_new_tokens,
                            sampling=sampling, swift=swift, seed=seed, search=search, pace=pace, stop_ids=stop_ids,
                            selector=selector)
    while not session.done:
        session.step()
    return session.result()


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


class DecodeSession:
    """One decoding run, advanced one full-model pass at a time: `decode` runs it to the end, the
    lab's token stepper shows it step by step. Between steps the model is exactly as it was found."""

    def __init__(self, model: nn.Module, input_ids, *, method: str = "swift", skip_set: SkipSet | None = None,
                 max_new_tokens: int = 128, sampling: SamplingParams = SamplingParams(),
                 swift: SwiftParams = SwiftParams(), seed: int | None = None, search=None, pace: "Pace | None" = None,
                 observer: Callable | None = None, stop_ids=None, selector=None):
        if method not in ("ar", "swift"):
            raise SwiftlabError(f"unknown method {method!r}: choose 'ar' or 'swift'")
        _check_types(sampling=(sampling, SamplingParams), swift=(swift, SwiftParams),
                     skip_set=(skip_set, (SkipSet, type(None))))
        seed = validate.optional_integer("seed", seed)
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
        prompt = prepare_prompt(model, input_ids, max_new_tokens)
        generator = None
        if not sampling.greedy:
            generator = torch.Generator(device=prompt.device)
            generator.manual_seed(seed if seed is not None else torch.seed())
        self.model, self.method, self.skip_set, self.swift, self.search = model, method, skip_set, swift, search
        self.selector = selector
        self.run = _Run(model, prompt, max_new_tokens, sampling, eos_ids(model) | {int(t) for t in stop_ids or ()},
                        generator,
                        rollback=method == "swift",
                        tree=method == "swift" and swift.verify == "tree" and tree_supported(model),
                        observer=observer)
        self.lean = (lean_drafter(model, self.run.cache, swift.draft_dtype)
                     if method == "swift" and swift.lean_draft else None)
        self.pace = pace if pace is not None else Pace()
        self.done = False
        self.events: list[StepEvent] = []
        self._cur = None
        self._start = self._end = None

    def step(self) -> StepEvent:
        if self.done:
            raise SwiftlabError("this decoding run has finished")
        run = self.run
        was_training = self.model.training
        if was_training:  # only then: train()/eval() walk every module, ~20% of a small model's step
            self.model.eval()
        if self._start is None:
            self._start = run.clock()
        t0 = run.clock()
        try:
            with torch.inference_mode():
                event = self._step()
        finally:
            if was_training:
                self.model.train()
            self._end = run.clock()
        event.seconds = self._end - t0
        self.events.append(event)
        return event

    def _step(self) -> StepEvent:
        run, index = self.run, len(self.events)
        position = run.prompt.shape[1] + len(run.tokens) - 1 if self._cur is not None else 0
        if self._cur is None:  # prefill: the full model reads the prompt and picks the first token
            t0 = run.clock()
            new, tree, path = [choose(run.forward(run.prompt[0], 0)[-1], run.sampling, run.generator)], None, []
            run.timings["prefill"] += run.clock() - t0
            run.step_kinds.append("prefill")
            reason = "the prompt pass: the full model reads the prompt and picks the first token (nothing to draft yet)"
        elif self.method == "ar":
            new, tree, path = _ar_step(run, self._cur), None, []
            run.step_kinds.append("ar")
            reason = "autoregressive decoding: one token per full-model pass"
        else:
            new, tree, path, reason = self._speculative_step()
        used = self.skip_set if tree is not None and tree.source == "skip" else None
        before = len(run.tokens)
        going = run.emit(new, len(tree.chain) if tree else 0, len(path))
        self._cur = new[-1]
        if going and self.search is not None and not self.search.done and index > 0:
            better = _optimize(run, self.search)
            if better is not None and better != self.skip_set:
                self.pace.forget("skip")  # a new drafter: what the old one cost says nothing about it
                self.skip_set = better
        if going and self.selector is not None:  # per-step layer selection (layerselect.py)
            t0 = run.clock()
            chosen = self.selector.after_step(run.cache, run.context(), run.step_kinds[-1], run.drafted[-1],
                                              run.accepted[-1])
            self.skip_set = chosen or self.skip_set
            run.timings["optimize"] += run.clock() - t0
        self.done = not going
        return StepEvent(index, list(tree.chain) if tree else [], [list(s) for s in tree.siblings] if tree else [],
                         len(path), run.tokens[before:], used, kind=run.step_kinds[-1], reason=reason, path=list(path),
                         position=position)

    def _speculative_step(self):
        """A draft/verify cycle, drafted by lookup where the context offers a match, else by the
        skipping model; or a plain step while skip drafts are measured slower than those (see Pace)."""
        run, swift = self.run, self.swift
        proposal = lookup_continuation(run.context(), min(swift.lookup, run.remaining - 1),
                                       swift.lookup_ngrams) if swift.lookup else []
        eos_at = next((i for i, t in enumerate(proposal) if t in run.eos), None)
        proposal = proposal[:eos_at + 1] if eos_at is not None else proposal
        # Where lookup offers a continuation, the drafter decides, for free: it drafts its first token as
        # usual; where that is the lookup's first token, or where it is unsure of it (its own chain would end
        # there), the lookup continuation is verified, with its top candidates as siblings; otherwise its own
        # chain (_draft). Always taking lookup lost where the drafter is strong and 2-gram matches are chance
        # (reasoning 1.84x -> 1.59x, fixed set); choosing by measured cost per kind lost everywhere (a step's
        # yield swings with the text far more than the kinds differ). Sampling always takes the lookup draft
        # and never a plain step: a timing-based choice would use the generator differently run to run.
        greedy = run.sampling.greedy
        arm = self.pace.pick(("skip", "ar")) if swift.fallback and greedy else "skip"
        why = self.pace.explain(arm) if swift.fallback and greedy else "the plain-step fallback is off"
        if proposal and (arm == "ar" or not greedy):
            why = ("the context repeats: a lookup draft costs a plain step's price for a chance of more tokens"
                   if greedy else "when sampling a lookup match is always verified")
            arm = "lookup"  # a plain step's price for a chance of more than one token
        t0 = run.clock()
        if arm == "ar":
            new, tree, path = _ar_step(run, self._cur), None, []
            run.tree_sizes.append(0)  # nothing drafted, nothing but the pending token verified
        else:
            new, tree, path = _swift_step(run, self._cur, self.skip_set, swift, self.lean,
                                          proposal if arm == "lookup" else None, follow=proposal)
        run.step_kinds.append(tree.source if tree else "ar")
        if arm != "lookup":
            self.pace.record(arm, run.clock() - t0, len(new))
        if tree is not None and tree.source == "lookup" and arm == "skip":
            why = "the context repeats and the drafter agreed with (or was unsure of) the lookup's first token"
        return new, tree, path, why + (f"; {tree.stop}" if tree is not None and tree.stop else "")

    def result(self) -> DecodeResult:
        run, method = self.run, self.method
        wall = (self._end - self._start) if self._start is not None else 0.0
        run.timings["other"] = max(wall - sum(v for k, v in run.timings.items() if k != "other"), 0.0)
        return DecodeResult(
            method=method, prompt_ids=run.prompt[0].tolist(), token_ids=list(run.tokens),
            skip_set=self.skip_set.to_dict() if method == "swift" else None,
            drafted_per_step=list(run.drafted), accepted_per_step=list(run.accepted), wall_s=wall,
            tree_size_per_step=[0] + run.tree_sizes if method == "swift" else [],
            verify=("tree" if run.tree else "chain") if method == "swift" else "",
            step_kinds=list(run.step_kinds),
            timings_s=dict(run.timings), stop_reason=run.stop_reason)


class Pace:
    """Whether drafting pays: seconds per emitted token of each kind of step ("skip" drafts, plain "ar"
    steps), from running averages. Drafting is the default; a plain step is taken only while drafting
    is measured more than MARGIN slower per token, so a poor drafter (a bad skip set, a family without
    the lean drafter) costs little, and noise does not throw a good one away: a drafted step's yield
    swings with the text (1 to 17 tokens), a plain step's cost hardly at all. Every PROBE steps the
    kind measured longest ago is tried instead (less often, up to every MAX_PROBE steps, while the
    tries keep confirming the choice; during plain steps drafting is re-tried after PLAIN_PROBE steps,
    doubling up to MAX_PLAIN_SPELL), so a skip set that got better (the search runs meanwhile) or text that
    turned easier is noticed. Every kind emits exactly the full model's tokens: the choice changes
    speed only."""

    PROBE = 12  # steps between tries of the other kind ...
    MAX_PROBE = 96  # ... doubling up to this while the tries keep confirming the cheapest kind
    PLAIN_PROBE = 4  # while plain steps are taken, drafting is re-tried after this many, doubling ...
    MAX_PLAIN_SPELL = 24  # ... up to this
    WEIGHT = 0.3  # of the newest step in the running average
    MARGIN = 1.1  # plain steps only when drafting costs more than this many times as much per token

    def __init__(self):
        self.sums: dict[str, tuple[float, float]] = {}  # kind -> running (seconds, tokens) per step
        self.measured_at: dict[str, int] = {}
        self.steps = 0
        self.interval = self.PROBE
        self.next_probe = 2  # a fresh pace measures plain steps at once, then every PROBE steps
        self._probe: tuple | None = None  # (kinds, the cheapest before the try) while a try is out

    @property
    def cost(self) -> dict[str, float]:
        """Seconds per emitted token, per measured kind."""
        return {kind: seconds / tokens for kind, (seconds, tokens) in self.sums.items()}

    def _cheapest(self, kinds) -> str:
        cost = self.cost
        weighed = {k: cost[k] * (self.MARGIN if k == "ar" else 1.0) for k in kinds if k in cost}
        return min(weighed, key=weighed.get)

    def pick(self, kinds: tuple[str, ...]) -> str:
        self.steps += 1
        untried = [k for k in kinds if k not in self.sums and k != "ar"]
        if untried:
            return untried[0]
        best = self._cheapest(kinds)
        others = [k for k in kinds if k != best]
        due = self.next_probe
        if best == "ar":  # drafting is not left untried for long, however the switch to plain steps came about
            due = min(due, max(self.measured_at.get(k, 0) for k in others) + self.MAX_PLAIN_SPELL)
        if others and self.steps >= due:
            self._probe = (kinds, best)
            return min(others, key=lambda k: self.measured_at.get(k, -1))
        return best

    def explain(self, arm: str) -> str:
        """Why `pick` just chose `arm`, in words (right after the pick, before its step is recorded)."""
        cost = self.cost
        if "skip" not in cost or "ar" not in cost:
            return "drafting, not measured yet" if arm == "skip" else "measuring one plain step to compare with drafting"
        ratio = cost["skip"] / cost["ar"]
        measured = (f"skip drafts measured {ratio:.2f}x the time per token of plain steps "
                    f"(plain steps are taken above {self.MARGIN}x)")
        if self._probe is not None:
            return f"a re-try of {'drafting' if arm == 'skip' else 'plain steps'}: {measured}"
        return measured

    def forget(self, kind: str) -> None:
        """Drop the measurements of `kind`: it gets tried afresh."""
        self.sums.pop(kind, None)

    def record(self, kind: str, seconds: float, tokens: int) -> None:
        # Running averages of seconds and of tokens per step, and their ratio: a mean of per-step ratios
        # would overweight the steps that yield one token and make drafting look worse than it is.
        weight = 0.5 if self._probe is not None else self.WEIGHT  # a rare try weighs more
        old, new = self.sums.get(kind), (seconds, float(max(tokens, 1)))
        self.sums[kind] = new if old is None else tuple((1 - weight) * o + weight * n for o, n in zip(old, new))
        self.measured_at[kind] = self.steps
        if self._probe is not None:  # a try: back off while it confirms the cheapest, else look often again
            kinds, best = self._probe
            now = self._cheapest(kinds)
            # while plain steps are taken drafting is re-tried sooner: one unlucky draft (a yield of 1) must
            # not cost a dozen plain steps, and a plain step's cost needs no re-measuring
            first, limit = (self.PLAIN_PROBE, self.MAX_PLAIN_SPELL) if now == "ar" else (self.PROBE, self.MAX_PROBE)
            self.interval = min(2 * self.interval, limit) if now == best else first
            self.next_probe = self.steps + self.interval
            self._probe = None


def _optimize(run: _Run, search) -> SkipSet | None:
    """One search step on the tokens generated so far; the best set to draft with next."""
    from .matchness import matchness_scores

    window = search.config.window
    if len(run.tokens) < window + 1:  # matchness needs `window` generated tokens and their successors
        return None
    t0 = run.clock()
    tokens = run.prompt[0].tolist() + run.tokens
    search.step(lambda sets: matchness_scores(run.model, run.cache, tokens, window, sets))
    run.timings["optimize"] += run.clock() - t0
    return search.best


def _ar_step(run: _Run, cur: int) -> list[int]:
    t0 = run.clock()
    position = run.prompt.shape[1] + len(run.tokens) - 1
    token = choose(run.forward([cur], position)[-1], run.sampling, run.generator)
    run.timings["verify"] += run.clock() - t0
    return [token]


def _swift_step(run: _Run, cur: int, skip_set: SkipSet, swift: SwiftParams, lean: LeanDrafter | None,
                proposal: list[int] | None = None, follow: list[int] | None = None):
    """One draft/verify cycle: (emitted tokens, the draft tree, the accepted node path). With a
    `proposal` (a lookup continuation) that chain is verified instead of a drafted one; with `follow`,
    the drafter's chain gives way to it where they agree on the first token (see _draft)."""
    n = run.prompt.shape[1] + len(run.tokens) - 1  # positions already in the cache; cur goes at n
    run.observe("start", position=n)
    t0 = run.clock()
    if proposal:
        tree = _proposal_tree(run, proposal)
    else:
        tree = _draft(run, cur, n, skip_set, min(swift.max_draft, run.remaining - 1), swift, lean, follow)
    run.observe("drafted", tree=tree, position=n)
    run.cache.crop_to(n)  # drop the drafter's KV entries: the full model recomputes these positions
    t1 = run.clock()
    if tree.size > len(tree.chain):  # siblings: one pass over the whole tree with a tree mask
        logits = run.forward([cur] + tree.tokens(), n, positions=tree_positions(tree, n, run.device),
                             mask=tree_mask(tree, n, additive_dtype=run.additive_mask_dtype, device=run.device))
    else:
        logits = run.forward([cur] + tree.chain, n)
    run.observe("verified", tree=tree, position=n, logits=logits)
    if run.sampling.greedy:
        new, path = accept_greedy(tree, logits)
    else:
        new, path = accept_sampled(tree, probabilities(logits, run.sampling), run.generator)
    # keep cur and the accepted path (a chain prefix, maybe one sibling); the bonus is the next cur
    run.cache.keep(n + 1, path, len(tree.chain))
    run.observe("kept", tree=tree, position=n, path=path)
    run.timings["draft"] += t1 - t0
    run.timings["verify"] += run.clock() - t1
    run.tree_sizes.append(tree.size)
    return new, tree, path


def _proposal_tree(run: _Run, proposal: list[int]) -> DraftTree:
    """A fixed chain as a draft. For sampling its q is one-hot, so rejection sampling accepts token x
    with probability p(x) and otherwise samples p without x: still exactly the full model's distribution."""
    tree = DraftTree(chain=list(proposal), siblings=[[] for _ in proposal], source="lookup",
                     stop=f"the lookup continuation ({len(proposal)} tokens) is verified")
    if not run.sampling.greedy:
        vocab = run.model.get_input_embeddings().num_embeddings
        tree.draft_probs = list(torch.nn.functional.one_hot(torch.tensor(proposal, device=run.device), vocab).float())
    return tree


def _draft(run: _Run, cur: int, n: int, skip_set: SkipSet, cap: int, swift: SwiftParams,
           lean: LeanDrafter | None, follow: list[int] | None = None) -> DraftTree:
    """Tokens from the skip-mode model, one at a time, while it is confident; with tree
    verification also, per depth, runner-up candidates (more where the drafter is less sure).
    The lean drafter, where there is one, is the same skip-mode model without transformers' call overhead.
    `follow` (greedy only): a lookup continuation taken as the chain (no more draft passes for a span being
    copied) when the drafter's first token is its first token or the drafter is unsure of it."""
    tree = DraftTree()
    token = cur
    greedy = run.sampling.greedy
    with nullcontext() if lean else skipping(run.model, skip_set):
        for j in range(cap):
            logits = lean.logits(token, n + j, run.cache, skip_set) if lean else run.forward([token], n + j)[-1]
            probs = probabilities(logits, run.sampling)
            if greedy:
                confidence, token = (float(v) for v in probs.max(-1))
                token = int(token)
            else:
                token = sample(probs, run.generator)
                confidence = float(probs.max())
                tree.draft_probs.append(probs)
            # the drafter agrees with the lookup, or its own chain would end here anyway: verify the lookup
            # continuation, with the drafter's top candidates (its own token among them) as siblings
            take_lookup = j == 0 and greedy and follow and (token == follow[0] or confidence < swift.epsilon)
            if take_lookup:
                token = follow[0]
            tree.chain.append(token)
            tree.siblings.append(_siblings(run, probs, token, confidence, swift, tree.size) if run.tree else [])
            if take_lookup:
                tree.chain = list(follow[:cap])
                tree.siblings += [[] for _ in tree.chain[1:]]
                tree.source = "lookup"
                tree.stop = f"the lookup continuation ({len(tree.chain)} tokens) is verified"
                break
            if confidence < swift.epsilon or token in run.eos:  # nothing after end-of-text is ever needed
                tree.stop = ("drafting stopped at end-of-text" if token in run.eos else
                             f"drafting stopped: the drafter's top-1 probability {confidence:.2f} fell below "
                             f"epsilon = {swift.epsilon}")
                break
        else:
            tree.stop = (f"drafting stopped at the length cap of {cap}" if cap else
                         "nothing drafted: one token is left to write, and the full model writes it")
    return tree


def _siblings(run: _Run, probs: torch.Tensor, chain_token: int, confidence: float, swift: SwiftParams,
              size: int) -> list[int]:
    """Runner-up candidates at one depth: the top tokens when greedy; for sampling, further draws
    from q without replacement (what keeps recursive rejection sampling lossless)."""
    if not run.sampling.greedy:
        table = swift.sampling_candidates
    else:
        table = swift.greedy_candidates or (CPU_GREEDY_SIBLINGS if run.device.type == "cpu" else GREEDY_SIBLINGS)
    count = min(candidates_for(confidence, table) - 1, swift.max_tree - size - 1, int((probs > 0).sum()) - 1)
    if count <= 0:
        return []
    if run.sampling.greedy:
        top = torch.topk(probs, count + 1).indices.tolist()
        return [t for t in top if t != chain_token][:count]
    q = probs.clone()
    out = []
    for _ in range(count):
        q[out[-1] if out else chain_token] = 0.0
        if q.sum() <= 0:
            break
        out.append(sample(q / q.sum(), run.generator))
    return out
