"""Benchmark: verify passes with their linear layers as PyTorch runs them, against smallbatch.py's choice.

    .venv/bin/python benchmarks/small_batch.py [--model lab] [--context 300] [--repeats 20]

For each verify width k, a full pass over k tokens on `context` cached positions, timed through
swiftlab.search.budget.time_passes (the timing the streams use) two ways in alternating rounds: every linear
layer through `F.linear` (what transformers does), and through `smallbatch.PRODUCTS` (what decoding
does: per weight shape and k, the faster of two equal products, measured on first use; its own instance
here, not the process's). Prints medians
in ms and as multiples of the one-token pass (which both ways run through `F.linear`), then, per
weight shape, which way was chosen at each k. Not a test: only ratios side by side mean anything on a
shared machine.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from swiftlab import load_model
from swiftlab.search.budget import time_passes
from swiftlab.engine.smallbatch import SmallBatchProducts

WIDTHS = (1, 2, 3, 4, 6, 8, 11, 16, 26, 32)


class PlainLinear(SmallBatchProducts):
    """Every product through F.linear: the layers as transformers runs them."""

    def __call__(self, x, weight, bias):
        return F.linear(x, weight, bias)


def medians(model, context: int, repeats: int, products: SmallBatchProducts) -> dict[int, float]:
    rounds = time_passes(model, context, {k: (k, None, None) for k in WIDTHS}, repeats, warmup=2, products=products)
    return {k: statistics.median(r[k] for r in rounds) for k in WIDTHS}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--context", type=int, default=300, help="tokens already in the cache")
    p.add_argument("--repeats", type=int, default=20, help="rounds per way (alternating blocks of 5)")
    args = p.parse_args()

    model, _ = load_model(args.model)
    chosen, plain = SmallBatchProducts(), PlainLinear()
    times: dict[str, dict[int, list[float]]] = {"F.linear": {k: [] for k in WIDTHS}, "chosen": {k: [] for k in WIDTHS}}
    for _ in range(max(1, args.repeats // 5)):  # alternate the ways: drift on a shared machine hits both
        for name, products in (("F.linear", plain), ("chosen", chosen)):
            for k, seconds in medians(model, args.context, 5, products).items():
                times[name][k].append(seconds)
    ms = {name: {k: statistics.median(v) * 1e3 for k, v in per.items()} for name, per in times.items()}
    print(f"# {args.model}, context {args.context}, torch threads {torch.get_num_threads()}; verify pass over k "
          f"tokens in ms and as a multiple of the one-token pass (F.linear either way)")
    print(f"{'k':>3} {'F.linear':>10} {'x1':>6} {'chosen':>10} {'x1':>6} {'chosen/F.linear':>16}")
    for k in WIDTHS:
        a, b = ms["F.linear"][k], ms["chosen"][k]
        print(f"{k:>3} {a:8.2f}ms {a / ms['F.linear'][1]:6.2f} {b:8.2f}ms {b / ms['F.linear'][1]:6.2f} {b / a:16.2f}")
    print("\nthe way chosen per weight shape (out x in) at each k:")
    shapes = sorted({key[0] for key in chosen.chosen})
    for shape in shapes:
        ways = {key[2]: way for key, way in chosen.chosen.items() if key[0] == shape}
        print(f"  {shape[0]}x{shape[1]}: " + " ".join(f"{k}:{'T' if ways[k] == 'transposed' else 'L'}"
                                                   for k in sorted(ways)))
    print("  (T: (W @ x.T).T, L: F.linear)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
