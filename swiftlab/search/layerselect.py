"""Per-step layer selection (CLaSp's idea, ACL 2025): choose the skip set from the context itself.

SWIFT searches one skip set over a stream of prompts. CLaSp instead re-chooses it after a verification,
from the full model's own hidden states on the tokens just verified, so there is no search phase and
no cold start. The choice is a dynamic programme over the 2·L sub-layers (attention and MLP apart):

  g[b][j] = the residual stream after sub-layer b with j of the sub-layers so far skipped, the one of
            {run sub-layer b on g[b-1][j], skip it and keep g[b-1][j-1]} closer (cosine, averaged over
            the window's tokens) to the full model's stream g[b][0].

Row j = 0 is the full model itself, so its states are the targets; all rows of one sub-layer go
through it as one batch, so a selection costs about one pass of the layer stack over (budget + 1) ×
window tokens, not one pass per candidate. The programme is approximate (the state closest now need not
lead to the closest at the end); on additive toy layers it is exact (tests/test_layerselect.py).

Attention rows read the full model's KV entries of the positions before the window, from the decoding
cache, exactly as a drafter with that skip set would, and their own keys within the window. The
arithmetic is leandraft.py's (same matrices, same draft precision), so it is offered for the families
that drafter serves (Adapter.lean_draft); elsewhere `LayerSelector` says so. The output never depends
on it: verification keeps every token the full model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.adapters import adapter_for, num_layers
from ..support.errors import SwiftlabError
from ..engine.leandraft import LeanDrafter, check_draft_dtype, lean_drafter
from ..engine.skipset import SkipSet, _count_for_ratio
from ..support import validate


@dataclass(frozen=True)
class SelectParams:
    """How a `LayerSelector` chooses: the skip ratio, the `window` of last tokens matched, how often it
    re-selects (`every` skip-drafted verifications, or sooner after one accepting under `poor` of its draft),
    and the precision of the matrices it reads."""
    ratio: float = 0.45  # sub-layers skipped, as a share of the 2·(L−2) middle ones
    window: int = 4  # the last tokens of the context the selection matches the full model on
    # re-select after this many skip-drafted verifications (1: after each, as CLaSp); the first selection is
    # right after the prompt pass. On a CPU a selection costs about a full pass or two, and the set chosen
    # for a prompt keeps most of its acceptance for many steps (CLaSp's "sparse persistence")
    every: int = 16
    # ... and sooner, after a verification that accepted less than this share of its draft (0: never sooner)
    poor: float = 0.0
    # precision of the matrices read (leandraft.draft_dtype): the model's own; a float16 copy is the drafter's
    # gain for one token, but a product over many rows in float16 is much slower on a CPU
    draft_dtype: str = "model"

    def __post_init__(self):
        object.__setattr__(self, "ratio", validate.number("ratio", self.ratio, 0.0, 1.0, low_open=True))
        object.__setattr__(self, "window", validate.integer("window", self.window, 1))
        object.__setattr__(self, "every", validate.integer("every", self.every, 1))
        object.__setattr__(self, "poor", validate.number("poor", self.poor, 0.0, 1.0))
        check_draft_dtype(self.draft_dtype)


@dataclass
class Choice:
    """What the dynamic programme found: the skipped sub-layers (block b: layer b // 2, attention when
    b is even) and, per number of skipped sub-layers j, the final cosine similarity to the full model."""
    skipped: list[int]
    similarity: list[float]


def choose_skips(start: torch.Tensor, apply_block: Callable[[int, torch.Tensor], torch.Tensor],
                 blocks: int, skippable: set[int], budget: int) -> Choice:
    """The dynamic programme. `start` [T, d] is the residual stream entering block 0; `apply_block(b, rows)`
    maps rows [R, T, d] to the stream after block b ran on each; `budget` sub-layers of `skippable` are skipped."""
    rows = start.unsqueeze(0)  # row j: the best state so far with j sub-layers skipped
    came_by_skipping = []  # per block: for each row after it, whether it came from skipping the block
    for b in range(blocks):
        ran = apply_block(b, rows)
        if b not in skippable:
            rows = ran
            came_by_skipping.append([False] * len(ran))
            continue
        # row j either ran the block, or skipped it from row j - 1; row 0 (the full model) always runs it
        kept = torch.cat([ran[:1], rows[:-1]])
        take_skip = _similarity(kept, ran[0]) > _similarity(ran, ran[0])
        take_skip[0] = False
        rows_next = torch.where(take_skip.view(-1, 1, 1), kept, ran)
        if len(rows) <= budget:  # one more skipped than any row so far: only by skipping this block
            rows_next = torch.cat([rows_next, rows[-1:]])
            take_skip = torch.cat([take_skip, take_skip.new_ones(1)])
        rows = rows_next
        came_by_skipping.append(take_skip.tolist())
    if len(rows) <= budget:
        raise SwiftlabError(f"cannot skip {budget} sub-layers: only {len(rows) - 1} may be skipped")
    skipped, j = [], budget
    for b in reversed(range(blocks)):
        if came_by_skipping[b][j]:
            skipped.append(b)
            j -= 1
    return Choice(sorted(skipped), _similarity(rows, rows[0]).tolist())


def _similarity(rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each row [R, T, d] to the target [T, d], averaged over the tokens: [R]."""
    return F.cosine_similarity(rows.float(), target.float().unsqueeze(0), dim=-1).mean(-1)


