"""A stream of prompts served with SWIFT: the optimization phase, then the acceleration phase.

The search state lives across prompts. While it runs, every prompt is decoded with an
optimization step after each verification; once it stops (max score, tolerance or step budget)
later prompts are decoded with the frozen best set. Beyond the reference: if acceptance in the
acceleration phase falls well below what it was right after the search stopped (the task
changed), the search re-opens from the current best.

The search pays for itself (budget.py): it scores only while scoring stays within a share of the
stream's wall time (10% by default), it values candidates by the speedup they are expected to give at
the pass costs measured on this machine (so the skip ratio is searched too, where the config lists
ratios), and when the best set it found is not expected to beat plain steps it says so and rules
skip drafting out of the stream's Pace: plain steps (and lookup drafts, where on) until a re-try,
at a much smaller share of wall time, finds a set that pays. A stream can start from a stored set
(`from_store`): then there is no search phase at all.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from torch import nn

from ..models.adapters import num_layers
from .budget import BudgetedSearch, PassCosts, ScoringBudget, costs_from_rounds, pass_cost_rounds
from ..engine.compiled import compiled_forward
from ..engine.decoding import Pace, SwiftParams, decode, eos_ids
from ..engine.records import DecodeResult
from ..engine.sampling import SamplingParams
from .lookupchoice import LookupChoice, PassLog
from .skipsearch import SearchConfig, SkipSearch
from ..engine.skipset import SkipSet


@dataclass
class PromptRecord:
    """One prompt a `SwiftStream` served: its phase ("optimize" while the search ran, "accelerate" after),
    new tokens, wall time and tokens per second, acceptance, the seconds spent searching in it, and the best set
    (its matchness, ratio, verdict and expected speedup) as they stood at its end."""
    index: int
    phase: str  # "optimize" or "accelerate"
    new_tokens: int
    wall_s: float
    tokens_per_s: float
    mean_accepted_tokens: float
    acceptance_rate: float
    optimize_s: float
    best_matchness: float | None
    skip_set: dict
    reopened: bool = False  # this prompt's acceptance re-opened the search
    search_share: float | None = None  # the stream's scoring time over its wall time, up to this prompt's end
    verdict: str | None = None  # "pays" / "does not pay" (skip drafting ruled out), once judged
    ratio: float | None = None  # skip ratio of the best set after this prompt
    expected_speedup: float | None = None  # of the best set, at the measured pass costs
    lookup: str | None = None  # with lookup drafts: "gated" (by the skip drafter) or "pure" (lookupchoice.py)


PAYS = "pays"
DOES_NOT_PAY = "does not pay"
GIVE_UP_MESSAGE = "layer skipping does not pay on this model here: plain/lookup steps"


@dataclass
class StreamSettings:
    """How a `SwiftStream` searches and judges: the search's share of wall time, when a task shift re-opens
    it, when the best set is judged to pay (`pays_above`) or skip drafting is given up, and the opt-ins
    described at each field. `REFERENCE_SETTINGS` are the paper's: a step after every verification, no give-up."""
    reopen_on_shift: bool = True
    shift_ratio: float = 0.75  # re-open when acceptance falls below this share of the reference
    shift_patience: int = 2  # prompts averaged for the reference and for the check
    swift: SwiftParams = field(default_factory=SwiftParams)
    search_share: float | None = 0.10  # scoring's most share of wall time; None: a step after every verification
    give_up: bool = True  # rule skip drafting out while the best set is not expected to beat plain steps
    pays_above: float = 1.05  # the expected speedup a set must reach to be drafted with
    judge_after: int = 16  # proposals scored before the first verdict
    # Before that, an early verdict: once pass costs are measured (after the first searching prompt), give up
    # when no set scored so far would pay even if the search closed `search_gain` of its gap to matchness 1:
    # what the search typically closes from its random start (SmolLM2-135M at r = 0.45: random sets 0.03-0.19,
    # the best after 369 proposals 0.34-0.50, 0.38 of the gap). A share, not a fixed amount: near 1 there is
    # less to gain (a fixed +0.35 kept every low-ratio set at 0.66 hopeful). Layer skipping that cannot pay is
    # then ruled out after a prompt or two, not after 16 proposals.
    search_gain: float = 0.4
    retry_share: float = 0.01  # the search's share of wall time while skipping does not pay ...
    retry_after: int = 8  # ... in one prompt after this many with the search frozen by that verdict
    # Once skipping pays, stop when the best set has held this many proposals, whatever its matchness: the
    # ceiling (`max_score`) may never be reached (lab code with lookup drafts: 0.91 after 126 proposals,
    # the search at 10% of wall time for all 20 prompts) and the paper's `tolerance` is 300 proposals
    patience: int = 32
    # Opt-in: score a candidate by its confident matchness, the share of window positions where the skipping
    # model guesses right AND is as sure as drafting needs (SwiftParams.epsilon) to go on; plain matchness
    # counts right guesses the draft stops at (lab code: matchness 1.00, 1.1 tokens drafted a step). Off by
    # default: within the run-to-run spread on every task but lab code with lookup, where the stream then
    # gives up on skipping and its lookup drafts lose the skip drafter's gate (docs/measurements.md, "Confident matchness")
    confident_matchness: bool = False
    # Opt-in (plan.default_skip_plan, one-prompt runs): before a verdict, draft only with a set expected to
    # pay (pays_above) at the pass costs measured here; not with the unscored start set, nor before the costs
    # are measured. Off by default: a stream of many prompts can afford to try its start set
    cautious: bool = False
    # A prompt that ended before the budget afforded a round of pass costs gets one after its answer (the next
    # prompt's search values sets by them). Off for a one-prompt run (the default plan): there is no next prompt
    # in that process, so the round would only make the user wait for a prefill of the whole context
    costs_after_prompt: bool = True
    early_after: int = 3  # sets scored before the early verdict (`_judge_early`); a one-prompt run judges after 2


