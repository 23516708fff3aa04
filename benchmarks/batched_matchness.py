"""Benchmark: scoring B candidate skip sets in one batched pass vs one pass per candidate.

    .venv/bin/python benchmarks/batched_matchness.py --model lab [--candidates 1 2 4 8] [--window 32]

Same tokens, same cache, same candidates; prints the median time of each way and the ratio, and
checks the scores agree. Not a test: timings on shared machines are only meaningful side by side.
"""

from __future__ import annotations

import argparse
import statistics
import time

from swiftlab import SkipSet, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.cli import DEMO_PROMPTS
from swiftlab.engine.decoding import reference_continuation
from swiftlab.engine.matchness import matchness_scores


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--candidates", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--ratio", type=float, default=0.45)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()

    model, tokenizer = load_model(args.model)
    L = num_layers(model)
    ids = encode_prompt(tokenizer, DEMO_PROMPTS[0])
    tokens, cache = reference_continuation(model, ids, args.window + 8)
    print(f"# {args.model}: {L} layers, window {args.window}, ratio {args.ratio}, median of {args.repeats}")
    print(f"{'B':>3} {'one by one (ms)':>16} {'batched (ms)':>13} {'saving':>7} same")
    for b in args.candidates:
        sets = [SkipSet.random(L, args.ratio, seed=i) for i in range(b)]
        one, batched = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            single = [matchness_scores(model, cache, tokens, args.window, [s])[0] for s in sets]
            one.append(time.perf_counter() - t)
            t = time.perf_counter()
            together = matchness_scores(model, cache, tokens, args.window, sets)
            batched.append(time.perf_counter() - t)
        a, c = statistics.median(one) * 1e3, statistics.median(batched) * 1e3
        print(f"{b:>3} {a:16.1f} {c:13.1f} {a / c:6.2f}x {'yes' if single == together else 'NO'}")


if __name__ == "__main__":
    main()
