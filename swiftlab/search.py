"""SWIFT's on-the-fly skip-set search: random proposals, a Bayesian one every β-th step.

The search only proposes and keeps score; it never runs the model itself. Each step asks for
candidates, has them scored by a caller-supplied function (in decoding: matchness on the tokens
just generated, all candidates in one batched pass), keeps the best, and records everything in a
trajectory that round-trips through JSON. That makes it easy to drive one step at a time from a
widget, and to test without a model.

Bayesian optimization uses scikit-optimize: a Gaussian process over the 2·(L−2) sub-layer
coordinates (relaxed to [0, 1]), lower confidence bound on −matchness (UCB with κ = 2.5 on
matchness), and the top-k coordinates of the suggested point as the proposal. Every evaluated
point is told to the optimizer, in one batch right before it is asked (one GP fit per β steps
instead of one per step: this keeps optimization a small share of decoding time).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from .errors import SwiftlabError
from .skipset import SkipSet, _count_for_ratio


@dataclass(frozen=True)
class SearchConfig:
    skip_ratio: float = 0.45
    bayes_interval: int = 25  # β: every β-th proposal comes from Bayesian optimization
    max_score: float = 0.93  # stop once the best matchness exceeds this
    tolerance: int = 300  # stop after this many proposals without improvement
    max_steps: int = 1000  # stop after this many proposals
    window: int = 32  # generated tokens matchness is measured on
    candidates_per_step: int = 1  # scored together in one batched pass
    kappa: float = 2.5
    seed: int = 0

    def __post_init__(self):
        if self.bayes_interval < 1 or self.max_steps < 1 or self.tolerance < 1 or self.window < 1:
            raise SwiftlabError("bayes_interval, max_steps, tolerance and window must be >= 1")
        if self.candidates_per_step < 1:
            raise SwiftlabError("candidates_per_step must be >= 1")
        if not self.max_score > 0.0:  # a matchness in (0, 1]; inf for objectives without a ceiling
            raise SwiftlabError(f"max_score must be > 0, got {self.max_score}")


@dataclass
class StepRecord:
    iteration: int  # proposal number, 0 = the starting set
    kind: str  # "start", "random" or "bayes"
    attention: list[int]
    mlp: list[int]
    matchness: float
    best: bool  # became the best so far
    best_matchness: float
    wall_s: float  # scoring time of the step this proposal was scored in
    prompt_index: int = 0


@dataclass
class Trajectory:
    num_layers: int
    config: dict
    steps: list[StepRecord] = field(default_factory=list)
    stopped_because: str | None = None

    def to_dict(self) -> dict:
        return {"num_layers": self.num_layers, "config": self.config, "stopped_because": self.stopped_because,
                "steps": [asdict(s) for s in self.steps]}

    @classmethod
    def from_dict(cls, d: dict) -> "Trajectory":
        return cls(d["num_layers"], d["config"], [StepRecord(**s) for s in d["steps"]], d.get("stopped_because"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> "Trajectory":
        return cls.from_dict(json.loads(s))


class SkipSearch:
    def __init__(self, num_layers: int, config: SearchConfig = SearchConfig(), start: SkipSet | None = None):
        self.num_layers = num_layers
        self.config = config
        self.k = _count_for_ratio(num_layers, config.skip_ratio)
        self.dims = 2 * (num_layers - 2)
        self.start = start or SkipSet.uniform(num_layers, 0.5)  # the reference's "every other layer"
        self.best: SkipSet = self.start
        self.best_score: float | None = None
        self.iteration = 0
        self.since_improved = 0
        self.trajectory = Trajectory(num_layers, asdict(config))
        self.prompt_index = 0
        self._rng = random.Random(config.seed)
        self._optimizer = None
        self._pending: tuple[list, list] = ([], [])

    # ----- state ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.trajectory.stopped_because is not None

    @property
    def stopped_because(self) -> str | None:
        return self.trajectory.stopped_because

    def reopen(self) -> None:
        """Search again (after a domain shift): keep what was learnt, forget the stop."""
        self.trajectory.stopped_because = None
        self.since_improved = 0
        self.best_score = None  # the old best's score belongs to the old domain; rescore it first

    # ----- proposals ----------------------------------------------------------------------------
    def propose(self) -> list[tuple[str, SkipSet]]:
        if self.best_score is None:  # first, (re)score the current best: the baseline to beat
            return [("start", self.best)]
        proposals = []
        for _ in range(self.config.candidates_per_step):
            number = self.iteration + len(proposals) + 1
            if number % self.config.bayes_interval == 0:
                proposals.append(("bayes", self._bayes_proposal()))
            else:
                proposals.append(("random", SkipSet.random(self.num_layers, self.config.skip_ratio,
                                                           seed=self._rng.randrange(2**32))))
        return proposals

    def _bayes_proposal(self) -> SkipSet:
        optimizer = self._ensure_optimizer()
        xs, ys = self._pending
        if xs:
            optimizer.tell(xs, ys)  # one GP fit for all points scored since the last ask
            self._pending = ([], [])
        point = optimizer.ask()
        top = sorted(range(self.dims), key=lambda j: -point[j])[:self.k]
        return SkipSet.from_coordinates(self.num_layers, top)

    def _ensure_optimizer(self):
        if self._optimizer is None:
            from skopt import Optimizer
            from skopt.space import Real

            self._optimizer = Optimizer(
                [Real(0.0, 1.0) for _ in range(self.dims)], base_estimator="GP", acq_func="LCB",
                acq_optimizer="sampling", acq_func_kwargs={"kappa": self.config.kappa},
                acq_optimizer_kwargs={"n_points": 1000}, n_initial_points=1, random_state=self.config.seed)
        return self._optimizer

    # ----- scoring ----------------------------------------------------------------------------
    def observe(self, proposals: list[tuple[str, SkipSet]], scores: list[float], wall_s: float = 0.0) -> None:
        if len(scores) != len(proposals):
            raise SwiftlabError(f"{len(proposals)} proposals but {len(scores)} scores")
        for (kind, skip_set), score in zip(proposals, scores):
            better = self.best_score is None or score > self.best_score
            if kind == "start":
                self.best_score = score
            elif better:
                self.best, self.best_score = skip_set, score
            if kind != "start":
                self.iteration += 1
                self.since_improved = 0 if better else self.since_improved + 1
            self._pending[0].append([float(v) for v in skip_set.to_mask()])
            self._pending[1].append(-float(score))
            self.trajectory.steps.append(StepRecord(
                self.iteration, kind, list(skip_set.attention), list(skip_set.mlp), float(score),
                bool(better and kind != "start"), float(self.best_score), wall_s, self.prompt_index))
        self._check_stop()

    def _check_stop(self) -> None:
        c = self.config
        if self.best_score is not None and self.best_score > c.max_score:
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
