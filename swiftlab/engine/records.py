"""Plain records of what a decoding run did; they round-trip through JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace


class JsonRecord:
    """to_json / from_json for flat dataclass records (fields are JSON types)."""

    def to_json(self) -> str:
        """The record's fields as one JSON object (`dataclasses.asdict`)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, s: str):
        """The record back from `to_json`'s text; a key that is not a field is a TypeError."""
        return cls(**json.loads(s))


@dataclass
class DecodeResult:
    """What one decoding run did: the prompt and new token ids, the skip set drafted with (SWIFT), per
    full-model pass the tokens drafted and accepted, the tree size and the kind of step, the wall time and seconds
    per phase, why it stopped, and the decoded `text` where a front end added it."""
    method: str  # "ar" or "swift"
    prompt_ids: list[int]
    token_ids: list[int]  # new tokens only
    skip_set: dict | None = None  # {"attention": [...], "mlp": [...], "num_layers": L}
    drafted_per_step: list[int] = field(default_factory=list)  # drafted tokens, per full-model pass
    accepted_per_step: list[int] = field(default_factory=list)  # drafted tokens accepted, per pass
    wall_s: float = 0.0
    # seconds: prefill (the prompt pass), draft, verify (plain steps too), optimize (search), other (the rest)
    timings_s: dict = field(default_factory=lambda: {"prefill": 0.0, "draft": 0.0, "verify": 0.0, "optimize": 0.0,
                                                     "other": 0.0})
    tree_size_per_step: list[int] = field(default_factory=list)  # nodes verified per pass (SWIFT)
    verify: str = ""  # "tree" or "chain" for SWIFT
    stop_reason: str = ""  # "eos", "max_new_tokens" or "stop_check" (a caller's stopping rule, hf.py)
    step_kinds: list[str] = field(default_factory=list)  # per full-model pass: prefill, skip, lookup or ar
    text: str | None = None

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def steps(self) -> int:
        """Full-model forward passes, prefill included; each one yields at least one token."""
        return len(self.drafted_per_step)

    @property
    def mean_accepted_tokens(self) -> float:
        """Spec-Bench's metric: new tokens per full-model pass (1.0 for autoregressive decoding)."""
        return self.new_tokens / self.steps if self.steps else 0.0

    @property
    def acceptance_rate(self) -> float:
        """Share of drafted tokens the full model accepted."""
        drafted = sum(self.drafted_per_step)
        return sum(self.accepted_per_step) / drafted if drafted else 0.0

    @property
    def drafters(self) -> dict[str, int]:
        """SWIFT's steps by kind: drafted by the "skip" model, by "lookup", or plain "ar" steps."""
        if self.method != "swift":
            return {}
        return {kind: self.step_kinds.count(kind) for kind in ("skip", "lookup", "ar")}

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.wall_s if self.wall_s else 0.0

    def plus(self, seconds: float, phase: str = "other") -> "DecodeResult":
        """This result with `seconds` more of `phase` in its wall time: work that was part of the run but
        happened outside the decode's own clock (which starts at the prompt pass)."""
        if seconds <= 0:
            return self
        timings = dict(self.timings_s)
        timings[phase] = timings.get(phase, 0.0) + seconds
        return replace(self, wall_s=self.wall_s + seconds, timings_s=timings)

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict, plus the derived numbers (new_tokens, steps,
        mean_accepted_tokens, acceptance_rate, tokens_per_s, drafters) for whoever reads the JSON."""
        d = asdict(self)
        d.update(new_tokens=self.new_tokens, steps=self.steps, mean_accepted_tokens=self.mean_accepted_tokens,
                 acceptance_rate=self.acceptance_rate, tokens_per_s=self.tokens_per_s, drafters=self.drafters)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DecodeResult":
        """A DecodeResult from `to_dict`'s output; keys that are not fields (the derived numbers)
        are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json(self) -> str:
        """`to_dict` as JSON text: the fields and the derived numbers."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> "DecodeResult":
        """A DecodeResult from `to_json`'s text (the derived numbers are ignored, see `from_dict`)."""
        return cls.from_dict(json.loads(s))
