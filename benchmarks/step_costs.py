"""Benchmark: what one model pass costs, full and skipping, for one token and for a verify block.

    .venv/bin/python benchmarks/step_costs.py [--model lab] [--context 300] [--repeats 30] [--compile]

Times, interleaved and as medians, the passes SWIFT is made of, through the same engine calls it uses
(the SkipAwareCache, explicit positions, `skipping`): a full one-token pass (an autoregressive step),
a one-token draft pass with uniform skip sets of several ratios (through transformers, and through
the lean drafter decoding uses where the family has one), and full passes over blocks of k
tokens (a verify pass). From them, the speedup SWIFT could reach with zero overhead for a given draft
length and acceptance: (accepted + 1) * full / (drafted * draft + verify(drafted + 1)). With --compile the
full passes and the lean drafts run compiled, as a `SwiftParams(compile=True)` run takes them (compiled
first, a few minutes on a CPU; transformers' skipping drafts stay eager).
Not a test: only ratios measured side by side mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from swiftlab import SkipSet, load_model, num_layers
from swiftlab.engine.compiled import compile_passes, compiled_forward
from swiftlab.search.budget import time_passes


def pass_costs(model, context: int, cases: dict, repeats: int, full_forward=None) -> dict[str, float]:
    """Median seconds per case, interleaved, after three warm-up rounds (swiftlab.search.budget.time_passes, the
    timing the streams use: a case is (tokens, skip set or None, the lean drafter's precision or None for
    a transformers pass); every pass runs on the same `context` random tokens already in the cache; on a
    GPU each pass is timed between synchronisations). Lean cases the model has no lean drafter for are
    left out. With `full_forward` (engine.compiled.compiled_forward(model)) full passes run compiled."""
    rounds = time_passes(model, context, cases, repeats, warmup=3, full_forward=full_forward)
    return {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--context", type=int, default=300, help="tokens already in the cache")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.45, 0.6])
    p.add_argument("--blocks", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    p.add_argument("--compile", action="store_true", help="full passes and lean drafts compiled (compiled.py)")
    args = p.parse_args()

    model, _ = load_model(args.model)
    L = num_layers(model)
    cases = {f"full x{k}": (k, None, None) for k in args.blocks}
    cases.update({f"draft r={r}": (1, SkipSet.uniform(L, r), None) for r in args.ratios})
    # the drafter decoding uses on this family (leandraft.py), in the model's precision and in float16
    # (what draft_dtype="auto" picks for a small float32 model); left out where there is none
    cases.update({f"lean r={r}": (1, SkipSet.uniform(L, r), "model") for r in args.ratios})
    cases.update({f"lean16 r={r}": (1, SkipSet.uniform(L, r), "float16") for r in args.ratios})
    full_forward = None
    if args.compile:
        for dtype in ("model", "float16"):
            compile_passes(model, draft=dtype)
        full_forward = compiled_forward(model)
    times = pass_costs(model, args.context, cases, args.repeats, full_forward=full_forward)  # medians
    full = times["full x1"]
    print(f"# {args.model}: {L} layers, context {args.context}, medians of {args.repeats}, torch threads "
          f"{torch.get_num_threads()}{', full passes and lean drafts compiled' if args.compile else ''}")
    print(f"{'pass':<14} {'ms':>7} {'x full':>7}")
    for name, m in times.items():
        print(f"{name:<14} {m * 1e3:7.2f} {m / full:7.2f}")
    print("\nzero-overhead speedup bound, (a + 1) * full / (d * draft + verify(d + 1)), drafted d, accepted a:")
    for name in [n for n in times if n.startswith(("draft", "lean"))]:
        cells = []
        for d, a in ((2, 2), (4, 3), (6, 4), (8, 6)):
            block = min(args.blocks, key=lambda b: abs(b - (d + 1)))
            cells.append(f"d={d},a={a}: {(a + 1) * full / (d * times[name] + times[f'full x{block}']):.2f}x")
        print(f"  {name}: " + "   ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
