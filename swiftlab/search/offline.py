"""The offline baseline (Draft & Verify / Self-SD): optimize one static skip set before serving.

Self-SD runs Bayesian optimization over skip sets on a few calibration prompts, before any user
prompt is served, with measured decoding speed as the objective. SWIFT's point is that this
costs a long search up front; the lab compares the two. Objectives here: "matchness" (the
skip-mode model's agreement with the full model's greedy continuation of each calibration
prompt, cheap, one batched pass per step) or "tokens_per_s" (decode every calibration prompt
with the candidate, as Self-SD does; slow and noisy, but what users finally care about).
"""

from __future__ import annotations

import statistics
from dataclasses import replace

from tqdm.auto import tqdm

from ..models.adapters import num_layers
from ..engine.decoding import SwiftParams, decode, reference_continuation
from ..support.errors import SwiftlabError
from ..engine.matchness import matchness_scores
from .skipsearch import SearchConfig, SkipSearch


def offline_search(model, prompts: list[list[int]], config: SearchConfig = SearchConfig(), *, steps: int = 50,
                   objective: str = "matchness", max_new_tokens: int = 64, progress: bool = True,
                   start=None) -> SkipSearch:
    """Self-SD's baseline: a search over `prompts` (token ids) before serving, every proposal from Bayesian
    optimization, for at most `steps` proposals, scored by `objective` ("matchness" over `max_new_tokens`
    greedy tokens per prompt, or "tokens_per_s" of decoding each prompt). Returns the finished `SkipSearch`."""
    if objective not in ("matchness", "tokens_per_s"):
        raise SwiftlabError(f"unknown objective {objective!r}: choose matchness or tokens_per_s")
    if not prompts:
        raise SwiftlabError("offline search needs at least one calibration prompt")
    # every proposal from BO, as in Self-SD; the stop rules still apply
    ceiling = config.max_score if objective == "matchness" else float("inf")  # tokens/s has no ceiling
    search = SkipSearch(num_layers(model), replace(config, bayes_interval=1, max_steps=steps, max_score=ceiling),
                        start)
    score = (_matchness_objective(model, prompts, max_new_tokens) if objective == "matchness"
             else _speed_objective(model, prompts, max_new_tokens))
    bar = tqdm(total=steps, desc=f"offline BO ({objective})", disable=not progress)
    while not search.done:
        search.step(score)
        bar.n = search.iteration
        bar.refresh()
    bar.close()
    return search


def _matchness_objective(model, prompts, max_new_tokens):
    """Greedy continuations and their caches are computed once; each step is one pass per prompt."""
    calibration = []
    for ids in prompts:
        tokens, cache = reference_continuation(model, ids, max_new_tokens)
        calibration.append((tokens, cache, len(tokens) - len(ids) - 1))

    def score(sets):
        per_prompt = [matchness_scores(model, cache, tokens, window, sets)
                      for tokens, cache, window in calibration if window > 0]
        return [statistics.mean(column) for column in zip(*per_prompt)]
    return score


def _speed_objective(model, prompts, max_new_tokens):
    def score(sets):
        return [statistics.mean(decode(model, ids, method="swift", skip_set=s, max_new_tokens=max_new_tokens,
                                       swift=SwiftParams()).tokens_per_s for ids in prompts) for s in sets]
    return score