# SWIFT as the paper runs it: a search step after every verification, never giving up (the probes that
# reproduce its figures, and the lab's view of a search being watched, use this)
REFERENCE_SETTINGS = StreamSettings(search_share=None, give_up=False, confident_matchness=False)


class SwiftStream:
    """SWIFT over a stream of prompts: one `SkipSearch` carried from prompt to prompt, a search step after
    verifications while it runs (the optimization phase), then the frozen best set (the acceleration phase).
    Call `decode` once per prompt; `records` holds a `PromptRecord` per prompt, `verdict` whether skipping pays."""
    def __init__(self, model: nn.Module, config: SearchConfig = SearchConfig(), start: SkipSet | None = None,
                 settings: StreamSettings = StreamSettings(), clock: Callable[[], float] = time.perf_counter):
        self.model = model
        self.settings = settings
        self.search = SkipSearch(num_layers(model), config, start)
        self.records: list[PromptRecord] = []
        self._accelerated: list[float] = []  # acceptance per prompt since the search last stopped
        self.pace = Pace()  # what each kind of step costs per token, carried from prompt to prompt
        # gated or pure prompt lookup, learned from prompt to prompt (lookup drafts on, greedy prompts)
        self.lookup_choice = LookupChoice() if settings.swift.lookup else None
        self.budget = ScoringBudget(settings.search_share, clock) if settings.search_share else None
        self.costs: PassCosts | None = None  # measured after searching prompts (the search values sets by them)
        self._cost_rounds: list[dict] = []
        self._costs_given = False
        self._measured_this_prompt = False
        self._pass_s = 0.0  # seconds per full pass (a verify pass) of the running prompt, for the budget's estimates
        self._frozen_at: int | None = None  # prompts decoded when the search was frozen by a give-up verdict
        self._in_prompt = False
        self.verdict: str | None = None
        self.verdict_reason: str | None = None
        self.started_from: str | None = None  # where the starting set came from, when not from scratch

    @classmethod
    def from_store(cls, model: nn.Module, store, model_name: str, task: str, config: SearchConfig = SearchConfig(),
                   settings: StreamSettings = StreamSettings(), **kwargs) -> "SwiftStream":
        """A stream that starts from the set stored for this model and task (store.SkipSetStore), with no
        search phase (a task shift still re-opens it), or from scratch where none is stored."""
        stored = store.get(model_name, task, num_layers(model))
        stream = cls(model, config, stored, settings, **kwargs)
        if stored is not None:
            entry = store.entries().get(store.key(model_name, task), {})
            stream.started_from = f"{store.path} [{store.key(model_name, task)}]"
            stream.search.stop("stored")
            if entry.get("verdict") == DOES_NOT_PAY and settings.give_up:
                stream._give_up(f"{GIVE_UP_MESSAGE} (stored verdict: {entry.get('verdict_reason', '')})")
        return stream

    def save_to(self, store, model_name: str, task: str, replace: bool = False) -> tuple[str, str | None]:
        """Store the best set found, with its verdict, for this model and task, so the next stream on
        them starts from it (`from_store`); unless the stored one scored at least as well (store.put_if_better).
        Returns (key, why it was not stored); a search that scored nothing stores nothing."""
        search = self.search
        if search.best_score is None or search.iteration == 0:
            return store.key(model_name, task), "the search scored no candidate"
        return store.put_if_better(model_name, task, search.best, search.best_score, replace=replace,
                                   iterations=search.iteration, stopped_because=search.stopped_because,
                                   verdict=self.verdict, verdict_reason=self.verdict_reason,
                                   expected_speedup=self.expected_speedup())

    def _min_confidence(self) -> float | None:
        """What a scored guess must reach to count (confident matchness: drafting's own stop threshold)."""
        return self.settings.swift.epsilon if self.settings.confident_matchness else None

    @property
    def phase(self) -> str:
        return "accelerate" if self.search.done else "optimize"

    def decode(self, input_ids, max_new_tokens: int = 128, sampling: SamplingParams = SamplingParams(),
               seed: int | None = None, on_step=None, **hooks) -> DecodeResult:
        """Decode one prompt of the stream (`on_step` and the `hooks` logits_transform, stop_check, eos: as
        decoding.decode's, e.g. a streamer, transformers' logits processors)."""
        if self._frozen_at is not None and len(self.records) - self._frozen_at >= self.settings.retry_after:
            self.search.reopen()  # a re-try, at retry_share of the wall time: the text may have changed
            self._frozen_at = None
        phase = self.phase
        self.search.prompt_index = len(self.records)
        pure = self._choose_lookup(sampling)
        # a prompt of pure lookup drafts nothing with a skip set: the search waits for the next gated prompt, and
        # the prompt's wall time stays out of its budget (which would otherwise be spent in a burst there)
        searching = phase == "optimize" and not pure
        if self.budget is not None and not pure:
            self.budget.open()
        self._in_prompt = True
        try:
            self._measured_this_prompt = False
            log = PassLog()
            on_step = self._noting(log, on_step)
            search = (BudgetedSearch(self.search, self.budget, self._judge, probe=self._after_verification,
                                     min_confidence=self._min_confidence())
                      if searching else None)
            result = decode(self.model, input_ids, method="swift", skip_set=self.search.best,
                            max_new_tokens=max_new_tokens, sampling=sampling, swift=self.settings.swift, seed=seed,
                            search=search, pace=self.pace, on_step=on_step, **hooks)
            if not self._pass_s and len(result.step_kinds) > 1:  # no probe ran: the prompt's mean verify pass
                self._pass_s = result.timings_s["verify"] / (len(result.step_kinds) - 1)
            if searching and self.settings.costs_after_prompt and self._wants_costs(
                    prefill_s=result.timings_s["prefill"]):
                # the prompt ended before a round was affordable: prefill a context of its size (the prompt's
                # search time, and its wall time: it was served when this is done)
                started = time.perf_counter()
                self._measure_costs(len(result.prompt_ids) + result.new_tokens // 2)
                result = result.plus(time.perf_counter() - started, "optimize")
        finally:
            self._in_prompt = False
            self.pace.pure_lookup = None  # the choice is the stream's, per prompt: it does not leak into other runs
            if self.budget is not None:
                self.budget.close()
        if self.lookup_choice is not None and sampling.greedy:
            eos = hooks.get("eos")
            self.lookup_choice.after(result.prompt_ids, result.token_ids, log, pure,
                                     eos=eos_ids(self.model) if eos is None else eos)
        record = PromptRecord(len(self.records), phase, result.new_tokens, result.wall_s, result.tokens_per_s,
                              result.mean_accepted_tokens, result.acceptance_rate, result.timings_s["optimize"],
                              self.search.best_score, result.skip_set, search_share=self.search_share,
                              verdict=self.verdict, ratio=round(self.search.best.ratio, 4),
                              expected_speedup=self.expected_speedup(),
                              lookup=None if self.lookup_choice is None else "pure" if pure else "gated")
        if phase == "accelerate":
            record.reopened = self._check_shift(result.acceptance_rate)
        else:
            self._accelerated = []
        self.records.append(record)
        if phase == "optimize" and self.verdict == DOES_NOT_PAY and not self.search.done:
            self._freeze()  # a re-try that found nothing better
        return result

    def _noting(self, log: PassLog, on_step):
        """The caller's `on_step`, after the stream's PassLog notes the step (with lookup drafts on)."""
        if self.lookup_choice is None:
            return on_step

        def noted(event):
            log.note(event)
            if on_step is not None:
                on_step(event)
        return noted

    def _choose_lookup(self, sampling: SamplingParams) -> bool:
        """Whether this prompt takes pure prompt lookup (the stream's LookupChoice; greedy only): set in the Pace."""
        reason = self.lookup_choice.reason if self.lookup_choice is not None and sampling.greedy else None
        self.pace.pure_lookup = reason
        return reason is not None

    # ----- what the search costs and whether it pays ---------------------------------------------
    @property
    def search_share(self) -> float | None:
        return self.budget.used if self.budget is not None else None

    MEASURE_ROUNDS = 3  # rounds of pass-cost samples a stream takes at most

    def _wants_costs(self, prefill_s: float = 0.0) -> bool:
        """One round of pass costs per searching prompt, while the budget allows; each candidate is valued
        by their medians."""
        if not self._costs_wanted() or self._measured_this_prompt:
            return False
        if self.budget is None:
            return len(self._cost_rounds) < self.MEASURE_ROUNDS
        # the first round as soon as it is affordable (the verdict needs it); later ones, which only refine
        # the medians, where the budget has room for a scoring step beside them
        room = self._round_s() + prefill_s + (self.budget.expected_cost() if self._cost_rounds else 0.0)
        return len(self._cost_rounds) < self.MEASURE_ROUNDS and self.budget.affords(room)

    def _costs_wanted(self) -> bool:
        return bool(self.settings.give_up or self.search.config.ratios) and not self._costs_given

    # Before they are measured, in full passes (as long as a verify pass of the running prompt): a round of
    # pass costs (one-token, 8-token, three draft passes: 4-5 on SmolLM2-135M and the lab model) and a
    # scoring step (a pass over `window` tokens: about 2 on SmolLM2 on a CPU)
    ROUND_PASSES, SCORING_PASSES = 5, 2

    def _round_s(self) -> float:
        """What a round of pass costs is expected to take: as the last ones did, or ROUND_PASSES passes."""
        if self._cost_rounds and self.costs is not None:
            return self.costs.seconds_spent / len(self._cost_rounds)
        return self.ROUND_PASSES * self._pass_s

    def _after_verification(self, run) -> None:
        """After every verification while searching: the budget's estimates from this prompt's verify
        passes, whether to draft at all (`_steer_drafting`), and once per prompt, once the search can score
        and as soon as the budget affords it (the model is warm then), a round of pass costs on the decode's
        own cache, cropped off again: no prefill paid. Until the first round is measured the budget holds its
        price in reserve: scoring steps wait rather than crowd out the round the verdict needs."""
        verify = [e.timings["verify"] for e in run.events[-16:] if "verify" in e.timings]  # the latest only:
        if verify:  # this runs after every verification
            self._pass_s = statistics.median(verify)
        if self.budget is not None:
            self.budget.unmeasured_s = self.SCORING_PASSES * self._pass_s
            self.budget.reserved_s = self._round_s() if self._costs_wanted() and not self._cost_rounds else 0.0
        self._steer_drafting()
        if len(run.tokens) > self.search.config.window and self._wants_costs():
            self._measure_costs(run.cache.get_seq_length(), run.cache)

    def _measure_costs(self, context: int, cache=None) -> None:
        self._measured_this_prompt = True
        swift = self.settings.swift
        # a compiled run's full passes are priced compiled: beside eager ones its eager drafts would look cheap
        full_forward = compiled_forward(self.model) if swift.compile else None
        started = time.perf_counter()
        self._cost_rounds += pass_cost_rounds(self.model, context, draft_dtype=swift.draft_dtype,
                                              lean=swift.lean_draft, cache=cache, full_forward=full_forward)
        seconds = time.perf_counter() - started
        if self.budget is not None:
            self.budget.spend(seconds, step=False)
        spent = (self.costs.seconds_spent if self.costs else 0.0) + seconds
        self.use_costs(costs_from_rounds(self._cost_rounds, context, self.model, seconds_spent=spent), measured=True)

    def use_costs(self, costs: PassCosts, measured: bool = False) -> None:
        """Value candidates by their expected speedup at these pass costs (given ones are never re-measured)."""
        self.costs, self._costs_given = costs, not measured
        before = self.search.best
        self.search.revalue(lambda skip_set, matchness: costs.speedup(skip_set, matchness))
        if self.search.best != before:
            self.pace.forget("skip")  # a new drafter: what the old one cost says nothing about it
        self._judge()

    def expected_speedup(self) -> float | None:
        """The best set's expected speedup over plain steps at the measured pass costs (`PassCosts.speedup`),
        rounded to 4 places; None until costs are measured and a set is scored."""
        if self.costs is None or self.search.best_score is None:
            return None
        return round(self.costs.speedup(self.search.best, self.search.best_score), 4)

    def _judge(self) -> None:
        """After each search step: does the best set beat plain steps at the measured costs?"""
        s, search = self.settings, self.search
        if not s.give_up or self.costs is None or search.best_score is None:
            return
        if search.iteration < s.judge_after:
            if self.verdict is None:
                self._judge_early()
            self._steer_drafting()
            return
        speedup, drafts = self.costs.expected_speedup(search.best, search.best_score)
        facts = (f"best set r={search.best.ratio:.2f}, matchness {search.best_score:.2f}, a draft pass "
                 f"{self.costs.draft_cost(search.best):.2f} of a full pass: expected {speedup:.2f}x "
                 f"({drafts} drafts per step) after {search.iteration} proposals")
        if speedup < s.pays_above:
            if self.verdict != DOES_NOT_PAY:
                self._give_up(f"{GIVE_UP_MESSAGE} ({facts}; it must reach {s.pays_above}x)")
        else:
            self.pace.allow("skip")  # given up on before, or hopeless while searching
            if self.verdict == DOES_NOT_PAY:
                if self.budget is not None:
                    self.budget.share = s.search_share
            self.verdict, self.verdict_reason = PAYS, f"layer skipping pays: {facts}"
            if search.since_improved >= s.patience and not search.done:
                search.stop("settled")  # the prompts after this one are the acceleration phase

    HOPELESS = "while searching: "

    def _steer_drafting(self) -> None:
        """Until a verdict, draft only with a set that may pay: not with the start set, before the search
        has scored it, once its drafts were measured slower than plain steps (StepPolicy would re-try it
        after 4, 8, 16 steps), and not with a best set expected to lose at the measured costs (StepPolicy
        re-tries each new best at once). On SmolLM2-135M each such try cost a skip draft and a wide verify
        pass, about two plain steps, for a token or two."""
        if not self.settings.give_up or self.verdict is not None:
            return
        why, pace, search, cautious = None, self.pace, self.search, self.settings.cautious
        if search.best_score is None:
            cost = pace.cost
            if "skip" in cost and "ar" in cost and pace.cheapest(("skip", "ar")) == "ar":
                why = (f"the start set drafted {cost['skip'] / cost['ar']:.2f}x the time per token of plain steps: "
                       "plain steps until the search has scored it")
            elif cautious:
                why = "no set scored yet: plain steps until the search finds one expected to pay"
        elif self.costs is not None:
            speedup = self.costs.speedup(search.best, search.best_score)
            if speedup < (self.settings.pays_above if cautious else 1.0):
                why = (f"the best set so far (matchness {search.best_score:.2f}) is expected at {speedup:.2f}x of "
                       "plain steps: plain steps until the search finds a better one")
        elif cautious:
            why = "pass costs not measured yet: plain steps until a set is expected to pay at them"
        if why is not None:
            pace.rule_out("skip", self.HOPELESS + why)
        elif pace.ruled_out.get("skip", "").startswith(self.HOPELESS):
            pace.allow("skip")

    def _judge_early(self) -> None:
        """Give up at once where even the search's typical gain in matchness would not make any set
        scored so far pay (the full verdict comes after `judge_after` proposals and can overturn this)."""
        s, costs = self.settings, self.costs
        scored = [(SkipSet(step.attention, step.mlp, self.search.num_layers), step.matchness)
                  for step in self.search.trajectory.steps if step.matchness is not None]
        if len(scored) < s.early_after:
            return
        hoped = max((costs.speedup(skip_set, m + s.search_gain * (1.0 - m)), skip_set.ratio, m)
                    for skip_set, m in scored)
        if hoped[0] < s.pays_above:
            self._give_up(f"{GIVE_UP_MESSAGE} (after {len(scored)} proposals: even closing {s.search_gain:.0%} of its gap to "
                          f"matchness 1, the most hopeful set would give {hoped[0]:.2f}x at most (r={hoped[1]:.2f}, matchness "
                          f"{hoped[2]:.2f}); it must reach {s.pays_above}x)")

    def _give_up(self, reason: str) -> None:
        self.verdict, self.verdict_reason = DOES_NOT_PAY, reason
        self.pace.rule_out("skip", reason)
        if self.budget is not None:  # re-try later, at a much smaller share of the wall time
            self.budget.share = self.settings.retry_share
        self._freeze()

    def _freeze(self) -> None:
        """Stop searching (mid-prompt too): the prompts after it are the stream's acceleration phase, with
        plain and lookup steps; after `retry_after` of them one prompt searches again."""
        if not self.search.done:
            self.search.stop(DOES_NOT_PAY)
        self._frozen_at = len(self.records) + self._in_prompt  # counted from the end of the prompt it froze in

    def ratio_choice(self) -> str | None:
        """Which skip ratio the search settled on, and why (its best set at each ratio it tried)."""
        if self.search.best_score is None:
            return None
        if self.costs is None:
            return f"r={self.search.best.ratio:.2f}: the ratio was fixed, matchness {self.search.best_score:.2f}"
        per_ratio: dict[float, tuple[float, float]] = {}
        for step in self.search.trajectory.steps:
            ratio = round((len(step.attention) + len(step.mlp)) / self.search.dims, 2)
            if step.value is not None and step.value > per_ratio.get(ratio, (-1.0, 0.0))[0]:
                per_ratio[ratio] = (step.value, step.matchness)
        others = ", ".join(f"r={r:.2f} {v:.2f}x (matchness {m:.2f})" for r, (v, m) in sorted(per_ratio.items()))
        best = self.search.best
        return (f"r={best.ratio:.2f}: the highest expected speedup, {self.costs.speedup(best, self.search.best_score):.2f}x "
                f"(matchness {self.search.best_score:.2f}, a draft pass {self.costs.draft_cost(best):.2f} of a full "
                f"pass); best per ratio tried: {others}")

    def _check_shift(self, acceptance: float) -> bool:
        s = self.settings
        self._accelerated.append(acceptance)
        if not s.reopen_on_shift or len(self._accelerated) < 2 * s.shift_patience:
            return False
        reference = statistics.mean(self._accelerated[:s.shift_patience])
        recent = statistics.mean(self._accelerated[-s.shift_patience:])
        if recent < s.shift_ratio * reference:
            self.search.reopen()
            self._accelerated = []
            return True
        return False

    def search_facts(self) -> dict:
        """What a benchmark line records of the search: its cost, its verdict, the ratio, where it started."""
        return {"search_share": self.search_share, "verdict": self.verdict, "verdict_reason": self.verdict_reason,
                "ratio": round(self.search.best.ratio, 4), "ratio_reason": self.ratio_choice(),
                "expected_speedup": self.expected_speedup(), "started_from": self.started_from,
                "iterations": self.search.iteration, "stopped_because": self.search.stopped_because,
                "lookup_reason": self.lookup_note()}

    def lookup_note(self) -> str | None:
        """With lookup drafts: how many prompts took pure prompt lookup, and the measured ratio that chose it."""
        if self.lookup_choice is None:
            return None
        pure = sum(r.lookup == "pure" for r in self.records)
        ratio = self.lookup_choice.gate_over_pure
        measured = (f": gated prompts ran {ratio:.2f}x pure lookup's price (pure above {LookupChoice.MARGIN}x)"
                    if ratio is not None else "")
        return f"pure prompt lookup on {pure} of {len(self.records)} prompts{measured}"

    def summary(self) -> dict:
        """The stream so far as a JSON-ready dict: the search's state (iterations, why it stopped, the best set
        and its matchness), the verdict and ratio with their reasons, the pass costs, and every prompt's record."""
        return {"prompts": len(self.records), "phase": self.phase, "stopped_because": self.search.stopped_because,
                "iterations": self.search.iteration,
                "bayes_iterations": sum(s.kind == "bayes" for s in self.search.trajectory.steps),
                "matchness": self.search.best_score, "skip_set": self.search.best.to_dict(),
                "search_share": self.search_share, "verdict": self.verdict, "verdict_reason": self.verdict_reason,
                "ratio": round(self.search.best.ratio, 4), "ratio_reason": self.ratio_choice(),
                "expected_speedup": self.expected_speedup(), "started_from": self.started_from,
                "pass_costs": self.costs.to_dict() if self.costs else None,
                "lookup_choice": self.lookup_choice.summary() if self.lookup_choice else None,
                "records": [asdict(r) for r in self.records]}
