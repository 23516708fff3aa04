"""Benchmark: what dynamo's guards cost a compiled pass, and what checking only the differentiating ones saves.

    .venv/bin/python benchmarks/guard_cost.py [--model lab] [--context 300] [--blocks 20] [--calls 50]

Compiles the one-token and verify graphs and the lean16 draft graph (a few minutes on a CPU), then times,
on `context` random tokens already in the cache, a compiled one-token pass and a compiled lean16 draft pass
(r=0.45), each under every guard and under the differentiating guards alone (swiftlab/engine/guards.py, the
way runs call them), in blocks of `calls` calls alternated; prints medians over the blocks, their quartiles
and the ratio. Not a test: only ratios measured side by side mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import swiftlab.engine.guards as guards
from swiftlab import SkipSet, load_model, num_layers
from swiftlab.engine.cache import SkipAwareCache
from swiftlab.engine.compiled import compile_passes, compiled_forward
from swiftlab.engine.leandraft import lean_drafter


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--context", type=int, default=300)
    p.add_argument("--blocks", type=int, default=20)
    p.add_argument("--calls", type=int, default=50)
    args = p.parse_args()
    model, _ = load_model(args.model)
    seconds = compile_passes(model, tree=False, draft="float16")
    print(f"# {args.model}, context {args.context}, torch threads {torch.get_num_threads()}; compiled in "
          + ", ".join(f"{k} {s:.0f} s" for k, s in seconds.items()))
    cache = SkipAwareCache(model.config, capacity=args.context + 64)
    lean = lean_drafter(model, cache, "float16", compiled=True)
    skip = SkipSet.uniform(num_layers(model), 0.45)
    forward, light = compiled_forward(model), guards._set_stance
    with torch.inference_mode():
        vocab = model.get_input_embeddings().num_embeddings
        model(input_ids=torch.randint(1, vocab, (1, args.context)), cache=cache, use_cache=True)
        n = cache.get_seq_length()

        def full():
            forward(input_ids=torch.tensor([[5]]), position_ids=torch.tensor([[n]]), attention_mask=None,
                    cache=cache, use_cache=True)

        def draft():
            if lean is None or lean.logits(7, n, cache, skip) is None:
                raise SystemExit(f"{args.model} has no compiled lean draft here")

        passes = {"one-token pass": full, "lean16 draft r=0.45": draft}
        ms = {(name, how): [] for name in passes for how in ("every guard", "differentiating")}
        try:
            for _ in range(args.blocks):
                for name, how in ms:
                    guards._set_stance = light if how == "differentiating" else None  # None: every guard
                    t0 = time.perf_counter()
                    for _ in range(args.calls):
                        passes[name]()
                        cache.crop_to(n)
                    ms[(name, how)].append((time.perf_counter() - t0) / args.calls * 1e3)
        finally:
            guards._set_stance = light
    print(f"{'pass':22} {'guards':16} {'ms':>6}  quartiles")
    for (name, how), values in ms.items():
        q = statistics.quantiles(values, n=4)
        print(f"{name:22} {how:16} {statistics.median(values):6.2f}  {q[0]:.2f}-{q[2]:.2f}")
    for name in passes:
        ratio = statistics.median(ms[(name, "every guard")]) / statistics.median(ms[(name, "differentiating")])
        print(f"{name}: every guard / differentiating {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
