"""Benchmark: peak memory of SWIFT decoding against autoregressive decoding, same prompts.

    .venv/bin/python benchmarks/memory.py [--model lab] [--prompts 3] [--max-new-tokens 128]
    .venv/bin/python benchmarks/memory.py --model smollm2-135m --data ../shared/data/spec_bench/question.jsonl \
        --tasks summarization

Each (task, method) runs in a fresh process, so no allocator state carries over from another
method. In it: load the model, find a skip set the way SWIFT does (a search over the task's first
prompt), warm up with a short decode, then reset the kernel's peak-RSS counter (Linux:
/proc/self/clear_refs) and decode the held-out prompts. Reported: the peak resident memory the
decoding added over what the process held before it (KV cache, activations, logits, draft trees,
the search's batched scoring passes, allocator slack), and the whole process's peak (torch itself,
the weights, and that) as a ratio to autoregressive decoding. Methods: `ar`; `swift` with the skip
set the search found (the acceleration phase); `swift+search`, a cold-start stream (`SwiftStream`, its
budgeted search running, as `bench` runs it); `swift+lookup` and `swift+lookup+search`, the same two
drafting by prompt lookup too (up to harness.LOOKUP_TOKENS tokens, as `bench`'s swift+lookup). With
--data the tasks are Spec-Bench categories.
Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

METHODS = ("ar", "swift", "swift+search", "swift+lookup", "swift+lookup+search")


def _kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(args) -> None:
    """Measure one method on one task; print one JSON line."""
    from dataclasses import replace

    from swiftlab import SkipSet, decode, load_model, num_layers
    from swiftlab.api import encode_prompt
    from swiftlab.engine.decoding import SwiftParams
    from swiftlab.analysis.harness import LOOKUP_TOKENS
    from swiftlab.search.skipsearch import SearchConfig, SkipSearch
    from swiftlab.search.stream import StreamSettings, SwiftStream
    from swiftlab.tasks import task_source

    model, tokenizer = load_model(args.model)
    L = num_layers(model)
    source = task_source("specbench", data=args.data, category=args.task) if args.data else task_source(args.task)
    examples = source.examples(args.prompts + 1, seed=0)
    ids = [encode_prompt(tokenizer, ex.prompt) for ex in examples]
    search = SkipSearch(L, SearchConfig())
    decode(model, ids[0], method="swift", max_new_tokens=args.max_new_tokens, search=search)
    found = search.best
    lookup = "lookup" in args.child
    params = SwiftParams(lookup=LOOKUP_TOKENS) if lookup else SwiftParams()
    stream = SwiftStream(model, SearchConfig(ratios=(0.15, 0.25, 0.35, 0.45, 0.55)), SkipSet.uniform(L, 0.45),
                         settings=replace(StreamSettings(), swift=params))
    if args.child.endswith("search"):
        run = lambda p: stream.decode(p, max_new_tokens=args.max_new_tokens)
    elif args.child == "ar":
        run = lambda p: decode(model, p, method="ar", max_new_tokens=args.max_new_tokens)
    else:
        run = lambda p: decode(model, p, method="swift", skip_set=found, max_new_tokens=args.max_new_tokens,
                               swift=params)
    run(ids[0])  # warm-up: the allocator and the kernels' scratch space, as a served model would have
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS counter (VmHWM) to the current RSS
    before = _kib("VmRSS")
    for p in ids[1:]:
        run(p)
    print(json.dumps({"before_kib": before, "peak_kib": _kib("VmHWM")}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--tasks", default="reasoning,summarization,story,code")
    p.add_argument("--prompts", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--data", default=None, help="Spec-Bench question.jsonl: --tasks are its categories")
    p.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--task", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return 0

    print(f"# {args.model}: peak resident memory, {args.prompts} held-out prompts per task, "
          f"{args.max_new_tokens} new tokens, each method in a fresh process")
    print(f"{'task':<14} {'method':<20} {'added MiB':>10} {'process MiB':>12} {'process x ar':>13}")
    for task in args.tasks.split(","):
        got = {}
        for method in METHODS:
            out = subprocess.run([sys.executable, __file__, "--child", method, "--task", task, "--model", args.model,
                                  "--prompts", str(args.prompts), "--max-new-tokens", str(args.max_new_tokens),
                                  *(["--data", args.data] if args.data else [])],
                                 capture_output=True, text=True, check=True).stdout
            got[method] = json.loads(out.strip().splitlines()[-1])
        for method, m in got.items():
            added = (m["peak_kib"] - m["before_kib"]) / 1024
            print(f"{task:<14} {method:<20} {added:10.1f} {m['peak_kib'] / 1024:12.1f} "
                  f"{m['peak_kib'] / got['ar']['peak_kib']:12.3f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
