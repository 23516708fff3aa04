"""Layer-sparsity probes: experiments as functions that return plain records.

Every probe measures on the full model's own greedy continuations of a task's held-out prompts
(the tokens SWIFT's matchness is measured on), and scores many skip sets in one batched pass
(see matchness.window_logits), so a probe over all 2·L sub-layers costs one pass per prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..models.adapters import num_layers
from ..engine.decoding import reference_continuation
from ..engine.matchness import window_logits
from ..engine.records import JsonRecord
from ..engine.skipset import SkipSet


@dataclass
class ImportanceRecord(JsonRecord):
    """Skip one sub-layer at a time: how much agreement with the full model is lost."""
    task: str
    num_layers: int
    prompts: int
    window: int
    attention_drop: list[float]  # per layer: 1 - matchness with that attention sub-layer skipped
    mlp_drop: list[float]
    attention_kl: list[float]  # per layer: KL(full || skipped) of the next-token distribution, nats
    mlp_kl: list[float]


@dataclass
class RedundancyRecord(JsonRecord):
    """Cosine similarity of the residual stream just before and just after each sub-layer:
    near 1 means the sub-layer barely turns the hidden state (a candidate to skip)."""
    task: str
    num_layers: int
    prompts: int
    window: int
    attention_cosine: list[float]
    mlp_cosine: list[float]


def single_skips(L: int) -> list[SkipSet]:
    """Every sub-layer alone (first and last layers included): attention 0..L-1, then MLP 0..L-1."""
    return ([SkipSet((i,), (), L, allow_edges=True) for i in range(L)] +
            [SkipSet((), (i,), L, allow_edges=True) for i in range(L)])


def _mean_rows(rows: list[list[float]]) -> list[float]:
    return [sum(col) / len(col) for col in zip(*rows)]


@torch.inference_mode()
def sublayer_importance(model, prompts: list[list[int]], task: str = "", window: int = 32,
                        progress: bool = False) -> ImportanceRecord:
    """Skip each sub-layer alone and measure, over the full model's greedy continuation of each of `prompts`
    (token ids), the matchness lost and KL(full || skipped) on its last `window` tokens, averaged over the
    prompts: one batched pass of 1 + 2L rows per prompt."""
    L = num_layers(model)
    sets = [SkipSet.none(L)] + single_skips(L)
    drops, kls = [], []
    for ids in tqdm(prompts, desc=f"importance ({task or 'prompts'})", disable=not progress):
        tokens, cache = reference_continuation(model, ids, window + 1)
        logits = window_logits(model, cache, tokens, window, sets).float()
        targets = torch.tensor(tokens[-window:], device=logits.device)
        matchness = (logits.argmax(-1) == targets).float().mean(-1)  # [1 + 2L]
        logp = F.log_softmax(logits, -1)
        kl = (logp[0].exp() * (logp[0] - logp)).sum(-1).mean(-1)  # KL(full || each row), mean over window
        drops.append((matchness[0] - matchness[1:]).tolist())
        kls.append(kl[1:].tolist())
    drop, kl = _mean_rows(drops), _mean_rows(kls)
    return ImportanceRecord(task, L, len(prompts), window, drop[:L], drop[L:], kl[:L], kl[L:])


@torch.inference_mode()
def redundancy(model, prompts: list[list[int]], task: str = "", window: int = 32,
               progress: bool = False) -> RedundancyRecord:
    """Row 0 runs the full model; row 1 + i skips layer i's MLP, so its layer-i output is the
    residual stream right after layer i's attention (in sequential and parallel-residual
    families alike). Before attention = layer input; after MLP = layer output of row 0."""
    L = num_layers(model)
    sets = [SkipSet.none(L)] + [SkipSet((), (i,), L, allow_edges=True) for i in range(L)]
    attn_rows, mlp_rows = [], []
    for ids in tqdm(prompts, desc=f"redundancy ({task or 'prompts'})", disable=not progress):
        tokens, cache = reference_continuation(model, ids, window + 1)
        hidden = window_logits(model, cache, tokens, window, sets, output_hidden_states=True).hidden_states
        attn, mlp = [], []
        for i in range(L):
            # each layer's output sits on that layer's device (several, under a multi-device device_map)
            before, after_mlp = hidden[i][0].float().to(hidden[i + 1].device), hidden[i + 1][0].float()
            after_attn = hidden[i + 1][1 + i].float()
            attn.append(F.cosine_similarity(before, after_attn, dim=-1).mean().item())
            mlp.append(F.cosine_similarity(after_attn, after_mlp, dim=-1).mean().item())
        attn_rows.append(attn)
        mlp_rows.append(mlp)
    return RedundancyRecord(task, L, len(prompts), window, _mean_rows(attn_rows), _mean_rows(mlp_rows))


# ----- skip-ratio sweep ------------------------------------------------------------------------
STRATEGIES = ("uniform", "random", "early_exit", "offline_bo", "swift")


@dataclass
class SweepRow:
    """One point of a skip-ratio sweep: the set `strategy` picked at `ratio`, its matchness, and SWIFT's
    acceptance, tokens per pass and speedup decoding with it; `identical`: output equal to AR's on every run."""
    strategy: str
    ratio: float  # the ratio asked for; the set's own ratio may round down
    set_ratio: float
    attention: list[int]
    mlp: list[int]
    matchness: float
    acceptance_rate: float
    mean_accepted_tokens: float
    speedup: float  # median over prompts and repeats of SWIFT tokens/s over AR tokens/s on the same run pair
    identical: bool
    speedup_min: float | None = None  # spread of those paired ratios (None in records from before it was kept)
    speedup_max: float | None = None


