"""Side-by-side timing of autoregressive and SWIFT decoding on the same prompts.

Methods are interleaved prompt by prompt and repeat by repeat, so drift of a shared, noisy
machine hits both alike; the summary reports medians and the ratio of medians, never one time.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from tqdm.auto import tqdm

from ..models.adapters import input_device
from ..engine.decoding import SwiftParams, decode
from ..engine.records import DecodeResult
from ..engine.skipset import SkipSet


@dataclass
class Comparison:
    """The results of `compare`: autoregressive and SWIFT runs in the same (repeat, prompt) order, and
    transformers' `generate` runs (`hf`) where asked for, else None."""
    ar: list[DecodeResult]
    swift: list[DecodeResult]
    hf: list[DecodeResult] = None  # transformers' own model.generate, when asked for

    @property
    def identical(self) -> bool:
        """Greedy SWIFT must reproduce autoregressive output token for token."""
        return all(a.token_ids == s.token_ids for a, s in zip(self.ar, self.swift))

    @staticmethod
    def _median_tps(results: list[DecodeResult]) -> float:
        return statistics.median(r.tokens_per_s for r in results)

    @property
    def speedup(self) -> float:
        """Median SWIFT tokens/s over median autoregressive tokens/s."""
        return self._median_tps(self.swift) / self._median_tps(self.ar)

    @property
    def paired_speedups(self) -> list[float]:
        """SWIFT's tokens/s over autoregressive tokens/s for each (repeat, prompt) pair. Greedy SWIFT writes
        exactly the autoregressive tokens, so both runs of a pair stop at the same token: an output that
        ends early is only ever compared with itself."""
        return [s.tokens_per_s / a.tokens_per_s for a, s in zip(self.ar, self.swift) if a.tokens_per_s]

    def speedup_spread(self) -> tuple[float, float, float]:
        """(median, min, max) of the paired speedups: the number to show, with its spread."""
        ratios = self.paired_speedups
        return statistics.median(ratios), min(ratios), max(ratios)

    def summary(self) -> dict:
        """The comparison as a JSON-ready dict: median tokens/s per method (transformers' generate too, where
        run), the ratio of medians (`speedup`), SWIFT's median accepted tokens and acceptance rate, `identical`,
        and the number of runs per method."""
        extra = {"hf_generate_tokens_per_s": self._median_tps(self.hf)} if self.hf else {}
        return {
            **extra,
            "ar_tokens_per_s": self._median_tps(self.ar),
            "swift_tokens_per_s": self._median_tps(self.swift),
            "speedup": self.speedup,
            "mean_accepted_tokens": statistics.median(r.mean_accepted_tokens for r in self.swift),
            "acceptance_rate": statistics.median(r.acceptance_rate for r in self.swift),
            "identical": self.identical,
            "runs": len(self.ar),
        }


def compare(model, prompts: list[list[int]], skip_set: SkipSet, *, max_new_tokens: int = 128,
            repeats: int = 3, swift: SwiftParams = SwiftParams(), warmup: bool = True,
            with_hf_generate: bool = False, progress: bool = True) -> Comparison:
    """Time autoregressive and SWIFT decoding with `skip_set` on `prompts` (token ids), interleaved
    (`interleaved`) `repeats` times after a warm-up, and transformers' `generate` too with `with_hf_generate`."""
    runs = {"ar": lambda ids, n: decode(model, ids, method="ar", max_new_tokens=n),
            "swift": lambda ids, n: decode(model, ids, method="swift", skip_set=skip_set,
                                           max_new_tokens=n, swift=swift)}
    if with_hf_generate:
        runs["hf"] = lambda ids, n: hf_generate(model, ids, n)
    results = interleaved(runs, prompts, max_new_tokens=max_new_tokens, repeats=repeats, warmup=warmup,
                          progress=progress)
    return Comparison(results["ar"], results["swift"], results.get("hf"))


def interleaved(runs: dict, prompts: list[list[int]], *, max_new_tokens: int, repeats: int = 3,
                warmup: bool = True, progress: bool = True) -> dict[str, list[DecodeResult]]:
    """Run every method on every prompt, `repeats` times, rotating the order so that no method
    always runs first; results per method in the same (repeat, prompt) order."""
    methods = list(runs)
    if warmup:  # first calls pay one-off allocation and dispatch costs; keep them out of the numbers
        for method in methods:
            runs[method](prompts[0], 8)
    results = {method: [] for method in methods}
    bar = tqdm(total=len(methods) * repeats * len(prompts), desc="benchmark", disable=not progress)
    for repeat in range(repeats):
        for i, ids in enumerate(prompts):
            shift = (i + repeat) % len(methods)
            for method in methods[shift:] + methods[:shift]:
                results[method].append(runs[method](ids, max_new_tokens))
                bar.update()
    bar.close()
    return results


def hf_generate(model, ids: list[int], max_new_tokens: int, **generate_kwargs) -> DecodeResult:
    """transformers' own greedy generate() (optionally with its assisted-decoding options), timed the
    same way, as an outside baseline."""
    import time

    import torch

    prompt = torch.tensor([ids], device=input_device(model))
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(prompt, max_new_tokens=max_new_tokens, do_sample=False, **generate_kwargs)
    wall = time.perf_counter() - start
    return DecodeResult(method="hf-generate", prompt_ids=list(ids), token_ids=out[0, len(ids):].tolist(),
                        wall_s=wall)