def skip_set_from_blocks(skipped: list[int], layers: int) -> SkipSet:
    """The `SkipSet` of a `Choice`'s skipped sub-layers on a `layers`-layer model: block b is layer b // 2,
    its attention where b is even, its MLP where b is odd."""
    return SkipSet(tuple(b // 2 for b in skipped if b % 2 == 0), tuple(b // 2 for b in skipped if b % 2 == 1), layers)


class LeanBlocks:
    """Sub-layers of a Llama-like model run on many rows at once, for `choose_skips`: the arithmetic of
    leandraft.LeanDrafter (its matrices, norms and rotary angles) on [R, T, d] states of T consecutive
    tokens at positions start.., attending to a cache's first `start` positions and causally to their own."""

    def __init__(self, drafter: LeanDrafter, cache, tokens: list[int], start: int):
        self.d = drafter
        self.cache, self.start = cache, start
        device = drafter.embed.device
        positions = torch.arange(start, start + len(tokens), device=device)
        cos, sin = drafter.rotary(drafter.embed[:1], positions.unsqueeze(0))
        self.cos, self.sin = cos[0].unsqueeze(1), sin[0].unsqueeze(1)  # [T, 1, D]: broadcast over heads
        self.tokens = torch.tensor(tokens, device=device)

    def embeddings(self) -> torch.Tensor:
        """The window's token embeddings [T, d]: the residual stream entering block 0, `choose_skips`' `start`."""
        return self.d.embed[self.tokens]

    def __call__(self, b: int, rows: torch.Tensor) -> torch.Tensor:
        layer, w = b // 2, self.d.layers[b // 2]
        R, T, width = rows.shape
        flat = rows.reshape(R * T, width)
        if b % 2:
            gate, up = w.gate_up(self.d._norm(w.norm2, flat))
            return (flat + w.down(w.act(gate) * up)[0]).view(R, T, width)
        return (flat + w.o(self._attention(layer, w, self.d._norm(w.norm1, flat), R, T))[0]).view(R, T, width)

    def _attention(self, layer: int, w, x: torch.Tensor, R: int, T: int) -> torch.Tensor:
        """Attention for R rows of T tokens: each row attends to the cached prefix (the full model's
        keys, shared) and causally to its own T keys; softmax over both parts at once."""
        d = self.d
        H, KV, D = d.heads, d.kv_heads, d.head_dim
        group = H // KV
        q, k, v = w.qkv(x)
        q = self._rotate(q.view(R, T, H, D)).view(R, T, KV, group, D).permute(2, 3, 0, 1, 4)  # [KV, g, R, T, D]
        k = self._rotate(k.view(R, T, KV, D)).permute(2, 0, 1, 3)  # [KV, R, T, D]
        v = v.view(R, T, KV, D).permute(2, 0, 1, 3)
        past = self.cache.layers[layer]
        past_k, past_v = past.keys[0, :, :self.start], past.values[0, :, :self.start]  # [KV, P, D]
        shared = (q.reshape(KV, group * R * T, D) @ past_k.transpose(1, 2)).view(KV, group, R, T, self.start)
        own = torch.einsum("kgrtd,krsd->kgrts", q, k).masked_fill(self._future(T, x.device), float("-inf"))
        weights = torch.softmax(torch.cat([shared, own], dim=-1) * w.scale, dim=-1)
        out = (weights[..., :self.start].reshape(KV, group * R * T, self.start) @ past_v).view(KV, group, R, T, D)
        out = out + torch.einsum("kgrts,krsd->kgrtd", weights[..., self.start:], v)
        return out.permute(2, 3, 0, 1, 4).reshape(R * T, H * D)

    def _rotate(self, t: torch.Tensor) -> torch.Tensor:
        return t * self.cos + (t @ self.d.rotate) * self.sin

    @staticmethod
    def _future(T: int, device) -> torch.Tensor:
        return torch.ones(T, T, dtype=torch.bool, device=device).triu(1)


class LayerSelector:
    """Chooses the drafter's skip set after verifications (see the module docstring); the decoding engine
    calls `after_step` once a pass's tokens are emitted (`decode(..., selector=...)`)."""

    def __init__(self, model: nn.Module, params: SelectParams = SelectParams()):
        if not isinstance(params, SelectParams):
            raise SwiftlabError(f"params must be SelectParams, got {type(params).__name__}")
        adapter = adapter_for(model)
        if not adapter.lean_draft:
            raise SwiftlabError(f"per-step layer selection runs on Llama-like layers (llama, mistral, qwen2); "
                                f"{adapter.family} is not one: use a skip set or a search instead")
        self.model, self.params = model, params
        self.layers = num_layers(model)
        self.budget = _count_for_ratio(self.layers, params.ratio)
        self.skippable = {b for b in range(2 * self.layers) if 0 < b // 2 < self.layers - 1}
        self.since = 0  # skip-drafted verifications since the last selection
        self.last: Choice | None = None
        self.selections = 0

    def first_set(self) -> SkipSet:
        """The set a run starts with, before its first selection (right after the prompt pass)."""
        return SkipSet.uniform(self.layers, self.params.ratio)

    def after_step(self, cache, context: list[int], kind: str, drafted: int = 0, accepted: int = 0) -> SkipSet | None:
        """After a pass of `kind` (prefill, skip, lookup, ar) that verified `drafted` tokens and accepted
        `accepted`: a newly selected set, or None to keep drafting with the current one. `context` is the
        prompt and every token emitted so far; the cache holds all but its last token."""
        if kind == "prefill":
            return self.select(cache, context)
        if kind != "skip":  # a plain or lookup step says nothing about the skip set
            return None
        self.since += 1
        if self.since >= self.params.every or accepted < self.params.poor * drafted:
            return self.select(cache, context)
        return None

    def select(self, cache, context: list[int]) -> SkipSet:
        """Choose a set now from the last `window` tokens of `context` (the prompt and every token emitted; the
        cache holds all but the last) and return it; `last` keeps the `Choice`. Raises SwiftlabError where the lean
        drafter cannot serve this model and cache."""
        drafter = lean_drafter(self.model, cache, self.params.draft_dtype)
        if drafter is None:
            raise SwiftlabError("per-step layer selection needs the lean drafter's conditions: static rotary "
                                "angles, no sliding-window layers, no offloading hooks")
        window = min(self.params.window, len(context))
        blocks = LeanBlocks(drafter, cache, context[-window:], len(context) - window)
        with torch.inference_mode():
            self.last = choose_skips(blocks.embeddings(), blocks, 2 * self.layers, self.skippable, self.budget)
        self.since = 0
        self.selections += 1
        return skip_set_from_blocks(self.last.skipped, self.layers)
