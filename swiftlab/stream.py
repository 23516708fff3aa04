"""A stream of prompts served with SWIFT: the optimization phase, then the acceleration phase.

The search state lives across prompts. While it runs, every prompt is decoded with an
optimization step after each verification; once it stops (max score, tolerance or step budget)
later prompts are decoded with the frozen best set. Beyond the reference: if acceptance in the
acceleration phase falls well below what it was right after the search stopped (the task
changed), the search re-opens from the current best.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

from torch import nn

from .adapters import num_layers
from .decoding import Pace, SwiftParams, decode
from .records import DecodeResult
from .sampling import SamplingParams
from .search import SearchConfig, SkipSearch
from .skipset import SkipSet


@dataclass
class PromptRecord:
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


@dataclass
class StreamSettings:
    reopen_on_shift: bool = True
    shift_ratio: float = 0.75  # re-open when acceptance falls below this share of the reference
    shift_patience: int = 2  # prompts averaged for the reference and for the check
    swift: SwiftParams = field(default_factory=SwiftParams)


class SwiftStream:
    def __init__(self, model: nn.Module, config: SearchConfig = SearchConfig(), start: SkipSet | None = None,
                 settings: StreamSettings = StreamSettings()):
        self.model = model
        self.settings = settings
        self.search = SkipSearch(num_layers(model), config, start)
        self.records: list[PromptRecord] = []
        self._accelerated: list[float] = []  # acceptance per prompt since the search last stopped
        self.pace = Pace()  # what each kind of step costs per token, carried from prompt to prompt

    @property
    def phase(self) -> str:
        return "accelerate" if self.search.done else "optimize"

    def decode(self, input_ids, max_new_tokens: int = 128, sampling: SamplingParams = SamplingParams(),
               seed: int | None = None) -> DecodeResult:
        phase = self.phase
        self.search.prompt_index = len(self.records)
        result = decode(self.model, input_ids, method="swift", skip_set=self.search.best,
                        max_new_tokens=max_new_tokens, sampling=sampling, swift=self.settings.swift, seed=seed,
                        search=self.search if phase == "optimize" else None, pace=self.pace)
        record = PromptRecord(len(self.records), phase, result.new_tokens, result.wall_s, result.tokens_per_s,
                              result.mean_accepted_tokens, result.acceptance_rate, result.timings_s["optimize"],
                              self.search.best_score, result.skip_set)
        if phase == "accelerate":
            record.reopened = self._check_shift(result.acceptance_rate)
        else:
            self._accelerated = []
        self.records.append(record)
        return result

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

    def summary(self) -> dict:
        return {"prompts": len(self.records), "phase": self.phase, "stopped_because": self.search.stopped_because,
                "iterations": self.search.iteration,
                "bayes_iterations": sum(s.kind == "bayes" for s in self.search.trajectory.steps),
                "matchness": self.search.best_score, "skip_set": self.search.best.to_dict(),
                "records": [asdict(r) for r in self.records]}
