"""How a token is chosen from logits, shared by the drafter, the verifier and autoregressive decoding.

Drafter and verifier must turn logits into a distribution the same way (temperature, then top-k,
then top-p, the order transformers' generate() applies them), otherwise speculative sampling
would preserve the wrong distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..support import validate
from ..support.errors import SwiftlabError


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are drawn: `temperature` (0: greedy), then `top_k` (0: off), then `top_p` (1: off), in
    that order (`probabilities`). Checked on creation: a SwiftlabError for a value of the wrong type or range."""
    temperature: float = 0.0  # 0 means greedy
    top_k: int = 0  # 0 means no top-k filter
    top_p: float = 1.0  # 1 means no nucleus filter

    def __post_init__(self):
        temperature = validate.number("temperature", self.temperature)
        if temperature < 0:
            raise SwiftlabError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        top_k = validate.integer("top_k", self.top_k)
        if top_k < 0:
            raise SwiftlabError(f"top_k must be >= 0 (0 = off), got {top_k}")
        top_p = validate.number("top_p", self.top_p)
        if not 0.0 < top_p <= 1.0:
            raise SwiftlabError(f"top_p must be in (0, 1], got {top_p}")
        for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)):
            object.__setattr__(self, name, value)  # numpy scalars become Python numbers

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def probabilities(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The sampling distribution over the last axis, in float32 (rows of `logits` are independent)."""
    logits = logits.float()
    if params.greedy:
        return torch.softmax(logits, dim=-1)
    logits = logits / params.temperature
    if params.top_k and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        # drop a token when the tokens ranked above it already hold top_p of the mass
        drop_sorted = (sorted_probs.cumsum(-1) - sorted_probs) >= params.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def sample(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One token id drawn from `probs` (a 1-D tensor of probabilities) with `generator` (None: torch's global one)."""
    return int(torch.multinomial(probs, 1, generator=generator))


def choose(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """One token from one row of logits: argmax when greedy, else a sample."""
    if params.greedy:
        return int(logits.argmax())
    return sample(probabilities(logits, params), generator)
