"""What the on-the-fly search may spend, and whether what it found pays.

Two questions a stream asks while it searches:
- may it score now? `ScoringBudget` keeps the stream's ledger: seconds spent scoring candidates
  against seconds of stream wall time, carried from prompt to prompt. A scoring step is taken only
  while, with its expected cost added, scoring stays within `share` of the wall time; so steps are
  spaced by their measured cost against the decoding they slow down.
- does the best set pay? `PassCosts` are the model's pass costs measured on this machine at the
  stream's context length (a full one-token pass, a verify pass over several tokens, and draft passes
  with every middle attention or every middle MLP sub-layer switched off), from which each skip set's
  draft cost follows sub-layer by sub-layer (attention and MLP cost differently, as KnapSpec
  measures). With a set's matchness a as its acceptance, the speculative-decoding formula gives the
  expected tokens per full pass of g drafts, (1 - a^(g+1)) / (1 - a), for a cost of g drafts and one
  verify pass over g + 1 tokens: the expected speedup over plain steps, at the best g.
"""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ..models.adapters import input_device, last_logits_only
from ..support.errors import SwiftlabError
from ..engine.skipset import SkipSet


class ScoringBudget:
    """Scoring may take at most `share` of the stream's wall time (both carried across prompts).
    `clock` is injectable, so the ledger can be tested without timing anything."""

    def __init__(self, share: float = 0.10, clock: Callable[[], float] = time.perf_counter):
        if not 0.0 < share <= 1.0:
            raise SwiftlabError(f"the search's share of wall time must be in (0, 1], got {share}")
        self.share = share
        self.clock = clock
        self.scoring_s = 0.0  # spent scoring (and measuring pass costs)
        self.closed_s = 0.0  # wall time of finished prompts
        self._opened: float | None = None
        self.costs: list[float] = []  # recent scoring steps, seconds each
        self.unmeasured_s = 0.0  # what a scoring step is taken to cost before one is measured (set by the stream)
        self.reserved_s = 0.0  # kept free for other search work (the stream's first round of pass costs)

    def open(self) -> None:
        """A prompt starts: its wall time counts from now."""
        self._opened = self.clock()

    def close(self) -> None:
        """A prompt ends: its wall time since `open` joins the ledger (nothing happens when none is open)."""
        if self._opened is not None:
            self.closed_s += self.clock() - self._opened
            self._opened = None

    @property
    def wall_s(self) -> float:
        return self.closed_s + (self.clock() - self._opened if self._opened is not None else 0.0)

    @property
    def used(self) -> float:
        """Share of the wall time spent scoring so far."""
        wall = self.wall_s
        return self.scoring_s / wall if wall > 0 else 0.0

    def expected_cost(self) -> float:
        """Seconds the next scoring step is expected to take: the median of the last five measured, else
        `unmeasured_s` (the stream's estimate from its verify passes)."""
        return statistics.median(self.costs[-5:]) if self.costs else self.unmeasured_s

    def due(self, cost: float) -> bool:
        """Whether a scoring step of `cost` seconds keeps scoring within the share, with the reserve still free."""
        return self.affords(cost + self.reserved_s)

    def affords(self, seconds: float) -> bool:
        """Whether spending `seconds` now keeps scoring within the share."""
        return self.scoring_s + seconds <= self.share * (self.wall_s + seconds)

    def spend(self, seconds: float, step: bool = True) -> None:
        """Charge `seconds` of search work to the ledger; `step=False` for work that is not a scoring step
        (a round of pass costs), which then does not count towards `expected_cost`."""
        self.scoring_s += seconds
        if step:
            self.costs.append(seconds)
            del self.costs[:-5]


