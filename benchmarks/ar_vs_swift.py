"""Benchmark: SWIFT vs autoregressive decoding (and transformers' generate) on the same prompts.

    .venv/bin/python benchmarks/ar_vs_swift.py --model PATH_OR_ID [--skip-ratio 0.45] [--repeats 5]

Methods run interleaved in one process; the table shows medians over prompts x repeats and the
ratio of medians. Not a test: these machines are shared and noisy, so only ratios measured side
by side mean anything.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

from swiftlab import SkipSet, SwiftParams, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.analysis.bench import compare
from swiftlab.cli import DEMO_PROMPTS


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--skip-ratio", type=float, nargs="+", default=[0.45])
    p.add_argument("--skip-set", default=None, help="a skip-set JSON instead of uniform sets")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epsilon", type=float, default=0.8)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, tokenizer = load_model(args.model)
    L = num_layers(model)
    prompts = [encode_prompt(tokenizer, text) for text in DEMO_PROMPTS]
    skip_sets = [SkipSet.load(args.skip_set, L)] if args.skip_set else [SkipSet.uniform(L, r) for r in args.skip_ratio]
    print(f"# {args.model} ({L} layers), {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{len(prompts)} prompts x {args.repeats} repeats, {args.max_new_tokens} new tokens")
    print(f"{'skip set':<44} {'HF gen':>8} {'AR':>8} {'SWIFT':>8} {'speedup':>8} {'tok/pass':>8} {'accept':>7} same")
    rows = []
    for skip_set in skip_sets:
        c = compare(model, prompts, skip_set, max_new_tokens=args.max_new_tokens, repeats=args.repeats,
                    swift=SwiftParams(epsilon=args.epsilon), with_hf_generate=True, progress=False)
        s = c.summary()
        rows.append({"skip_set": skip_set.to_dict(), **s})
        label = f"r={skip_set.ratio:.2f} attn={list(skip_set.attention)} mlp={list(skip_set.mlp)}"
        print(f"{label[:44]:<44} {s['hf_generate_tokens_per_s']:8.1f} {s['ar_tokens_per_s']:8.1f} "
              f"{s['swift_tokens_per_s']:8.1f} {s['speedup']:7.2f}x {s['mean_accepted_tokens']:8.2f} "
              f"{s['acceptance_rate']:6.0%} {'yes' if s['identical'] else 'NO'}")
    print("(tokens/s are medians; speedup = SWIFT / swiftlab AR; tok/pass = mean accepted tokens per full pass)")
    if args.json:
        print(json.dumps(rows))
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
