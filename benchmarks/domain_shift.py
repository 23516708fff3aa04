"""A stream whose task changes midway: does the search re-open, and what does it buy?

    .venv/bin/python benchmarks/domain_shift.py --model lab --first story --then code [--each 8]

Prints one line per prompt: phase, acceptance, tokens per pass, whether the search re-opened, and
the best matchness; once with re-opening on and once with it off (the reference's behaviour).
"""

from __future__ import annotations

import argparse

from swiftlab import load_model
from swiftlab.api import encode_prompt
from swiftlab.search.skipsearch import SearchConfig
from swiftlab.search.stream import StreamSettings, SwiftStream
from swiftlab.tasks import get_examples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--first", default="story")
    p.add_argument("--then", default="code")
    p.add_argument("--each", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--max-steps", type=int, default=60, help="a short search, so the first task freezes early")
    args = p.parse_args()
    model, tokenizer = load_model(args.model)
    prompts = [(task, encode_prompt(tokenizer, ex.prompt)) for task in (args.first, args.then)
               for ex in get_examples(task, args.each, seed=2)]
    for reopen in (True, False):
        stream = SwiftStream(model, SearchConfig(max_steps=args.max_steps),
                             settings=StreamSettings(reopen_on_shift=reopen))
        print(f"--- re-open on shift: {reopen}")
        for task, ids in prompts:
            stream.decode(ids, max_new_tokens=args.max_new_tokens)
            r = stream.records[-1]
            print(f"{r.index:>3} {task:<13} {r.phase:<10} acceptance {r.acceptance_rate:5.0%} "
                  f"{r.mean_accepted_tokens:.2f} tok/pass {r.tokens_per_s:7.1f} tok/s "
                  f"{'RE-OPENED' if r.reopened else '':<9} best matchness {r.best_matchness or 0:.2f}", flush=True)


if __name__ == "__main__":
    main()