class BudgetedSearch:
    """A SkipSearch seen through a budget: the decoding engine calls `step` after every verification
    (decoding._optimize); a step runs only when the budget allows, and its whole cost (proposal, GP,
    scoring) is charged to it. Reads like the search otherwise (best, config, done).

    Candidates scored together share one batched pass, which costs less per candidate up to a point
    that depends on the model and machine; so the batch size is measured: sizes 1, 2, 4, 8 are tried in
    turn while each is cheaper per candidate than the one before, then the cheapest is kept."""

    SIZES = (1, 2, 4, 8)

    def __init__(self, search, budget: ScoringBudget | None, after_step: Callable[[], None] | None = None,
                 tune_batch: bool = True, probe: Callable[[object], None] | None = None,
                 min_confidence: float | None = None):
        self.search, self.budget, self.after_step = search, budget, after_step
        self.min_confidence = min_confidence  # confident matchness: matchness.matchness_scores' min_confidence
        self.probe = probe  # called with the running decode before each step (the stream times passes on its cache)
        self.tune_batch = tune_batch and budget is not None
        self.per_candidate = search.batch_costs  # kept with the search, from prompt to prompt

    @property
    def done(self) -> bool:
        return self.search.done  # a step the budget cannot afford yet does nothing (see step): the stream's
        # probe still sees every verification

    @property
    def best(self) -> SkipSet:
        return self.search.best

    @property
    def config(self):
        return self.search.config

    def step(self, score):
        """One search step with `score` (candidates -> matchness, as `SkipSearch.step` takes it), taken only where
        the budget affords its expected cost, which is then charged; returns the step's records, empty where no
        step ran (the search is done, or the budget cannot afford it yet)."""
        if self.done:
            return []
        if self.budget is None:
            records = self.search.step(score)
        else:
            if self.tune_batch:
                self.search.batch = self.batch_size()
            if not self.budget.due(self.expected_cost()):
                return []
            started = self.budget.clock()
            records = self.search.step(score)
            seconds = self.budget.clock() - started
            self.budget.spend(seconds)
            if records and records[0].kind != "start":
                self.per_candidate.setdefault(len(records), []).append(seconds / len(records))
        if self.after_step is not None:
            self.after_step()
        return records

    def expected_cost(self) -> float:
        """The next step's seconds at its batch size: measured per candidate at that size, else at the
        smallest size measured (bigger batches cost less per candidate: an overestimate), else the budget's."""
        batch = max(getattr(self.search, "batch", 1), 1)
        measured = {b: v for b, v in self.per_candidate.items() if v}
        if not measured:
            return self.budget.expected_cost() * batch
        per = measured.get(batch) or measured[min(measured)]
        return statistics.median(per[-5:]) * batch

    def batch_size(self) -> int:
        """Candidates per step to try next: the sizes of `SIZES` in turn (each measured twice) while each
        larger one is the cheapest per candidate so far, then the cheapest per candidate measured."""
        measured = {b: statistics.median(v) for b, v in self.per_candidate.items() if len(v) >= 2}
        for size, bigger in zip(self.SIZES, self.SIZES[1:]):
            if size not in measured:
                return size
            if bigger not in measured:
                # grow while the largest measured size is the cheapest per candidate
                return bigger if measured[size] <= min(measured.values()) else min(measured, key=measured.get)
        return min(measured, key=measured.get)


