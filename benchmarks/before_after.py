"""Benchmark: this checkout's decoding engine against another checkout's, alternated in one process.

    git archive main | tar -x -C /tmp/before
    .venv/bin/python benchmarks/before_after.py /tmp/before [--model lab] [--repeats 3] [--max-new-tokens 128]

Both packages are imported side by side (the other one as `swiftlab_before`), decode the same prompts on
the same model object, turn by turn (old, new, new, old, ...), greedy, with methods ar, swift (the task's
fixed skip set from docs/figures/task-sparsity-all.json, no search) and swift+lookup. Prints median
tokens per second of each and the new/old ratio per method (median over prompts x repeats, with min-max),
and checks that both give the same tokens. Not a test: only ratios measured side by side mean anything.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

import swiftlab
from swiftlab import SkipSet, load_model
from swiftlab.api import encode_prompt
from swiftlab.tasks import get_examples

TASKS = ("reasoning", "story", "code")  # one held-out prompt each
SETS = Path(__file__).resolve().parent.parent / "docs" / "figures" / "task-sparsity-all.json"


def import_as(name: str, checkout: Path):
    """The swiftlab package of another checkout, imported under `name`."""
    spec = importlib.util.spec_from_file_location(name, checkout / "swiftlab" / "__init__.py",
                                                  submodule_search_locations=[str(checkout / "swiftlab")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def timed(package, model, ids, method, skip_set, lookup, max_new_tokens):
    # the package's top-level names, which both the flat and the layered layouts export
    s = package.SkipSet.from_dict(skip_set.to_dict()) if skip_set else None
    t0 = time.perf_counter()
    result = package.decode(model, ids, method="ar" if method == "ar" else "swift", skip_set=s,
                            max_new_tokens=max_new_tokens, swift=package.SwiftParams(lookup=lookup))
    return result.token_ids, len(result.token_ids) / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", type=Path, help="a checkout (or `git archive` of one) to compare with")
    p.add_argument("--model", default="lab")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads (one: steadier on a shared machine)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    old, new = import_as("swiftlab_before", args.before), swiftlab
    model, tokenizer = load_model(args.model)
    sets = json.loads(SETS.read_text())["record"]["skip_sets"]
    prompts = [(task, encode_prompt(tokenizer, get_examples(task, 1, seed=0)[0].prompt)) for task in TASKS]
    methods = {"ar": (None, 0), "swift": (True, 0), "swift+lookup": (True, 10)}
    speeds = {(m, v): [] for m in methods for v in ("old", "new")}
    for task, ids in prompts:
        skip_set = SkipSet.from_dict(sets[task])
        for method, (uses_set, lookup) in methods.items():
            for package, label in ((old, "old"), (new, "new")):  # warm-up, out of the timing
                timed(package, model, ids, method, skip_set if uses_set else None, lookup, 8)
            for repeat in range(args.repeats):
                outputs, pair = {}, ((old, "old"), (new, "new"))
                for package, label in pair[::1 if repeat % 2 == 0 else -1]:  # who goes first alternates
                    outputs[label], speed = timed(package, model, ids, method, skip_set if uses_set else None,
                                                  lookup, args.max_new_tokens)
                    speeds[method, label].append(speed)
                assert outputs["old"] == outputs["new"], f"{method} on {task}: the outputs differ"
    print(f"# {args.model}, {len(prompts)} prompts x {args.repeats} repeats, {args.max_new_tokens} new tokens, "
          f"greedy, {args.threads} torch thread(s); load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'method':14} {'old tok/s':>10} {'new tok/s':>10} {'new/old':>8}  min-max")
    for method in methods:
        o, n = speeds[method, "old"], speeds[method, "new"]
        ratios = [b / a for a, b in zip(o, n)]
        print(f"{method:14} {statistics.median(o):10.1f} {statistics.median(n):10.1f} "
              f"{statistics.median(ratios):8.3f}  {min(ratios):.3f}-{max(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