@dataclass
class SweepRecord(JsonRecord):
    """A skip-ratio sweep (`ratio_sweep`): one `SweepRow` per strategy and ratio, over `prompts` prompts with
    `max_new_tokens` new tokens each and `repeats` repeats; `from_json` reads the rows back as SweepRows."""
    task: str
    num_layers: int
    prompts: int
    max_new_tokens: int
    rows: list[SweepRow]
    repeats: int = 1

    @classmethod
    def from_json(cls, s: str) -> "SweepRecord":
        """The record back from `to_json`'s text, its rows as SweepRows; a key that is not a field is a TypeError."""
        d = json.loads(s)
        return cls(**{**d, "rows": [SweepRow(**r) for r in d["rows"]]})


def skip_set_for(strategy: str, model, ratio: float, prompts: list[list[int]], seed: int = 0,
                 search_steps: int = 30, max_new_tokens: int = 64) -> SkipSet:
    """The skip set each strategy picks at a ratio (optimizing ones search on `prompts`)."""
    from ..search.offline import offline_search
    from ..search.skipsearch import SearchConfig
    from ..search.stream import REFERENCE_SETTINGS, SwiftStream

    L = num_layers(model)
    if strategy == "uniform":
        return SkipSet.uniform(L, ratio)
    if strategy == "random":
        return SkipSet.random(L, ratio, seed=seed)
    if strategy == "early_exit":  # LayerSkip-style: drop the last layers, about as many sub-layers
        skipped_layers = round(ratio * (L - 2))
        return SkipSet.early_exit(L, L - skipped_layers) if skipped_layers else SkipSet.none(L)
    config = SearchConfig(skip_ratio=ratio, max_steps=search_steps, seed=seed,
                          window=max(1, min(32, max_new_tokens // 2)))
    start = SkipSet.uniform(L, ratio)  # searching at ratio r starts from the uniform set at r
    if strategy == "offline_bo":
        return offline_search(model, prompts, config, steps=search_steps, max_new_tokens=max_new_tokens,
                              progress=False, start=start).best
    if strategy == "swift":
        stream = SwiftStream(model, config, start=start, settings=REFERENCE_SETTINGS)
        for ids in prompts:
            if stream.search.done:
                break
            stream.decode(ids, max_new_tokens=max_new_tokens)
        return stream.search.best
    raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")


def ratio_sweep(model, prompts: list[list[int]], ratios, strategies=STRATEGIES, task: str = "",
                max_new_tokens: int = 64, repeats: int = 3, search_prompts: list[list[int]] | None = None,
                progress: bool = False) -> SweepRecord:
    """Matchness, acceptance, tokens per pass and speedup against the skip ratio, per strategy.
    Optimizing strategies search on `search_prompts` (default: the same prompts). Speedups are the
    median (and min–max) of paired SWIFT/AR runs over every prompt and repeat, after one warm-up."""

    from .bench import compare
    from ..engine.matchness import matchness_scores

    window = min(32, max_new_tokens - 1)
    references = [reference_continuation(model, ids, window + 1) for ids in prompts]
    rows = []
    plan = [(strategy, ratio) for strategy in strategies for ratio in ratios]
    for n, (strategy, ratio) in enumerate(tqdm(plan, desc="skip-ratio sweep", disable=not progress)):
        s = skip_set_for(strategy, model, ratio, search_prompts or prompts, max_new_tokens=max_new_tokens)
        matchness = sum(matchness_scores(model, cache, tokens, window, [s])[0]
                        for tokens, cache in references) / len(references)
        c = compare(model, prompts, s, max_new_tokens=max_new_tokens, repeats=repeats, warmup=n == 0,
                    progress=False)
        summary = c.summary()
        median, low, high = c.speedup_spread()
        rows.append(SweepRow(strategy, ratio, s.ratio, list(s.attention), list(s.mlp), matchness,
                             summary["acceptance_rate"], summary["mean_accepted_tokens"], median, c.identical,
                             low, high))
    return SweepRecord(task, num_layers(model), len(prompts), max_new_tokens, rows, repeats)


def latency_breakdown(results) -> dict[str, float]:
    """Share of wall time in optimize / draft / verify / other, over decoding records (the
    paper's per-token latency table; the prompt pass counts as other), plus milliseconds per token."""
    totals = {k: sum(r.timings_s[k] for r in results) for k in ("optimize", "draft", "verify", "other")}
    totals["other"] += sum(r.timings_s.get("prefill", 0.0) for r in results)
    wall = sum(r.wall_s for r in results)
    tokens = sum(r.new_tokens for r in results)
    return {**{k: v / wall for k, v in totals.items()}, "ms_per_token": 1000 * wall / tokens}


# ----- task-specific sparsity and transfer --------------------------------------------------------
@dataclass
class TaskSparsityRecord(JsonRecord):
    """The skip set SWIFT finds per task, and the speedup of each task's set on every task."""
    num_layers: int
    tasks: list[str]
    skip_sets: dict  # task -> {"attention": [...], "mlp": [...], "num_layers": L}
    matchness: dict  # task -> best matchness its search reached
    transfer: list[list[float]]  # [optimized on][decoded task]: median paired speedup over autoregressive
    identical: bool
    transfer_min: list[list[float]] | None = None  # min and max of those paired speedups (prompts × repeats)
    transfer_max: list[list[float]] | None = None
    repeats: int = 1
    eval_prompts: int = 1

    def sets(self) -> dict[str, SkipSet]:
        """The skip set found on each task, as a SkipSet, by task."""
        return {t: SkipSet.from_dict(d) for t, d in self.skip_sets.items()}

    def speedups(self, tasks=None) -> dict[tuple[str, str], float]:
        """The transfer matrix as {(optimized on, decoded task): median speedup} over `tasks` (default: all the
        record's tasks, in order); a task the record does not hold is a KeyError."""
        idx = {t: i for i, t in enumerate(self.tasks)}
        tasks = tasks or self.tasks
        return {(a, b): self.transfer[idx[a]][idx[b]] for a in tasks for b in tasks}

    def spread(self, tasks=None) -> dict[tuple[str, str], tuple[float, float]] | None:
        """The same cells' (min, max) speedup, or None for a record from before the spread was kept."""
        if self.transfer_min is None:
            return None
        idx = {t: i for i, t in enumerate(self.tasks)}
        tasks = tasks or self.tasks
        return {(a, b): (self.transfer_min[idx[a]][idx[b]], self.transfer_max[idx[a]][idx[b]])
                for a in tasks for b in tasks}


def task_sparsity(model, prompts_by_task: dict[str, list[list[int]]], eval_by_task: dict[str, list[list[int]]],
                  search=None, max_new_tokens: int = 128, repeats: int = 3,
                  progress: bool = False) -> TaskSparsityRecord:
    """Optimize on each task's stream, then decode every task with every task's set: each cell is the
    median (and min–max) of paired SWIFT/AR runs over the task's evaluation prompts and `repeats`."""

    from .bench import compare
    from ..search.skipsearch import SearchConfig
    from ..search.stream import REFERENCE_SETTINGS, SwiftStream

    sets, scores = {}, {}
    searching = [(task, ids) for task, prompts in prompts_by_task.items() for ids in prompts]
    streams = {task: SwiftStream(model, search or SearchConfig(), settings=REFERENCE_SETTINGS)
               for task in prompts_by_task}
    for task, ids in tqdm(searching, desc="optimizing per task (prompts)", disable=not progress):
        streams[task].decode(ids, max_new_tokens=max_new_tokens)
    for task, stream in streams.items():
        sets[task], scores[task] = stream.search.best, stream.search.best_score
    tasks = list(prompts_by_task)
    cells = [(source, target) for source in tasks for target in tasks]
    medians, lows, highs, identical = {}, {}, {}, True
    for n, (source, target) in enumerate(tqdm(cells, desc="transfer matrix (cells)", disable=not progress)):
        c = compare(model, eval_by_task[target], sets[source], max_new_tokens=max_new_tokens, repeats=repeats,
                    warmup=n == 0, progress=False)
        medians[source, target], lows[source, target], highs[source, target] = c.speedup_spread()
        identical &= c.identical
    grid = lambda values: [[values[a, b] for b in tasks] for a in tasks]
    return TaskSparsityRecord(num_layers(model), tasks, {t: s.to_dict() for t, s in sets.items()}, scores,
                              grid(medians), identical, grid(lows), grid(highs), repeats,
                              min(len(p) for p in eval_by_task.values()))
