"""SWIFT's on-the-fly skip-set search: random proposals, a Bayesian one every β-th step.

The search only proposes and keeps score; it never runs the model itself. Each step asks for
candidates, has them scored by a caller-supplied function (in decoding: matchness on the tokens
just generated, all candidates in one batched pass), keeps the best, and records everything in a
trajectory that round-trips through JSON. That makes it easy to drive one step at a time from a
widget, and to test without a model.

What "best" means: matchness, as in the paper, unless the caller gives the search a `value`
function (the stream does: budget.PassCosts.expected_speedup), which turns a candidate's matchness
into the speedup it is expected to give at its measured draft cost, so that sets of different skip
ratios compare fairly (KnapSpec's point: maximize tokens per second, not agreement). With
`SearchConfig(ratios=...)` the proposals are drawn at those ratios instead of one fixed ratio.

Bayesian proposals: a Gaussian process over the 2·(L−2) binary sub-layer coordinates (an
exponential kernel on the Hamming distance, fixed length scale) fitted to a bounded history (the
best and the most recent points), and the candidate with the highest upper confidence bound
(κ = 2.5) among a pool of random and neighbouring sets. scikit-optimize's GP re-fitted 57 kernel
length scales by L-BFGS over the whole, growing history at every ask, which made a search slower
prompt after prompt; this fit costs the same small amount at every step.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Callable

from ..support.errors import SwiftlabError
from ..engine.skipset import SkipSet, _count_for_ratio


RATIOS = (0.15, 0.25, 0.35, 0.45, 0.55)  # what a stream searches when the ratio is not fixed


@dataclass(frozen=True)
class SearchConfig:
    """How a `SkipSearch` proposes and when it stops: the skip ratio (or `ratios` to search several), every
    `bayes_interval`-th proposal from the Gaussian process, the stop rules (`max_score`, `settle`, `tolerance`,
    `max_steps`, counted in proposals), and the `window` of generated tokens matchness is measured on."""
    skip_ratio: float = 0.45
    bayes_interval: int = 25  # β: every β-th proposal comes from Bayesian optimization
    max_score: float = 0.93  # stop once the best matchness exceeds this (valued by speed: see settle)
    settle: int = 16  # valued by expected speed: stop once the best set's matchness exceeds max_score and
    # this many proposals since did not beat its value (a higher ratio had its chances)
    tolerance: int = 300  # stop after this many proposals without improvement
    max_steps: int = 1000  # stop after this many proposals
    window: int = 32  # generated tokens matchness is measured on
    candidates_per_step: int = 1  # scored together in one batched pass
    kappa: float = 2.5
    seed: int = 0
    ratios: tuple = ()  # skip ratios proposals are drawn at; empty: skip_ratio only
    history: int = 64  # points the Gaussian process is fitted to (half the best, half the most recent)

    def __post_init__(self):
        if self.bayes_interval < 1 or self.max_steps < 1 or self.tolerance < 1 or self.window < 1:
            raise SwiftlabError("bayes_interval, max_steps, tolerance and window must be >= 1")
        if self.candidates_per_step < 1:
            raise SwiftlabError("candidates_per_step must be >= 1")
        if any(not isinstance(r, (int, float)) or not 0.0 < r < 1.0 for r in self.ratios):
            raise SwiftlabError(f"ratios must be numbers between 0 and 1, got {list(self.ratios)}")
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        if self.history < 2:
            raise SwiftlabError("history must be >= 2")
        if not self.max_score > 0.0:  # a matchness in (0, 1]; inf for objectives without a ceiling
            raise SwiftlabError(f"max_score must be > 0, got {self.max_score}")


@dataclass
class StepRecord:
    """One scored proposal of a search: its number and kind ("start", "random", "bayes"), its skipped
    attention and MLP layers, its matchness, whether it became the best, the best so far, and the scoring
    time (seconds) of the step it was scored in; `value`/`best_value` only where the search is valued by `value`."""
    iteration: int  # proposal number, 0 = the starting set
    kind: str  # "start", "random" or "bayes"
    attention: list[int]
    mlp: list[int]
    matchness: float
    best: bool  # became the best so far
    best_matchness: float
    wall_s: float  # scoring time of the step this proposal was scored in
    prompt_index: int = 0
    value: float | None = None  # what the search maximizes (expected speedup), where not matchness
    best_value: float | None = None


@dataclass
class Trajectory:
    """Everything a `SkipSearch` scored, in order (`steps`), with its layer count, config (as a dict) and
    why it stopped (None while it runs); round-trips through JSON (`to_json`, `from_json`)."""
    num_layers: int
    config: dict
    steps: list[StepRecord] = field(default_factory=list)
    stopped_because: str | None = None

    def to_dict(self) -> dict:
        """The trajectory as a JSON-ready dict, steps as dicts of their fields (`from_dict` reads it back)."""
        return {"num_layers": self.num_layers, "config": self.config, "stopped_because": self.stopped_because,
                "steps": [asdict(s) for s in self.steps]}

    @classmethod
    def from_dict(cls, d: dict) -> "Trajectory":
        """The trajectory from a `to_dict` dict (a missing `stopped_because` reads as still running)."""
        return cls(d["num_layers"], d["config"], [StepRecord(**s) for s in d["steps"]], d.get("stopped_because"))

    def to_json(self) -> str:
        """The trajectory as a JSON string (`to_dict`), e.g. to save a search and replay it in a widget."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> "Trajectory":
        """The trajectory from a `to_json` string."""
        return cls.from_dict(json.loads(s))


