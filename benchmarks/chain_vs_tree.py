"""Benchmark: chain vs tree verification, same skip set, same prompts, side by side.

    .venv/bin/python benchmarks/chain_vs_tree.py --model lab [--prompts 4] [--skip-ratio 0.45]

Per task: autoregressive, SWIFT with chain verification and SWIFT with tree verification,
interleaved in one process; medians of tokens/s, the speedups over autoregressive, mean
accepted tokens per pass and mean tree size. The skip set is the cached one for the model and
task when there is one (`swiftlab optimize`), else the uniform set at --skip-ratio.
"""

from __future__ import annotations

import argparse
import statistics

from swiftlab import SkipSet, SwiftParams, decode, load_model, num_layers
from swiftlab.api import encode_prompt
from swiftlab.analysis.bench import interleaved
from swiftlab.search.store import SkipSetStore
from swiftlab.tasks import get_examples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--tasks", default="reasoning,summarization,story,code")
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--skip-ratio", type=float, default=0.45)
    p.add_argument("--store", default=None)
    args = p.parse_args()
    model, tokenizer = load_model(args.model)
    L = num_layers(model)
    print(f"{'task':<14} {'skip set':<8} {'AR tok/s':>9} {'chain':>7} {'tree':>7} {'chain tok/pass':>15} "
          f"{'tree tok/pass':>14} {'tree size':>10} same")
    for task in args.tasks.split(","):
        cached = SkipSetStore(args.store).get(args.model, task, L)
        skip = cached or SkipSet.uniform(L, args.skip_ratio)
        prompts = [encode_prompt(tokenizer, ex.prompt) for ex in get_examples(task, args.prompts, seed=3)]
        runs = {"ar": lambda ids, n: decode(model, ids, method="ar", max_new_tokens=n)}
        for verify in ("chain", "tree"):
            runs[verify] = (lambda v: lambda ids, n: decode(model, ids, method="swift", skip_set=skip,
                                                            max_new_tokens=n, swift=SwiftParams(verify=v)))(verify)
        res = interleaved(runs, prompts, max_new_tokens=args.max_new_tokens, repeats=args.repeats, progress=False)
        tps = {m: statistics.median(r.tokens_per_s for r in rs) for m, rs in res.items()}
        tpp = {m: statistics.median(r.mean_accepted_tokens for r in rs) for m, rs in res.items()}
        size = statistics.mean(s for r in res["tree"] for s in r.tree_size_per_step[1:]) if res["tree"] else 0
        same = all(a.token_ids == c.token_ids == t.token_ids for a, c, t in zip(res["ar"], res["chain"], res["tree"]))
        print(f"{task:<14} {'cached' if cached else 'uniform':<8} {tps['ar']:9.1f} {tps['chain'] / tps['ar']:6.2f}x "
              f"{tps['tree'] / tps['ar']:6.2f}x {tpp['chain']:15.2f} {tpp['tree']:14.2f} {size:10.1f} "
              f"{'yes' if same else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
