"""Per stream of prompts: lookup gated by the skip drafter, or pure prompt lookup.

With lookup drafts on, each step of a run where the context repeats lets the skip drafter's first
token decide whether the lookup continuation is verified (drafters.GatedLookup), and offers restart
short after a miss. That pays on most text, where chance matches are common and the skip drafter is
strong; on summaries, which copy long spans of their article, pure prompt lookup (transformers' rule:
no skip drafts, 2- and 1-gram matches, 10 tokens offered every time) is faster: on the lab model 2.77x
over AR against the gate's 2.29x, and 0.4-0.7 of the gate on the other tasks (docs/measurements.md).
A per-step choice by measured cost lost (a step's yield swings with the text far more than the kinds
differ), so the choice is per prompt, learned over the stream's prompts:

Greedy output is the full model's whatever drafted it, so after a prompt decoded with the gate the
passes pure lookup would have taken to emit the same tokens are known (lookup.replay_pure_lookup),
and priced at the prompt's own median verify seconds per width (interpolated between the widths it
verified) and its own overhead per step. Where the gate's measured seconds run more than MARGIN
times that price (the median of the last RECENT gated prompts), the next prompts take pure lookup;
after RETRY of them one prompt takes the gate again (doubling up to MAX_RETRY while the re-tries
confirm pure lookup), since the search may have found a better drafter meanwhile (it searches in
gated prompts only: a pure one drafts with no skip set). Pure prompts' measured seconds over their
price calibrate the prices (on the lab model's summaries 1.00-1.16).
Sampling keeps the gate: a timing-based choice would use the generator differently from run to run.
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass, field

from ..engine.lookup import PURE_NGRAMS, PURE_TOKENS, replay_pure_lookup


def width_costs(passes: list[tuple[int, float]]) -> dict[int, float]:
    """Median seconds per verify width, from (width, seconds) of a run's passes."""
    by_width: dict[int, list[float]] = {}
    for width, seconds in passes:
        by_width.setdefault(width, []).append(seconds)
    return {width: statistics.median(s) for width, s in by_width.items()}


def priced_seconds(widths: list[int], costs: dict[int, float], per_step: float) -> float | None:
    """What passes of these verify widths cost at seconds per width `costs` (interpolated between measured
    widths, the narrowest's below it, extended along the last two above the widest), plus `per_step` each;
    None where nothing is measured."""
    if not costs:
        return None
    known = sorted(costs)
    seconds = [costs[w] for w in known]

    def cost(width: int) -> float:
        i = bisect.bisect_left(known, width)
        if i < len(known) and known[i] == width:
            return seconds[i]
        if i == 0:
            return seconds[0]
        if i == len(known):
            if len(known) == 1:
                return seconds[0]
            slope = max((seconds[-1] - seconds[-2]) / (known[-1] - known[-2]), 0.0)
            return seconds[-1] + slope * (width - known[-1])
        w0, w1, s0, s1 = known[i - 1], known[i], seconds[i - 1], seconds[i]
        return s0 + (s1 - s0) * (width - w0) / (w1 - w0)

    return sum(cost(w) for w in widths) + per_step * len(widths)


@dataclass
class PassLog:
    """What a stream notes of a prompt's passes after the prompt pass (its `on_step`): per pass its verify
    width (pending token included) and seconds, and the seconds of the whole step outside the search."""
    verify: list[tuple[int, float]] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    other_seconds: list[float] = field(default_factory=list)  # neither drafting, verifying nor searching

    def note(self, event) -> None:
        """One StepEvent (the prefill is left out)."""
        t = event.timings
        if event.kind == "prefill" or "verify" not in t:
            return
        self.verify.append((event.tree_size + 1, t["verify"]))
        self.step_seconds.append(event.seconds - t.get("optimize", 0.0))
        self.other_seconds.append(max(event.seconds - sum(t.values()), 0.0))