class SkipSearch:
    """SWIFT's skip-set search over a `num_layers`-layer model (see the module docstring), driven one `step`
    at a time (or by `propose` and `observe`) by a caller that scores the candidates. It starts from `start`
    (default: every other layer); `best` is the best set so far, `best_score` its matchness (None until scored)."""
    def __init__(self, num_layers: int, config: SearchConfig = SearchConfig(), start: SkipSet | None = None,
                 value: Callable[[SkipSet, float], float] | None = None):
        self.num_layers = num_layers
        self.config = config
        self.k = _count_for_ratio(num_layers, config.skip_ratio)
        self.counts = sorted({_count_for_ratio(num_layers, r) for r in config.ratios} or {self.k})
        self.dims = 2 * (num_layers - 2)
        self.start = start or SkipSet.uniform(num_layers, 0.5)  # the reference's "every other layer"
        self.best: SkipSet = self.start
        self.best_score: float | None = None  # the best set's matchness
        self.best_value: float | None = None  # and what the search maximizes (matchness without `value`)
        self.value = value  # (skip set, matchness) -> the objective, e.g. expected speedup
        self.iteration = 0
        self.since_improved = 0
        self.trajectory = Trajectory(num_layers, {**asdict(config), "ratios": list(config.ratios)})  # as JSON has it
        self.prompt_index = 0
        self._rng = random.Random(config.seed)
        self.batch = config.candidates_per_step  # candidates per step (a budgeted stream tunes it: budget.py)
        self.batch_costs: dict[int, list[float]] = {}  # batch size -> measured seconds per candidate
        self._scored: dict[tuple, float] = {}  # mask -> objective, every point scored (the GP's data)
        self._recent: list[tuple] = []

    # ----- state ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.trajectory.stopped_because is not None

    @property
    def stopped_because(self) -> str | None:
        return self.trajectory.stopped_because

    def stop(self, reason: str) -> None:
        """End the search, with `reason` as its `stopped_because` (the stream's: "stored", "settled",
        "does not pay"); `reopen` undoes it."""
        self.trajectory.stopped_because = reason

    def reopen(self) -> None:
        """Search again (after a domain shift): keep what was learnt, forget the stop."""
        self.trajectory.stopped_because = None
        self.since_improved = 0
        self.best_score = self.best_value = None  # the old best's score belongs to the old domain; rescore it first

    def revalue(self, value: Callable[[SkipSet, float], float]) -> None:
        """Value every point scored so far (and later ones) by `value`; the best is the best by it."""
        self.value = value
        self._scored.clear()
        best = None
        for step in self.trajectory.steps:  # a set scored twice (the start, rescored) counts as last scored
            skip_set = SkipSet(tuple(step.attention), tuple(step.mlp), self.num_layers)
            step.value = self.objective(skip_set, step.matchness)
            self._scored[tuple(skip_set.to_mask())] = step.value
            if best is None or step.value > best[0]:
                best = (step.value, skip_set, step.matchness)
            step.best_value = best[0]
        if best is not None:
            self.best_value, self.best, self.best_score = best[0], best[1], best[2]

    def objective(self, skip_set: SkipSet, matchness: float) -> float:
        """What the search maximizes for a set of this matchness: `value(skip_set, matchness)` where the
        search has a `value` function (expected speedup), else the matchness itself."""
        return float(self.value(skip_set, matchness)) if self.value is not None else float(matchness)

    # ----- proposals ----------------------------------------------------------------------------
    def propose(self) -> list[tuple[str, SkipSet]]:
        """The next candidates as (kind, skip set) pairs: while the best is unscored only ("start", best),
        else `batch` proposals, random at the searched ratios, every `bayes_interval`-th one from the GP."""
        if self.best_score is None:  # first, (re)score the current best: the baseline to beat
            return [("start", self.best)]
        proposals = []
        for _ in range(self.batch):
            number = self.iteration + len(proposals) + 1
            taken = {tuple(s.to_mask()) for _, s in proposals}
            if number % self.config.bayes_interval == 0:
                proposals.append(("bayes", self._bayes_proposal(taken)))
            else:
                proposals.append(("random", self._random_set(self._rng.choice(self.counts))))
        return proposals

    def _random_set(self, count: int) -> SkipSet:
        return SkipSet.from_coordinates(self.num_layers, self._rng.sample(range(self.dims), count))

    def _bayes_proposal(self, taken=()) -> SkipSet:
        """The pool candidate with the highest upper confidence bound under a GP fitted to the history."""
        xs, ys = self._history()
        pool = [m for m in self._pool() if m not in self._scored and m not in taken]
        if not pool:
            return self._random_set(self._rng.choice(self.counts))
        mean, std = gp_posterior(xs, ys, pool)
        ucb = [m + self.config.kappa * s for m, s in zip(mean, std)]
        best = max(range(len(pool)), key=ucb.__getitem__)
        return SkipSet.from_coordinates(self.num_layers, [j for j, v in enumerate(pool[best]) if v])

    def _history(self) -> tuple[list[tuple], list[float]]:
        """The best half and the most recent half of the scored points: a fit of bounded cost."""
        half = self.config.history // 2
        ranked = sorted(self._scored, key=self._scored.get, reverse=True)[:half]
        chosen = list(dict.fromkeys(ranked + self._recent[-half:]))
        return chosen, [self._scored[m] for m in chosen]

    def _pool(self, size: int = 256) -> list[tuple]:
        """Random sets at the searched ratios, and the best set's neighbours (one sub-layer swapped,
        added or dropped)."""
        pool = [tuple(self._random_set(self._rng.choice(self.counts)).to_mask()) for _ in range(size // 2)]
        best = list(self.best.to_mask())
        on = [j for j, v in enumerate(best) if v]
        off = [j for j, v in enumerate(best) if not v]
        for _ in range(size // 2):
            m = list(best)
            move = self._rng.random()
            if on and off and (move < 0.6 or len(self.counts) == 1):
                m[self._rng.choice(on)], m[self._rng.choice(off)] = 0, 1
            elif off and move < 0.8 and sum(m) < max(self.counts):
                m[self._rng.choice(off)] = 1
            elif on and sum(m) > min(self.counts):
                m[self._rng.choice(on)] = 0
            if sum(m) in self.counts:  # at a searched ratio only
                pool.append(tuple(m))
        return list(dict.fromkeys(pool))

    # ----- scoring ----------------------------------------------------------------------------
    def observe(self, proposals: list[tuple[str, SkipSet]], scores: list[float], wall_s: float = 0.0) -> None:
        """Record the matchness `scores` of `proposals` (as `propose` returned them, in order), scored in
        `wall_s` seconds: keep the best by `objective`, extend the trajectory, and stop where a stop rule is met.
        Raises SwiftlabError when the counts differ."""
        if len(scores) != len(proposals):
            raise SwiftlabError(f"{len(proposals)} proposals but {len(scores)} scores")
        for (kind, skip_set), score in zip(proposals, scores):
            value = self.objective(skip_set, score)
            better = self.best_value is None or value > self.best_value
            if kind == "start":
                self.best_score, self.best_value = float(score), value
            elif better:
                self.best, self.best_score, self.best_value = skip_set, float(score), value
            if kind != "start":
                self.iteration += 1
                self.since_improved = 0 if better else self.since_improved + 1
            mask = tuple(skip_set.to_mask())
            self._scored[mask] = value
            self._recent.append(mask)
            del self._recent[:-self.config.history]
            self.trajectory.steps.append(StepRecord(
                self.iteration, kind, list(skip_set.attention), list(skip_set.mlp), float(score),
                bool(better and kind != "start"), float(self.best_score), wall_s, self.prompt_index,
                value if self.value is not None else None, self.best_value if self.value is not None else None))
        self._check_stop()

    def _check_stop(self) -> None:
        c = self.config
        # a matchness ceiling alone says little about speed once the ratio is free (a low ratio reaches it
        # easily): valued by speed, the search also waits `settle` proposals for a better-paying set
        ceiling = self.best_score is not None and self.best_score > c.max_score
        if ceiling and (self.value is None or self.since_improved >= c.settle):
            self.trajectory.stopped_because = "max_score"
        elif self.since_improved >= c.tolerance:
            self.trajectory.stopped_because = "tolerance"
        elif self.iteration >= c.max_steps:
            self.trajectory.stopped_because = "max_steps"

    def step(self, score: Callable[[list[SkipSet]], list[float]]) -> list[StepRecord]:
        """One optimization step: propose, score (all candidates at once), keep the best."""
        if self.done:
            return []
        proposals = self.propose()
        started = time.perf_counter()
        scores = score([s for _, s in proposals])
        self.observe(proposals, scores, time.perf_counter() - started)
        return self.trajectory.steps[-len(proposals):]


def gp_posterior(xs: Sequence[Sequence[float]], ys: Sequence[float], points: Sequence[Sequence[float]],
                 length: float | None = None, noise: float = 1e-2) -> tuple[list[float], list[float]]:
    """Mean and standard deviation at `points` of a Gaussian process fitted to (xs, ys): binary vectors,
    kernel exp(-hamming / length) (length: a quarter of the dimensions), targets standardized."""
    import numpy as np

    x, p = np.asarray(xs, dtype=float), np.asarray(points, dtype=float)
    y = np.asarray(ys, dtype=float)
    if len(y) == 0:
        return [0.0] * len(p), [1.0] * len(p)
    length = length or max(x.shape[1] / 4, 1.0)
    mu, sd = y.mean(), y.std() or 1.0
    kernel = lambda a, b: np.exp(-np.abs(a[:, None, :] - b[None, :, :]).sum(-1) / length)
    k = kernel(x, x) + noise * np.eye(len(x))
    chol = np.linalg.cholesky(k)
    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, (y - mu) / sd))
    cross = kernel(p, x)
    v = np.linalg.solve(chol, cross.T)
    var = np.clip(1.0 - (v * v).sum(0), 1e-12, None)
    return list(mu + sd * cross @ alpha), list(sd * np.sqrt(var))
