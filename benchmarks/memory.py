"""Benchmark: peak memory of SWIFT decoding against autoregressive decoding, same prompts, one process.

    .venv/bin/python benchmarks/memory.py [--model lab] [--prompts 3] [--max-new-tokens 128]

What is measured: every byte torch allocates while a prompt is decoded, replayed from torch.profiler's
memory events (allocations and frees in time order) to find the peak of live bytes the run added on
top of what existed before it (the weights). That covers the KV cache, activations, logits, draft
trees and the search's batched scoring passes; Python objects are not counted. The table gives the
added peak per method and the whole footprint, weights + added peak, as a ratio to autoregressive
decoding. Methods: `ar`; `swift` with the skip set a search found (acceleration phase); `swift+search`,
a prompt decoded while the search runs (its matchness scoring passes included).
Deterministic: memory, unlike time, does not depend on the machine's load.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from swiftlab import SkipSet, decode, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.search import SearchConfig, SkipSearch
from swiftlab.tasks import get_examples


def peak_added_bytes(run) -> int:
    """Peak of live bytes allocated (and not yet freed) by torch while `run()` executes."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = sorted((e.time_range.start, e.cpu_memory_usage) for e in prof.events() if e.name == "[memory]")
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--tasks", default="reasoning,summarization,story,code")
    p.add_argument("--prompts", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=128)
    args = p.parse_args()

    model, tokenizer = load_model(args.model)
    L = num_layers(model)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    print(f"# {args.model}: weights {weights / 2**20:.1f} MiB; peak bytes added while decoding "
          f"{args.max_new_tokens} tokens, max over {args.prompts} prompts")
    print(f"{'task':<14} {'method':<13} {'added MiB':>10} {'x ar added':>11} {'total x ar':>11}")
    for task in args.tasks.split(","):
        examples = get_examples(task, args.prompts + 1, seed=0)
        # a skip set found the way SWIFT finds it: a search over the task's first prompt
        search = SkipSearch(L, SearchConfig())
        decode(model, encode_prompt(tokenizer, examples[0].prompt), method="swift", max_new_tokens=args.max_new_tokens,
               search=search)
        found = search.best
        prompts = [encode_prompt(tokenizer, ex.prompt) for ex in examples[1:]]
        runs = {
            "ar": lambda ids: decode(model, ids, method="ar", max_new_tokens=args.max_new_tokens),
            "swift": lambda ids: decode(model, ids, method="swift", skip_set=found, max_new_tokens=args.max_new_tokens),
            "swift+search": lambda ids: decode(model, ids, method="swift", max_new_tokens=args.max_new_tokens,
                                               search=SkipSearch(L, SearchConfig(), SkipSet.uniform(L, 0.45))),
        }
        peaks = {name: max(peak_added_bytes(lambda: run(ids)) for ids in prompts) for name, run in runs.items()}
        for name, peak in peaks.items():
            print(f"{task:<14} {name:<13} {peak / 2**20:10.2f} {peak / peaks['ar']:10.2f}x "
                  f"{(weights + peak) / (weights + peaks['ar']):10.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
