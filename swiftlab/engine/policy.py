"""Which kind of step a decoding run takes next: the one place that chooses between the drafters.

The kinds (drafters.py): "skip" drafts with the skipping model (gated by a lookup match where the
context repeats), "lookup" verifies a lookup continuation, "plain" drafts nothing (an autoregressive
step). Every kind emits exactly the full model's tokens: the choice changes speed only. It rests on
measured seconds per emitted token of skip drafts against plain steps (see StepPolicy), and on kinds
ruled out by whoever knows they cannot pay (`rule_out`), with the reason the token stepper shows.
"""

from __future__ import annotations

from typing import NamedTuple


class Choice(NamedTuple):
    drafter: str  # "skip", "gated" (skip drafts that may give way to a lookup match), "ungated" (a lookup
    # continuation where a gated step would be taken, but a span is being copied), "lookup" or "plain"
    why: str  # in words, for the token stepper


class StepPolicy:
    """Whether drafting pays: seconds per emitted token of each kind of step ("skip" drafts, plain "ar"
    steps), from running averages. Drafting is the default; a plain step is taken only while drafting
    is measured more than MARGIN slower per token, so a poor drafter (a bad skip set, a family without
    the lean drafter) costs little, and noise does not throw a good one away: a drafted step's yield
    swings with the text, a plain step's cost hardly at all. Every PROBE steps the kind measured longest
    ago is tried instead (less often, up to every MAX_PROBE steps, while the tries keep confirming the
    choice; during plain steps drafting is re-tried after PLAIN_PROBE steps, doubling up to
    MAX_PLAIN_SPELL), so a skip set that got better (the search runs meanwhile) or text that turned
    easier is noticed.

    Where the context repeats, a lookup continuation is verified instead of a plain step (a plain step's
    price for a chance of more than one token) while lookup steps are not measured slower per token than
    plain ones, a choice made the same way between those two kinds (`_stand_in`): on a CPU a verify pass
    over 11 tokens of a 135M model costs about two plain steps, and chance 2-gram matches in a long
    prompt then halve the speed (SmolLM2-135M, Spec-Bench summarization); where skip drafting is chosen the skip drafter's first
    token decides whether the lookup continuation is verified (drafters.GatedLookup). Always taking the
    lookup lost where the drafter is strong and 2-gram matches are chance; choosing lookup by measured
    cost per kind lost everywhere (a step's yield swings with the text far more than the kinds differ).
    Where the last lookup continuation was accepted whole (`copying`: a span is being copied) the next
    one is verified without the gate ("ungated"): its draft pass is wasted on a copied span. After a
    partial acceptance the gate stays: on the lab model's reasoning, chance matches whose first token
    is right are common, and the skip drafter beats them there.
    Sampling never takes a plain step and always verifies a lookup match: a timing-based choice would
    use the generator differently run to run, and a seeded run must repeat exactly.

    A stream may choose pure prompt lookup for a prompt (`pure_lookup`, its reason; greedy only): no skip
    drafts, lookup steps or plain ones as where skip drafting is ruled out, and the lookup drafter offers
    transformers' way (drafters.LookupDrafter). It is the stream's choice, made from its prompts
    (search/lookupchoice.py); within a run the gate's per-step choice stays as above.

    Verify passes are timed per width too (`verify_took`): `long_offers` says whether a lookup offer
    after a miss may hold 7 tokens rather than 3 (drafters.LookupDrafter): where a verify pass over 8
    tokens is measured at most LONG_OFFER times one over 4 (the lab model on a CPU: about 1.2; SmolLM2
    there: about 1.5, the few-token products table of docs/measurements.md), greedy only."""

    PROBE = 12  # steps between tries of the other kind ...
    MAX_PROBE = 96  # ... doubling up to this while the tries keep confirming the cheapest kind
    PLAIN_PROBE = 4  # while plain steps are taken, drafting is re-tried after this many, doubling ...
    MAX_PLAIN_SPELL = 24  # ... up to this
    WEIGHT = 0.3  # of the newest step in the running average
    MARGIN = 1.1  # plain steps only when drafting costs more than this many times as much per token
    LONG_OFFER = 1.3  # lookup offers restart at 7 tokens where verifying 8 costs at most this many times 4

    def __init__(self):
        self.sums: dict[str, tuple[float, float]] = {}  # kind -> running (seconds, tokens) per step
        self.measured_at: dict[str, int] = {}
        self.steps = 0
        self.interval = self.PROBE
        self.next_probe = 2  # a fresh policy measures plain steps at once, then every PROBE steps
        self._probe: tuple | None = None  # (kinds, the cheapest before the try) while a try is out
        self.ruled_out: dict[str, str] = {}  # kind ("skip", "lookup", "ar") -> why it is never chosen
        self._stand_in: StepPolicy | None = None  # lookup vs plain, where lookup stands in for a plain step
        self.verify_seconds: dict[int, float] = {}  # verify width (tokens) -> running seconds of its passes
        self.pure_lookup: str | None = None  # why the stream takes pure prompt lookup now (greedy), else None

    @classmethod
    def plain_only(cls, why: str) -> "StepPolicy":
        """A policy that only ever takes plain steps (autoregressive decoding)."""
        policy = cls()
        policy.rule_out("skip", why)
        policy.rule_out("lookup", why)
        return policy

    def rule_out(self, kind: str, reason: str) -> None:
        """Never choose `kind` ("skip", "lookup" or "ar") until `allow(kind)`; `reason` is shown for the
        steps taken instead."""
        self.ruled_out[kind] = reason

    def allow(self, kind: str) -> None:
        """Undo `rule_out(kind)`: `kind` may be chosen again (nothing happens where it was not ruled out)."""
        self.ruled_out.pop(kind, None)

    def choose(self, *, lookup: bool, greedy: bool, fallback: bool, copying: bool = False) -> Choice:
        """The drafter for the next step. `lookup`: a lookup continuation is on offer; `fallback`: plain
        steps may be taken while drafting is measured slower; `copying`: the last lookup continuation was
        accepted whole."""
        lookup = lookup and "lookup" not in self.ruled_out
        timed = greedy and fallback and "ar" not in self.ruled_out  # may a measured cost choose plain steps?
        no_skip = self.ruled_out.get("skip") or (self.pure_lookup if greedy else None)
        if no_skip:
            return self._lookup_or_plain(no_skip, timed) if lookup else Choice("plain", no_skip)
        if not greedy:
            return (Choice("lookup", "when sampling a lookup match is always verified") if lookup else
                    Choice("skip", "when sampling every step drafts (a seeded run repeats exactly)"))
        if fallback and "ar" not in self.ruled_out:
            kind = self.pick(("skip", "ar"))
            why = self.explain(kind)
        else:
            kind, why = "skip", self.ruled_out.get("ar", "the plain-step fallback is off")
        if kind == "ar":
            return self._lookup_or_plain(why, timed) if lookup else Choice("plain", why)
        if lookup and copying:
            return Choice("ungated", f"{why}; the last lookup continuation was accepted: this one is verified "
                                     "without the drafter's say")
        return Choice("gated" if lookup else "skip", why)

    def _lookup_or_plain(self, why_plain: str, timed: bool) -> Choice:
        """Where a plain step would be taken and the context repeats: its lookup continuation is verified,
        unless (`timed`) lookup steps are measured slower per token than plain ones."""
        if not timed:
            return Choice("lookup", f"{why_plain}; the context repeats: its lookup continuation is verified")
        if self._stand_in is None:
            self._stand_in = StepPolicy()
        stand_in = self._stand_in
        kind = stand_in.pick(("lookup", "ar"))
        cost = stand_in.cost
        measured = (f"lookup steps measured {cost['lookup'] / cost['ar']:.2f}x the time per token of plain steps"
                    if "lookup" in cost and "ar" in cost else "lookup steps not measured against plain ones yet")
        if kind == "ar":
            return Choice("plain", f"{why_plain}; the context repeats, but {measured}")
        return Choice("lookup", f"{why_plain}; the context repeats: its lookup continuation is verified ({measured})")

    def took(self, drafter: str, seconds: float, tokens: int) -> None:
        """What a step of `drafter` cost: skip drafts (gated or not, and the ungated lookups that stand in for
        gated steps) and plain steps are measured for the choice between drafting and plain steps; lookup
        and plain steps for the choice between them."""
        # ungated lookups count as drafting, as the gated steps they replace did: left out, drafting is
        # measured on its hardest steps only and loses to plain steps (4-5 times as many on the lab model)
        kind = {"skip": "skip", "gated": "skip", "ungated": "skip", "plain": "ar"}.get(drafter)
        if kind is not None:
            self.record(kind, seconds, tokens)
        if self._stand_in is not None and drafter in ("lookup", "plain"):
            self._stand_in.record("lookup" if drafter == "lookup" else "ar", seconds, tokens)

    def verify_took(self, width: int, seconds: float) -> None:
        """A verify pass over `width` tokens (the pending one included) took `seconds`."""
        old = self.verify_seconds.get(width)
        self.verify_seconds[width] = seconds if old is None else (1 - self.WEIGHT) * old + self.WEIGHT * seconds

    def long_offers(self, greedy: bool, short: int = 3, long: int = 7) -> bool:
        """Whether a lookup offer after a miss may hold `long` tokens rather than `short`: greedy only, and only
        once a verify pass over long + 1 tokens is measured at most LONG_OFFER times one over short + 1."""
        narrow, wide = self.verify_seconds.get(short + 1), self.verify_seconds.get(long + 1)
        return greedy and narrow is not None and wide is not None and wide <= self.LONG_OFFER * narrow

    @property
    def cost(self) -> dict[str, float]:
        """Seconds per emitted token, per measured kind."""
        return {kind: seconds / tokens for kind, (seconds, tokens) in self.sums.items()}

    def cheapest(self, kinds) -> str:
        """Of the measured `kinds`, the one a choice between them takes now (plain steps weighed by MARGIN)."""
        cost = self.cost
        weighed = {k: cost[k] * (self.MARGIN if k == "ar" else 1.0) for k in kinds if k in cost}
        return min(weighed, key=weighed.get)

    def pick(self, kinds: tuple[str, ...]) -> str:
        """Which of `kinds` to take next, counting one step: an unmeasured kind other than "ar" first, then
        the `cheapest`, except when a re-try of the kind measured longest ago is due (see the class docstring)."""
        self.steps += 1
        untried = [k for k in kinds if k not in self.sums and k != "ar"]
        if untried:
            return untried[0]
        best = self.cheapest(kinds)
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
        """Fold one step of `kind` (its `seconds`, and `tokens` emitted, counted as at least 1) into the
        running averages; after a re-try, the next one comes later if it confirmed the cheapest kind, else soon."""
        # Running averages of seconds and of tokens per step, and their ratio: a mean of per-step ratios
        # would overweight the steps that yield one token and make drafting look worse than it is.
        weight = 0.5 if self._probe is not None else self.WEIGHT  # a rare try weighs more
        old, new = self.sums.get(kind), (seconds, float(max(tokens, 1)))
        self.sums[kind] = new if old is None else tuple((1 - weight) * o + weight * n for o, n in zip(old, new))
        self.measured_at[kind] = self.steps
        if self._probe is not None:  # a try: back off while it confirms the cheapest, else look often again
            kinds, best = self._probe
            now = self.cheapest(kinds)
            # while plain steps are taken drafting is re-tried sooner: one unlucky draft (a yield of 1) must
            # not cost a dozen plain steps, and a plain step's cost needs no re-measuring
            first, limit = (self.PLAIN_PROBE, self.MAX_PLAIN_SPELL) if now == "ar" else (self.PROBE, self.MAX_PROBE)
            self.interval = min(2 * self.interval, limit) if now == best else first
            self.next_probe = self.steps + self.interval
            self._probe = None


Pace = StepPolicy  # the name streams and tests have used
