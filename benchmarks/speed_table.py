"""Benchmark: the speed tables of docs/measurements.md, every task, every method, interleaved, in one process.

    .venv/bin/python benchmarks/speed_table.py [--model lab] [--prompts 8] [--repeats 2] [--out runs/speed]
    .venv/bin/python benchmarks/speed_table.py --model smollm2-135m --data ../shared/data/spec_bench/question.jsonl \
        --tasks summarization,rag,translation,qa,math_reasoning,mt_bench --prompts 5 --repeats 1

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
import statistics
from pathlib import Path

import torch

from step_costs import pass_costs  # benchmarks/, next to this script

from swiftlab import SkipSet, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.engine.compiled import compiled_forward
from swiftlab.analysis.harness import pass_cost_bound, read_lines, run_bench, search_notes, summarize, summary_table
from swiftlab.search.skipsearch import RATIOS, SearchConfig
from swiftlab.tasks import task_source

BLOCKS = (1, 2, 4, 8, 16, 32)  # verify-pass sizes whose cost is measured; others are interpolated

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
    p.add_argument("--data", default=None, help="Spec-Bench question.jsonl: --tasks are its categories")
    p.add_argument("--fixed-ratio", action="store_true",
                   help="streams search at r = 0.45 only (default: the ratio is searched too, as `swiftlab bench`)")
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
    print(f"# load before: {os.getloadavg()}", flush=True)
    for name in args.tasks.split(","):
        task = task_source("specbench", data=args.data, category=name) if args.data else task_source(name)
        run_bench(model, tokenizer, task=task, prompts=args.prompts, methods=methods, model_name=args.model,
                  repeats=args.repeats, max_new_tokens=args.max_new_tokens, out=results,
                  search=SearchConfig(ratios=() if args.fixed_ratio else RATIOS))
        rows = [r for r in summarize(read_lines(results)) if r["task"] == task.label]
        print(f"## {task.label} (load {os.getloadavg()[0]:.1f})\n" + summary_table(rows), flush=True)
        for note in search_notes(rows):
            print(note, flush=True)
        context = int(statistics.median(len(encode_prompt(tokenizer, ex.prompt))
                                        for ex in task.examples(args.prompts, seed=0))) + args.max_new_tokens // 2
        print(bound_table(model, [l for l in read_lines(results) if l.task == task.label], rows, context), flush=True)
    return 0


def bound_table(model, lines, rows, context: int) -> str:
    """Each SWIFT stream's speedup next to the speedup its own steps would give if only model passes
    cost time, priced with pass costs measured right now in this process (step_costs.py)."""
    L = num_layers(model)
    streams = [m for m in dict.fromkeys(l.method for l in lines) if m.startswith("swift")]
    final_sets = {m: SkipSet.from_dict(next(l for l in reversed(lines) if l.method == m).skip_set) for m in streams}
    cases = {f"full x{k}": (k, None, None) for k in BLOCKS}
    for m, s in final_sets.items():
        cases[f"lean {m}"] = (1, s, "auto")  # the drafter and precision decoding used (SwiftParams' default)
        cases[f"draft {m}"] = (1, s, None)
    costs = pass_costs(model, context, cases, repeats=20)
    # a compiled stream's full passes are priced compiled, as it ran them (its drafts stay eager)
    compiled = (pass_costs(model, context, {f"full x{k}": (k, None, None) for k in BLOCKS}, repeats=20,
                           full_forward=compiled_forward(model)) if any(m.endswith("-compile") for m in streams) else {})

    def full_for(stream: str):
        table = compiled if stream.endswith("-compile") else costs

        def full(k: int) -> float:  # linear between the measured block sizes
            k = min(max(k, BLOCKS[0]), BLOCKS[-1])
            hi = next(i for i, b in enumerate(BLOCKS) if b >= k)
            lo = max(hi - 1, 0)
            a, b = BLOCKS[lo], BLOCKS[hi]
            ca, cb = table[f"full x{a}"], table[f"full x{b}"]
            return ca if a == b else ca + (cb - ca) * (k - a) / (b - a)
        return full

    full = full_for("swift")

    # a compiled stream's speedup is over compiled AR, as its bound is (ar-compile's own speedup divides it out)
    speedups = {r["method"]: r["speedup"] for r in rows}
    over_compiled = speedups.get("ar-compile")
    for name in [n for n in speedups if n.split(" (")[0].endswith("-compile") and not n.startswith("ar")]:
        speedups[name] = speedups[name] / over_compiled if over_compiled and speedups[name] else None
    out = [f"pass costs at context {context} ({L} layers): full x1 {full(1) * 1e3:.2f} ms, x4 {full(4) / full(1):.2f}, "
           f"x16 {full(16) / full(1):.2f} passes",
           "| method | speedup | pass-cost bound | of bound | draft pass (x full) |", "| --- | --- | --- | --- | --- |"]
    if compiled:
        compiled_full = full_for("swift-compile")
        out.insert(1, f"compiled: full x1 {compiled_full(1) * 1e3:.2f} ms, x4 {compiled_full(4) / compiled_full(1):.2f}, "
                      f"x16 {compiled_full(16) / compiled_full(1):.2f} passes (the -compile rows: speedup and bound over ar-compile)")
    for m in streams:
        full = full_for(m)
        draft = costs.get(f"lean {m}", costs[f"draft {m}"])
        for name, phase in ((m, None), (f"{m} (accelerating)", "accelerate")):
            mine = [l for l in lines if l.method == m and (phase is None or l.phase == phase)]
            bound = pass_cost_bound(mine, full, draft) if mine else None
            if bound and speedups.get(name):
                out.append(f"| {name} | {speedups[name]:.2f}x | {bound:.2f}x | {speedups[name] / bound:.0%} | "
                           f"{draft / full(1):.2f} |")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
