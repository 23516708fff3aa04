"""Per task: layer sparsity, the on-the-fly search, and the speedup it buys.

    .venv/bin/python benchmarks/optimize_by_task.py --model lab [--prompts 10] [--eval-prompts 4]

For each built-in task: matchness of uniform skip sets (r = 0.3, 0.4, 0.5) on held-out prompts;
then a SWIFT stream over `--prompts` held-out prompts from the reference's starting set (every
other middle layer), reporting the found set's matchness, iterations, stop reason and the share
of decoding time spent optimizing; then AR vs SWIFT-with-the-found-set tokens/s on other held-out
prompts, interleaved, as a ratio of medians (and the uniform start set's ratio, for comparison).
"""

from __future__ import annotations

import argparse
import json
import statistics

from swiftlab import SkipSet, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.analysis.bench import compare
from swiftlab.engine.decoding import reference_continuation
from swiftlab.engine.matchness import matchness_scores
from swiftlab.search.skipsearch import SearchConfig
from swiftlab.search.stream import SwiftStream
from swiftlab.tasks import get_examples


def uniform_matchness(model, prompts, ratios, window=32):
    L = num_layers(model)
    sets = [SkipSet.uniform(L, r) for r in ratios]
    rows = []
    for ids in prompts:
        tokens, cache = reference_continuation(model, ids, window + 1)
        rows.append(matchness_scores(model, cache, tokens, window, sets))
    return [statistics.mean(col) for col in zip(*rows)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--tasks", default="reasoning,summarization,story,code")
    p.add_argument("--prompts", type=int, default=10)
    p.add_argument("--eval-prompts", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--skip-ratio", type=float, default=0.45)
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args()

    model, tokenizer = load_model(args.model)
    L = num_layers(model)
    results = []
    for task in args.tasks.split(","):
        examples = get_examples(task, args.prompts + args.eval_prompts, seed=1)
        stream_ids = [encode_prompt(tokenizer, ex.prompt) for ex in examples[:args.prompts]]
        eval_ids = [encode_prompt(tokenizer, ex.prompt) for ex in examples[args.prompts:]]
        sparsity = uniform_matchness(model, eval_ids, [0.3, 0.4, 0.5])
        stream = SwiftStream(model, SearchConfig(skip_ratio=args.skip_ratio))
        for ids in stream_ids:
            stream.decode(ids, max_new_tokens=args.max_new_tokens)
        search = stream.search
        opt_records = [r for r in stream.records if r.phase == "optimize"]
        optimize_share = (sum(r.optimize_s for r in opt_records) / sum(r.wall_s for r in opt_records)
                          if opt_records else 0.0)
        found = compare(model, eval_ids, search.best, max_new_tokens=args.max_new_tokens, repeats=1, progress=False)
        start = compare(model, eval_ids, search.start, max_new_tokens=args.max_new_tokens, repeats=1, progress=False)
        row = {"task": task, "uniform_matchness": dict(zip(["0.3", "0.4", "0.5"], sparsity)),
               "start_matchness": search.trajectory.steps[0].matchness if search.trajectory.steps else float("nan"), "found_matchness": search.best_score if search.best_score is not None else float("nan"),
               "iterations": search.iteration, "stopped_because": search.stopped_because,
               "prompts_optimizing": len(opt_records), "optimize_share": optimize_share,
               "found_set": search.best.to_dict(), "speedup_found": found.speedup, "speedup_start": start.speedup,
               "mean_accepted_found": found.summary()["mean_accepted_tokens"], "identical": found.identical}
        results.append(row)
        print(f"{task:<14} uniform matchness r=.3/.4/.5: {sparsity[0]:.2f}/{sparsity[1]:.2f}/{sparsity[2]:.2f}  "
              f"search: {row['start_matchness']:.2f} -> {row['found_matchness']:.2f} in {row['iterations']} steps "
              f"({row['stopped_because'] or 'prompts ran out'}), optimize {optimize_share:.0%} of optimizing prompts' time; "
              f"speedup found {found.speedup:.2f}x (start set {start.speedup:.2f}x), "
              f"{row['mean_accepted_found']:.2f} tok/pass, identical {found.identical}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "layers": L, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