@dataclass
class PassCosts:
    """Seconds per pass, measured side by side at one context length (medians of `pass_cost_rounds`)."""

    context: int
    full: float  # a full one-token pass: a plain step
    verify: float  # a full pass over `verify_tokens` tokens
    verify_tokens: int
    draft_none: float  # a draft pass with nothing skipped (through the drafter decoding uses)
    draft_no_attention: float  # ... with every middle attention sub-layer skipped
    draft_no_mlp: float  # ... with every middle MLP sub-layer skipped
    num_layers: int
    seconds_spent: float = 0.0  # what measuring them took

    def to_dict(self) -> dict:
        """The costs as a JSON-ready dict of their fields (what `SwiftStream.summary` records); `from_dict`
        reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PassCosts":
        """Costs from a `to_dict` dict (e.g. a stream summary's "pass_costs"), ready for `SwiftStream.use_costs`,
        which then values candidates by them without measuring."""
        return cls(**d)

    @property
    def per_attention(self) -> float:
        return max(self.draft_none - self.draft_no_attention, 0.0) / (self.num_layers - 2)

    @property
    def per_mlp(self) -> float:
        return max(self.draft_none - self.draft_no_mlp, 0.0) / (self.num_layers - 2)

    def draft_cost(self, skip_set: SkipSet) -> float:
        """One draft pass with `skip_set`, in full one-token passes."""
        seconds = (self.draft_none - len(skip_set.attention) * self.per_attention
                   - len(skip_set.mlp) * self.per_mlp)
        return max(seconds, 0.0) / self.full

    def verify_cost(self, tokens: int) -> float:
        """A verify pass over `tokens` tokens, in full one-token passes (linear between 1 and verify_tokens)."""
        slope = max(self.verify - self.full, 0.0) / max(self.verify_tokens - 1, 1)
        return (self.full + slope * (tokens - 1)) / self.full

    def expected_speedup(self, skip_set: SkipSet, matchness: float, max_draft: int = 25) -> tuple[float, int]:
        """(speedup over plain steps, drafts per step that reach it) for a drafter whose tokens are
        accepted with probability `matchness` each."""
        plain = (1.0 / self.verify_cost(1), 0)  # no drafts: a plain step through the verify path
        return max(plain, self.drafting_speedup(skip_set, matchness, max_draft))

    def drafting_speedup(self, skip_set: SkipSet, matchness: float, max_draft: int = 25) -> tuple[float, int]:
        """The same, drafting at least once: below 1 where drafting with this set loses to plain steps."""
        c = self.draft_cost(skip_set)
        a = min(max(float(matchness), 0.0), 0.999)
        best = (0.0, 1)
        for g in range(1, max_draft + 1):
            tokens = (1.0 - a ** (g + 1)) / (1.0 - a)
            best = max(best, (tokens / (g * c + self.verify_cost(g + 1)), g))
        return best

    def speedup(self, skip_set: SkipSet, matchness: float) -> float:
        """A candidate's value to the search: drafting with it, over plain steps. Not floored at 1 (where
        plain steps would win), so that of two sets that both lose, the one that loses less ranks first."""
        return self.drafting_speedup(skip_set, matchness)[0]


PASS_KINDS = ("full", "verify", "draft_none", "draft_no_attention", "draft_no_mlp")


def costs_from_rounds(rounds: list[dict], context: int, model, verify_tokens: int = 8,
                      seconds_spent: float = 0.0) -> PassCosts:
    """`PassCosts` at `context` from rounds of `pass_cost_rounds` (seconds per pass kind), each kind its median
    over the rounds; `verify_tokens` must be the one they were measured with, `seconds_spent` what they took."""
    from ..models.adapters import num_layers

    medians = {kind: statistics.median(r[kind] for r in rounds) for kind in PASS_KINDS}
    return PassCosts(context=context, verify_tokens=verify_tokens, num_layers=num_layers(model),
                     seconds_spent=seconds_spent, **medians)


# A pass to time: (tokens, skip set or None for the full model, the lean drafter's precision or None for
# a pass through transformers; see leandraft.DRAFT_DTYPES)
PassCase = tuple[int, "SkipSet | None", "str | None"]


@torch.inference_mode()
def time_passes(model, context: int, cases: dict[str, PassCase], rounds: int, *, cache=None, warmup: int = 0,
                lean_fallback: bool = False, products=None, full_forward=None) -> list[dict[str, float]]:
    """`rounds` rounds of one pass per case, interleaved (drift hits every case alike), seconds each.
    Every pass runs on `context` positions in the cache and is cropped off again: a running decode's
    `cache` (no prefill paid), or else `context` random tokens prefilled first. A lean case the model has
    no lean drafter for runs through transformers with `lean_fallback`, else is left out. On a GPU each
    pass is timed between synchronisations (kernels run asynchronously: the clock would time launches).
    The timed passes take their few-token products as decoding does (smallbatch.py; `products`: whose), and
    with `full_forward` (a run's compiled forward, engine/compiled.py) its full-model passes go through it
    and its lean drafts are compiled too, as that run's are: passes priced in another way than the run takes
    them would misjudge what drafting saves."""
    from ..engine.cache import SkipAwareCache
    from ..engine.leandraft import lean_drafter
    from ..engine.skipping import skipping
    from ..engine.smallbatch import small_batch_products

    vocab, device = model.get_input_embeddings().num_embeddings, input_device(model)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    generator = torch.Generator().manual_seed(0)
    if cache is None:  # (preallocated where a compiled pass reads it, as a run's)
        cache = SkipAwareCache(model.config, capacity=None if full_forward is None else context + 64)
        model(input_ids=torch.randint(3, vocab, (1, context), generator=generator).to(device), cache=cache,
              use_cache=True, **last_logits_only(model))
    elif cache.get_seq_length() != context:
        raise SwiftlabError(f"pass costs at context {context}, but the cache holds {cache.get_seq_length()} positions")
    # a compiled run drafts compiled (compileddraft.py)
    compiled = full_forward is not None
    leans = {dtype: lean_drafter(model, cache, dtype, compiled=compiled) for dtype in {case[2] for case in cases.values()} if dtype}
    runnable = {}
    for name, (k, skip_set, dtype) in cases.items():
        if dtype and leans[dtype] is None:
            if not lean_fallback:
                continue
            dtype = None
        runnable[name] = (k, skip_set, dtype)

    def timed(k: int, skip_set: SkipSet | None, dtype: str | None) -> float:
        ids = torch.randint(3, vocab, (1, k), generator=generator).to(device)
        positions = torch.arange(context, context + k, device=device).unsqueeze(0)
        first = int(ids[0, 0])  # read before the clock starts: on a GPU reading a value waits for the device
        sync()
        started = time.perf_counter()
        if dtype:
            leans[dtype].logits(first, context, cache, skip_set)
        elif skip_set is None and full_forward is not None:
            cache.reserve(context + k)  # called as DecodeSession.forward calls it: anything else is another graph
            full_forward(input_ids=ids, position_ids=positions, attention_mask=None, cache=cache, use_cache=True)
        elif skip_set is None:
            model(input_ids=ids, position_ids=positions, cache=cache, use_cache=True)
        else:
            with skipping(model, skip_set):
                model(input_ids=ids, position_ids=positions, cache=cache, use_cache=True)
        sync()
        took = time.perf_counter() - started
        cache.crop_to(context)
        return took

    was_training = model.training
    model.eval()
    try:
        # as decoding runs its verify passes (a compiled pass chooses its own products)
        with small_batch_products(model, products=products) if full_forward is None else nullcontext():
            return _timed_rounds(timed, runnable, rounds, warmup)
    finally:
        model.train(was_training)


def _timed_rounds(timed, runnable: dict, rounds: int, warmup: int) -> list[dict[str, float]]:
    for _ in range(warmup):
        for case in runnable.values():
            timed(*case)
    return [{name: timed(*case) for name, case in runnable.items()} for _ in range(rounds)]


def pass_cost_rounds(model, context: int, *, draft_dtype: str = "auto", lean: bool = True, rounds: int = 1,
                     verify_tokens: int = 8, cache=None, full_forward=None) -> list[dict[str, float]]:
    """`rounds` rounds of one pass of each kind (PASS_KINDS), seconds each, through the calls decoding
    makes (the lean drafter where the family has one; a compiled run's `full_forward`); on a running
    decode's `cache`, see time_passes."""
    from ..models.adapters import num_layers as layers_of

    L = layers_of(model)
    middle = tuple(range(1, L - 1))
    dtype = draft_dtype if lean else None
    cases = {"full": (1, None, None), "verify": (verify_tokens, None, None),
             "draft_none": (1, SkipSet((), (), L), dtype), "draft_no_attention": (1, SkipSet(middle, (), L), dtype),
             "draft_no_mlp": (1, SkipSet((), middle, L), dtype)}
    return time_passes(model, context, cases, rounds, cache=cache, lean_fallback=True, full_forward=full_forward)