class LookupChoice:
    """Whether a stream's next prompt takes pure prompt lookup (`reason`, for the policy's `pure_lookup`)
    or the gate (None); `after` learns from each prompt decoded (see the module docstring)."""

    MARGIN = 1.05  # pure lookup where the gate is measured this many times its priced seconds ...
    # ... over at least this many gated prompts: one, since the first is already telling (lab model, from a cold
    # start: 1.24-1.34 on summaries, 0.5-0.93 on the other tasks) and every gated summary costs a fifth of it
    FIRST = 1
    RETRY = 2  # pure prompts before the gate is re-tried ...
    MAX_RETRY = 8  # ... doubling up to this while the re-tries confirm pure lookup
    # gated prompts whose median ratio decides: one prompt that suits the gate (the lab model's summaries have
    # one in 20 where the gate runs as fast as pure lookup) must not flip the choice back for the next ones
    RECENT = 3

    def __init__(self):
        self.pure = False  # the next prompt takes pure lookup
        self._gate_ratios: list[float] = []  # per gated prompt: its seconds over pure lookup's calibrated price
        self._calibrations: list[float] = []  # per pure prompt: its seconds over its price
        self.pure_streak = 0  # pure prompts since the last gated one
        self.interval = self.RETRY
        self.retrying = False  # the next (gated) prompt is a re-try after pure ones
        self.history: list[dict] = []  # per prompt learned from: its kind, seconds, price, ratio

    @property
    def reason(self) -> str | None:
        if not self.pure:
            return None
        return (f"the stream takes pure prompt lookup: on its prompts the skip drafter's gate ran "
                f"{self.gate_over_pure:.2f}x the time pure lookup is priced at (it must exceed {self.MARGIN}x)")

    def after(self, prompt_ids: list[int], token_ids: list[int], log: PassLog, ran_pure: bool, eos=()) -> None:
        """Learn from a greedy prompt of the stream: its tokens, its passes (`log`), and whether it `ran_pure`.
        Every pure prompt counts towards the gate's re-try, one too short to price too."""
        ratio = self._measured_ratio(prompt_ids, token_ids, log, ran_pure, eos)
        if ran_pure:
            if ratio is not None:
                self._calibrations.append(ratio)
            self.pure_streak += 1
            if self.pure_streak >= self.interval:  # the search may have found a better drafter meanwhile
                self.pure, self.retrying = False, True
            return
        if ratio is None:
            return
        self._gate_ratios.append(ratio / self.calibration)
        if len(self._gate_ratios) >= self.FIRST and self.gate_over_pure > self.MARGIN:
            confirmed = self.retrying and self._gate_ratios[-1] > self.MARGIN  # the re-try's own prompt agreed
            self.interval = min(2 * self.interval, self.MAX_RETRY) if confirmed else self.RETRY
            self.pure, self.pure_streak = True, 0
        elif self.retrying:
            self.interval = self.RETRY
        self.retrying = False

    def _measured_ratio(self, prompt_ids, token_ids, log: PassLog, ran_pure: bool, eos) -> float | None:
        """The prompt's seconds over pure lookup's price for its tokens (noted in `history`); None where it took
        fewer than two passes after the prompt's."""
        if len(log.verify) < 2:
            return None
        widths = replay_pure_lookup(prompt_ids, token_ids, PURE_TOKENS, PURE_NGRAMS, eos)
        price = priced_seconds(widths, width_costs(log.verify), statistics.median(log.other_seconds))
        seconds = sum(log.step_seconds)
        if not price or not seconds:
            return None
        ratio = seconds / price
        self.history.append({"kind": "pure" if ran_pure else "gated", "seconds": round(seconds, 5),
                             "pure_price": round(price, 5), "ratio": round(ratio, 4)})
        return ratio

    @property
    def calibration(self) -> float:
        """Pure prompts' measured seconds over their price: the median of the last RECENT (1 before any)."""
        return statistics.median(self._calibrations[-self.RECENT:]) if self._calibrations else 1.0

    @property
    def gate_over_pure(self) -> float | None:
        """Gated prompts' seconds over pure lookup's calibrated price: the median of the last RECENT."""
        return statistics.median(self._gate_ratios[-self.RECENT:]) if self._gate_ratios else None

    def summary(self) -> dict:
        """JSON-ready: the choice now, its running ratios, and what each prompt it learned from measured."""
        return {"pure": self.pure, "gate_over_pure": self.gate_over_pure, "calibration": self.calibration,
                "history": list(self.history)}
