"""Benchmark: the speed table of the README, every task, every method, interleaved, in one process.

    .venv/bin/python benchmarks/speed_table.py [--model lab] [--prompts 8] [--repeats 2] [--out runs/speed]

Runs the bench harness (`swiftlab bench`) on held-out prompts of each task with the methods below, appends
every measurement to OUT/results.jsonl as it goes, and prints `swiftlab report`'s table per task: speedup
over swiftlab's autoregressive loop, over the faster of that loop and transformers' generate, the
zero-overhead bound (the speedup if only draft and verify passes cost time) and the share of it reached.
The `swift` row is the whole stream (optimization from a cold start included); `swift (accelerating)`
is its prompts decoded after the search stopped. Not a test: only ratios measured side by side mean
anything on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch

from swiftlab import load_model, num_layers
from swiftlab.harness import read_lines, run_bench, summarize, summary_table

TASKS = ("reasoning", "summarization", "story", "code")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--methods", default=None,
                   help="default: ar, hf-generate, swift, swift+lookup, two HF early exits, prompt lookup")
    p.add_argument("--out", default="runs/speed")
    args = p.parse_args()

    model, tokenizer = load_model(args.model)
    L = num_layers(model)
    methods = (args.methods.split(",") if args.methods else
               ["ar", "hf-generate", "swift", "swift+lookup", f"hf-early-exit:{L // 4}", f"hf-early-exit:{L // 2}", "hf-prompt-lookup"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    results.unlink(missing_ok=True)  # a fresh table; the harness appends each measurement as it is made
    print(f"# {args.model} ({L} layers) on {platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}; {args.prompts} held-out prompts x {args.repeats} repeats, "
          f"{args.max_new_tokens} new tokens, greedy")
    for task in args.tasks.split(","):
        run_bench(model, tokenizer, task=task, prompts=args.prompts, methods=methods, model_name=args.model,
                  repeats=args.repeats, max_new_tokens=args.max_new_tokens, out=results)
        print(summary_table([r for r in summarize(read_lines(results)) if r["task"] == task]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
