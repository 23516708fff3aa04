"""Benchmark: what per-step layer selection costs against a verify pass, and whether it pays, priced by pass costs.

    .venv/bin/python benchmarks/clasp_costs.py --model lab --tasks story,reasoning,code,summarization --prompts 3
    .venv/bin/python benchmarks/clasp_costs.py --model smollm2-135m --data ../shared/data/spec_bench/question.jsonl \\
        --tasks summarization,math_reasoning --prompts 3 --ratio 0.2

Two parts, both robust to a loaded machine:
1. Pass costs, interleaved medians in one process at the median context length: a full one-token pass,
   full passes over k tokens (verification), a one-token lean draft pass at the ratio, and one selection
   (layerselect.LayerSelector.select) at each re-selection setting's window.
2. Decoding each prompt (greedy, plain-step fallback off, so the steps do not depend on timing) with the
   static uniform set at the ratio and with the selector (every 16th verification, and after every one),
   counting drafts, verified tree sizes and selections; every output is checked against autoregressive
   decoding. Each run is priced with part 1's costs: the zero-overhead speedup over autoregressive
   decoding, selections included. Medians over prompts with [min-max].
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from step_costs import pass_costs  # benchmarks/, next to this script

from swiftlab import SkipSet, SwiftParams, decode, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.engine.cache import SkipAwareCache
from swiftlab.search.layerselect import LayerSelector, SelectParams
from swiftlab.tasks import task_source

BLOCKS = (1, 2, 4, 8, 16, 32)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--tasks", default="story,reasoning,code,summarization")
    p.add_argument("--data", default=None, help="Spec-Bench question.jsonl: --tasks are its categories")
    p.add_argument("--prompts", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--ratio", type=float, default=0.45)
    p.add_argument("--repeats", type=int, default=15, help="timings per pass cost")
    args = p.parse_args()

    model, tokenizer = load_model(args.model)
    L = num_layers(model)
    methods = {"uniform": None, "clasp (every 16)": SelectParams(ratio=args.ratio),
               "clasp:1 (every step)": SelectParams(ratio=args.ratio, every=1)}
    print(f"# {args.model} ({L} layers), r = {args.ratio}, {args.prompts} prompts, {args.max_new_tokens} new tokens, "
          f"greedy, fallback off; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for task in args.tasks.split(","):
        source = task_source("specbench", data=args.data, category=task) if args.data else task_source(task)
        examples = source.examples(args.prompts)
        prompts = [encode_prompt(tokenizer, ex.prompt) for ex in examples]
        runs = {name: [run_one(model, ids, args, L, params) for ids in prompts] for name, params in methods.items()}
        context = int(statistics.median(len(ids) for ids in prompts)) + args.max_new_tokens // 2
        costs = measure(model, L, args.ratio, context, args.repeats)
        print(f"\n## {task} (context {context}; load {os.getloadavg()[0]:.1f})")
        print("pass costs, x a full one-token pass: " + ", ".join(
            f"{name} {seconds / costs['full x1']:.2f}" for name, seconds in costs.items()))
        print("| method | tokens/pass | selections/prompt | priced speedup vs AR, median [min-max] | identical |")
        print("| --- | --- | --- | --- | --- |")
        for name, results in runs.items():
            priced = [price(r, sel, costs) for r, sel, _ in results]
            tpp = sum(r.new_tokens for r, _, _ in results) / sum(r.steps for r, _, _ in results)
            print(f"| {name} | {tpp:.2f} | {statistics.mean(sel for _, sel, _ in results):.1f} | "
                  f"{statistics.median(priced):.2f}x [{min(priced):.2f}-{max(priced):.2f}] | "
                  f"{all(same for _, _, same in results)} |", flush=True)
    return 0


def run_one(model, ids, args, L, params):
    """(result, selections made, output equal to autoregressive decoding's)."""
    swift = SwiftParams(fallback=False)
    ar = decode(model, ids, method="ar", max_new_tokens=args.max_new_tokens)
    if params is None:
        result = decode(model, ids, method="swift", skip_set=SkipSet.uniform(L, args.ratio),
                        max_new_tokens=args.max_new_tokens, swift=swift)
        return result, 0, result.token_ids == ar.token_ids
    selector = LayerSelector(model, params)
    result = decode(model, ids, method="swift", max_new_tokens=args.max_new_tokens, swift=swift, selector=selector)
    return result, selector.selections, result.token_ids == ar.token_ids


def measure(model, L, ratio, context, repeats) -> dict[str, float]:
    """Median seconds: full passes over k tokens, a lean draft pass, and one selection, interleaved."""
    cases = {f"full x{k}": (k, None, None) for k in BLOCKS}
    cases["draft"] = (1, SkipSet.uniform(L, ratio), "auto")
    costs = pass_costs(model, context, cases, repeats)
    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.randint(3, vocab, (context + 1,)).tolist()
    cache = SkipAwareCache(model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([ids[:-1]]), cache=cache, use_cache=True)
    selector = LayerSelector(model, SelectParams(ratio=ratio))
    ratios = []  # a selection over a full one-token pass, timed back to back: drift hits both alike
    with torch.inference_mode():
        for i in range(repeats + 2):
            start = time.perf_counter()
            selector.select(cache, ids)
            middle = time.perf_counter()
            model(input_ids=torch.tensor([[ids[-1]]]), position_ids=torch.tensor([[context]]), cache=cache,
                  use_cache=True)
            cache.crop_to(context)
            if i >= 2:
                ratios.append((middle - start) / (time.perf_counter() - middle))
    costs["selection"] = statistics.median(ratios) * costs["full x1"]
    return costs


def price(result, selections: int, costs: dict) -> float:
    """Autoregressive decoding's cost over this run's, both priced with the measured pass costs."""
    def full(k):
        return costs[f"full x{min(BLOCKS, key=lambda b: abs(b - k))}"]
    spent = selections * costs["selection"]
    for kind, drafted, nodes in zip(result.step_kinds, result.drafted_per_step, result.tree_size_per_step):
        if kind != "prefill":
            spent += (drafted * costs["draft"] if kind == "skip" else 0.0) + full(nodes + 1)
    return (result.new_tokens - 1) * full(1) / spent if spent else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
