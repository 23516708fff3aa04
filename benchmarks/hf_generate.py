"""transformers' own generate() with and without `custom_generate=swiftlab.hf_generate`, side by side.

What a transformers user sees who swaps SWIFT into their existing call: the same `model.generate(...)`,
greedy, with and without a logits processor (repetition_penalty, applied by hf_generate to the full model's
verify rows), alternated prompt by prompt and repeat by repeat in one process so drift hits both alike.
Every SWIFT output is checked equal to generate()'s. Prints per variant the median seconds with min-max,
and the median of the per-run ratios generate / hf_generate (above 1: SWIFT faster).

    python benchmarks/hf_generate.py                       # lab model, 8 story prompts x 3 repeats, 64 tokens
    python benchmarks/hf_generate.py --model smollm2-135m --prompts 3 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import swiftlab
from swiftlab import SkipSet
from swiftlab.models.adapters import num_layers
from swiftlab.tasks import get_examples

VARIANTS = {"plain": {}, "repetition_penalty=1.2": {"repetition_penalty": 1.2}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lab")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--skip-ratio", type=float, default=0.45)
    args = parser.parse_args()

    model, tokenizer = swiftlab.load_model(args.model)
    skip = SkipSet.uniform(num_layers(model), args.skip_ratio)
    prompts = [ex.prompt for ex in get_examples("story", args.prompts, seed=0)]
    # both decode exactly max_new_tokens (min_new_tokens too): the same work, so seconds compare
    fixed = {"max_new_tokens": args.max_new_tokens, "min_new_tokens": args.max_new_tokens, "do_sample": False}
    seconds = {(v, m): [] for v in VARIANTS for m in ("generate", "hf_generate")}
    ratios = {v: [] for v in VARIANTS}
    warm = tokenizer(prompts[0], return_tensors="pt")
    model.generate(**warm, **fixed)  # first calls pay one-time set-up: not part of either column
    model.generate(**warm, custom_generate=swiftlab.hf_generate, skip_set=skip, **fixed)
    for repeat in range(args.repeats):
        for i, prompt in enumerate(prompts):
            inputs = tokenizer(prompt, return_tensors="pt")
            for variant, options in VARIANTS.items():
                order = ("generate", "hf_generate") if (i + repeat) % 2 == 0 else ("hf_generate", "generate")
                took, outs = {}, {}
                for method in order:
                    extra = {"custom_generate": swiftlab.hf_generate, "skip_set": skip} if method == "hf_generate" else {}
                    started = time.perf_counter()
                    outs[method] = model.generate(**inputs, **fixed, **options, **extra)
                    took[method] = time.perf_counter() - started
                    seconds[(variant, method)].append(took[method])
                if outs["generate"].tolist() != outs["hf_generate"].tolist():
                    raise SystemExit(f"MISMATCH: prompt {i}, {variant}: hf_generate's tokens differ from generate()'s")
                ratios[variant].append(took["generate"] / took["hf_generate"])
    print(f"{args.model}: {len(prompts)} story prompts x {args.repeats} repeats, {args.max_new_tokens} new tokens, "
          f"uniform skip set r={skip.ratio:.2f}; every output identical to generate()'s\n")
    print("| variant | generate() s | hf_generate s | generate / hf_generate |")
    print("| --- | --- | --- | --- |")
    for variant in VARIANTS:
        g, h, r = seconds[(variant, "generate")], seconds[(variant, "hf_generate")], ratios[variant]
        print(f"| {variant} | {statistics.median(g):.3f} ({min(g):.3f}-{max(g):.3f}) | {statistics.median(h):.3f} "
              f"({min(h):.3f}-{max(h):.3f}) | {statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f}) |")


if __name__ == "__main__":
    main()
