"""Benchmark: swiftlab's gated lookup drafts against pure prompt lookup, per task, with a fixed skip set.

    .venv/bin/python benchmarks/lookup_kinds.py [--tasks reasoning,summarization,story,code] [--prompts 8] [--repeats 2]

Why: transformers' prompt lookup (`prompt_lookup_num_tokens=10`: 2- then 1-gram matches, 10 tokens offered
every time, no drafter) beats swift+lookup on the lab model's summaries, and loses everywhere else. This
times, interleaved prompt by prompt with the order rotated, on each task's searched skip set
(docs/figures/task-sparsity-all.json, so no search runs):

  ar                 swiftlab's autoregressive loop: the baseline of every ratio
  hf-prompt-lookup   transformers' generate(prompt_lookup_num_tokens=10)
  swift+lookup       decode(..., swift=SwiftParams(lookup=15)): the engine's default rules (3- and 2-grams,
                     offers restarting at 3 or 7 after a miss, the skip drafter's gate)
  +1-gram,restart10  the same with 1-gram matches too and offers restarting at 10
  pure lookup        no skip drafts (the policy's "skip" ruled out): lookup or plain steps, 2- and 1-grams,
                     10 tokens offered every time, transformers' rule inside swiftlab's engine

For each: the median tokens/s, the median per-prompt ratio over ar with its range, and tokens per full-model
pass (transformers': its forward calls counted). Every output is checked token-identical to ar's (greedy):
a mismatch exits non-zero. Not a test: ratios from one run on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path

import torch

from swiftlab import SkipSet, SwiftParams, decode, load_model
from swiftlab.analysis.harness import make_runners
from swiftlab.engine.drafters import LookupDrafter
from swiftlab.engine.policy import StepPolicy
from swiftlab.tasks import get_examples
from swiftlab.tasks.chat import encode_prompt

TASK_SETS = Path(__file__).resolve().parents[1] / "docs" / "figures" / "task-sparsity-all.json"
TOKENS = 128


@contextlib.contextmanager
def restarting_at(length: int):
    """Lookup offers restart at `length` tokens after a miss (LookupDrafter's SHORT and LONG) meanwhile."""
    old = LookupDrafter.SHORT, LookupDrafter.LONG
    LookupDrafter.SHORT = LookupDrafter.LONG = length
    try:
        yield
    finally:
        LookupDrafter.SHORT, LookupDrafter.LONG = old


def pure_lookup() -> StepPolicy:
    policy = StepPolicy()
    policy.rule_out("skip", "pure prompt lookup: no skip drafts")
    return policy


def methods(model, task: str, skip: SkipSet) -> dict:
    """name -> a function of the prompt's ids giving (token ids, wall seconds, full-model passes)."""
    hf = make_runners(model, ["ar", "hf-prompt-lookup"], task=task, model_name="lab")
    def transformers(ids):
        passes = []
        hook = model.register_forward_hook(lambda *_: passes.append(1))
        try:
            result = hf["hf-prompt-lookup"](ids, TOKENS)
        finally:
            hook.remove()
        return result.token_ids, result.wall_s, len(passes) - 1  # the prompt's pass left out

    def engine(swift: SwiftParams, restart: int | None = None, pace=None):
        def run(ids):
            with restarting_at(restart) if restart else contextlib.nullcontext():
                r = decode(model, ids, skip_set=skip, max_new_tokens=TOKENS, swift=swift,
                           pace=pace() if pace else None)
            return r.token_ids, r.wall_s, len(r.drafted_per_step)
        return run

    def ar(ids):
        r = hf["ar"](ids, TOKENS)
        return r.token_ids, r.wall_s, len(r.token_ids)

    return {"ar": ar, "hf-prompt-lookup": transformers,
            "swift+lookup": engine(SwiftParams(lookup=15)),
            "+1-gram,restart10": engine(SwiftParams(lookup=15, lookup_ngrams=(3, 2, 1)), restart=10),
            "pure lookup": engine(SwiftParams(lookup=10, lookup_ngrams=(2, 1)), restart=10, pace=pure_lookup)}


def run_task(model, tokenizer, task: str, prompts: int, repeats: int) -> list[str]:
    record = json.loads(TASK_SETS.read_text())["record"]
    skip = SkipSet.from_dict(record["skip_sets"][task], record["num_layers"])
    ids_list = [encode_prompt(tokenizer, ex.prompt) for ex in get_examples(task, prompts, seed=1)]
    runs = methods(model, task, skip)
    names = list(runs)
    for name in names:
        runs[name](ids_list[0])  # warm-up
    tps = {m: [] for m in names}
    ratio = {m: [] for m in names}
    per_pass = {m: [] for m in names}
    for repeat in range(repeats):
        for i, ids in enumerate(ids_list):
            shift = (i + repeat) % len(names)
            got = {}
            for name in names[shift:] + names[:shift]:
                got[name] = runs[name](ids)
            tokens, ar_seconds, _ = got["ar"]
            for name, (out, seconds, passes) in got.items():
                if list(out) != list(tokens):
                    sys.exit(f"lookup_kinds: MISMATCH: {name} differs from ar on {task} prompt {i}")
                tps[name].append(len(out) / seconds)
                ratio[name].append(ar_seconds / seconds)
                per_pass[name].append(len(out) / max(passes, 1))
    lines = [f"## {task}: {prompts} prompts x {repeats} repeats, {TOKENS} new tokens, skip set {skip}",
             f"{'method':20} {'tok/s':>7} {'over ar':>7} {'range':>11} {'tokens/pass':>11}"]
    for name in names:
        r = ratio[name]
        lines.append(f"{name:20} {statistics.median(tps[name]):7.1f} {statistics.median(r):6.2f}x "
                     f"{min(r):5.2f}-{max(r):<5.2f} {statistics.median(per_pass[name]):11.2f}")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="reasoning,summarization,story,code")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    model, tokenizer = load_model("lab")
    print(f"# lab model, {torch.get_num_threads()} torch threads; every output checked against ar's (a mismatch stops the run)")
    for task in args.tasks.split(","):
        print("\n".join(run_task(model, tokenizer, task, args.prompts, args.repeats)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
