"""Benchmark: per-step layer selection (`clasp`, layerselect.py) against SWIFT's search and plain decoding.

    .venv/bin/python benchmarks/clasp_bench.py --model lab --tasks story,reasoning,code,summarization --prompts 3
    .venv/bin/python benchmarks/clasp_bench.py --model smollm2-135m --data ../shared/data/spec_bench/question.jsonl \\
        --tasks summarization,qa,math_reasoning --prompts 3

Every method runs on the same prompts through the bench harness (`swiftlab bench`), interleaved, in one
process; lines go to OUT/results.jsonl. Per task it prints `swiftlab report`'s table, then per method the
speedup over `ar` per prompt as median [min-max], tokens per pass, and the share of the wall time spent
choosing skip sets (`swift`: its search; `clasp`: the selections). Not a test: only ratios measured
side by side mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from swiftlab import load_model, num_layers
from swiftlab.analysis.harness import read_lines, run_bench, summarize, summary_table
from swiftlab.tasks import task_source

METHODS = "ar,swift,clasp,clasp:1"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--tasks", default="story,reasoning,code,summarization",
                   help="task names, or Spec-Bench categories with --data")
    p.add_argument("--data", default=None, help="Spec-Bench question.jsonl: --tasks are its categories")
    p.add_argument("--prompts", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--methods", default=METHODS)
    p.add_argument("--out", default="runs/clasp")
    args = p.parse_args()

    model, tokenizer = load_model(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    results.unlink(missing_ok=True)
    print(f"# {args.model} ({num_layers(model)} layers), {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"{args.prompts} prompts x {args.repeats} repeats, {args.max_new_tokens} new tokens, greedy", flush=True)
    for name in args.tasks.split(","):
        task = task_source("specbench", data=args.data, category=name) if args.data else name
        lines = run_bench(model, tokenizer, task=task, prompts=args.prompts, methods=args.methods.split(","),
                          model_name=args.model, repeats=args.repeats, max_new_tokens=args.max_new_tokens,
                          out=results)
        print(summary_table(summarize(lines)))
        print(per_prompt_table(lines), f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return 0


def per_prompt_table(lines) -> str:
    """Per method: speedup over `ar` per prompt (median over repeats), as median [min-max] over prompts;
    tokens per pass; the share of wall time spent choosing skip sets."""
    def per_prompt(method):
        by = {}
        for l in lines:
            if l.method == method:
                by.setdefault((l.prompt_id, l.turn), []).append(l)
        return {k: v for k, v in by.items()}

    ar = {k: statistics.median(x.tokens_per_s for x in v) for k, v in per_prompt("ar").items()}
    rows = ["| method | speedup per prompt, median [min-max] | tokens/pass | choosing sets, share of time |",
            "| --- | --- | --- | --- |"]
    for method in dict.fromkeys(l.method for l in lines):
        mine = per_prompt(method)
        ratios = [statistics.median(x.tokens_per_s for x in v) / ar[k] for k, v in mine.items() if ar.get(k)]
        passes = sum(x.steps or 0 for v in mine.values() for x in v)
        tokens = sum(x.new_tokens for v in mine.values() for x in v)
        wall = sum(x.wall_s for v in mine.values() for x in v)
        choosing = sum((x.timings_s or {}).get("optimize", 0.0) for v in mine.values() for x in v)
        rows.append(f"| {method} | {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] | "
                    f"{tokens / passes if passes else float('nan'):.2f} | {choosing / wall if wall else 0:.0%} |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
