"""Benchmark: a stream that chooses between gated and pure prompt lookup, against one that always gates.

    .venv/bin/python benchmarks/lookup_choice.py [--model lab] [--tasks reasoning,summarization,story,code]
        [--prompts 20] [--tokens 128] [--compile]
    .venv/bin/python benchmarks/lookup_choice.py --model smollm2-135m --data ../shared/data/spec_bench/question.jsonl \
        --tasks summarization,rag --prompts 8

Why: pure prompt lookup (transformers' rule) beats the skip drafter's gate on summaries and loses
everywhere else (benchmarks/lookup_kinds.py); a SwiftStream learns which to take from its prompts
(search/lookupchoice.py). Per task, two swift+lookup streams from a cold start (search included),
one with the choice (the default) and one without, beside swiftlab's AR loop and transformers'
generate(prompt_lookup_num_tokens=10), interleaved prompt by prompt with the order rotated. Prints
per method the median tokens/s, the median per-prompt ratio over AR with its range, and the ratio of
summed times; for the choosing stream, which prompts took pure lookup. Every output is checked
token-identical to AR's (a mismatch exits non-zero). Not a test: ratios from one run on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from swiftlab import SwiftParams, decode, load_model
from swiftlab.analysis.harness import make_runners
from swiftlab.engine.lookup import LOOKUP_TOKENS
from swiftlab.search.skipsearch import RATIOS, SearchConfig
from swiftlab.search.stream import StreamSettings, SwiftStream
from swiftlab.tasks import task_source
from swiftlab.tasks.chat import encode_prompt


def run_task(model, tokenizer, model_name: str, task: str, prompts: int, tokens: int, compile: bool,
             data: str | None = None) -> list[str]:
    source = task_source("specbench", data=data, category=task) if data else task_source(task)
    ids_list = [encode_prompt(tokenizer, ex.prompt) for ex in source.examples(prompts, seed=1)]
    settings = StreamSettings(swift=SwiftParams(lookup=LOOKUP_TOKENS, compile=compile))
    config = SearchConfig(ratios=RATIOS)  # as `swiftlab bench` searches
    choosing, gating = SwiftStream(model, config, settings=settings), SwiftStream(model, config, settings=settings)
    gating.lookup_choice = None  # the gate on every prompt, as before the choice
    hf = make_runners(model, ["hf-prompt-lookup"], task=source.label, model_name=model_name)["hf-prompt-lookup"]
    runs = {"ar": lambda ids: decode(model, ids, method="ar", max_new_tokens=tokens, swift=SwiftParams(compile=compile)),
            "hf-prompt-lookup": lambda ids: hf(ids, tokens),
            "swift+lookup, gated": lambda ids: gating.decode(ids, tokens),
            "swift+lookup, choosing": lambda ids: choosing.decode(ids, tokens)}
    runs["ar"](ids_list[0])
    hf(ids_list[0], tokens)  # warm-ups (the streams start cold: their first prompts are part of them)
    names = list(runs)
    seconds = {name: [] for name in names}
    tps = {name: [] for name in names}
    for i, ids in enumerate(ids_list):
        shift = i % len(names)
        got = {name: runs[name](ids) for name in names[shift:] + names[:shift]}
        for name, result in got.items():
            if list(result.token_ids) != list(got["ar"].token_ids):
                sys.exit(f"lookup_choice: MISMATCH: {name} differs from ar on {task} prompt {i}")
            seconds[name].append(result.wall_s)
            tps[name].append(len(result.token_ids) / result.wall_s)
    ar = seconds["ar"]
    lines = [f"## {task}: {prompts} prompts, {tokens} new tokens, streams from a cold start",
             f"{'method':24} {'tok/s':>7} {'over ar':>7} {'range':>11} {'summed':>7}"]
    for name in names:
        ratio = [a / s for a, s in zip(ar, seconds[name])]
        lines.append(f"{name:24} {statistics.median(tps[name]):7.1f} {statistics.median(ratio):6.2f}x "
                     f"{min(ratio):5.2f}-{max(ratio):<5.2f} {sum(ar) / sum(seconds[name]):6.2f}x")
    chosen = "".join("P" if r.lookup == "pure" else "g" for r in choosing.records)
    lines.append(f"choosing stream, per prompt (P pure lookup, g gated): {chosen}")
    for kind, mark in (("pure", "P"), ("gated", "g")):
        picked = [i for i, c in enumerate(chosen) if c == mark]
        if picked:
            over = {name: statistics.median(seconds[name][i] / seconds["swift+lookup, choosing"][i] for i in picked)
                    for name in ("hf-prompt-lookup", "swift+lookup, gated")}
            lines.append(f"  its {len(picked)} {kind} prompts: {over['hf-prompt-lookup']:.2f}x over hf-prompt-lookup, "
                         f"{over['swift+lookup, gated']:.2f}x over the gated stream (medians per prompt)")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--tasks", default="reasoning,summarization,story,code")
    p.add_argument("--prompts", type=int, default=20)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--compile", action="store_true", help="compiled full passes (AR's too): SwiftParams(compile=True)")
    p.add_argument("--data", default=None, help="Spec-Bench question.jsonl: --tasks are its categories")
    args = p.parse_args()
    model, tokenizer = load_model(args.model)
    print(f"# {args.model}, {torch.get_num_threads()} torch threads, compile={args.compile}; every output checked "
          "against ar's (a mismatch stops the run)", flush=True)
    for task in args.tasks.split(","):
        print("\n".join(run_task(model, tokenizer, args.model, task, args.prompts, args.tokens, args.compile, args.data)),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
