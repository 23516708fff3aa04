"""The probe and figure set on a real model and Spec-Bench categories, sized for a shared CPU.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/real_model_figures.py \
        --data ../shared/data/spec_bench/question.jsonl --out docs/figures/smollm2-135m

Like `swiftlab figures --model M --task specbench --data Q --category a,b,c,d`, with the sweep cut to
one category and fewer ratios (the full plan takes hours at 135M on 2 shared cores). Resumable: a
finished probe's record is kept and not run again; the figures are redrawn from all records at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from swiftlab.experiments import draw, load_dir, run_probe, save
from swiftlab.loading import load_model
from swiftlab.tasks import task_source


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data", required=True, help="Spec-Bench question.jsonl")
    p.add_argument("--categories", default="math_reasoning,qa,translation,summarization")
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--ratios", default="0.2,0.35,0.5,0.65")
    p.add_argument("--dynamics-prompts", type=int, default=4, help="x5 prompts for the search stream")
    p.add_argument("--only", default=None, help="comma-separated probes to run (default: all)")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    sources = [task_source("specbench", args.data, c) for c in args.categories.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_model(args.model)
    first = sources[0]
    plan = [(probe, s) for probe in ("importance", "redundancy") for s in sources]
    plan += [("dynamics", first), ("latency", first), ("sweep", first), ("task-sparsity", None)]
    only = set(args.only.split(",")) if args.only else None
    for probe, source in plan:
        if only and probe not in only:
            continue
        path = out / f"{probe}-{source.label if source else 'all'}.json"
        if path.exists():
            continue
        start = time.perf_counter()
        prompts = args.dynamics_prompts if probe in ("dynamics", "latency") else args.prompts
        record = run_probe(probe, model, tokenizer, task=source or first, tasks=sources, prompts=prompts,
                           max_new_tokens=args.max_new_tokens, progress=True,
                           ratios=tuple(float(r) for r in args.ratios.split(",")))
        save(path, probe, record)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s", flush=True)
    for written in draw(load_dir(out), out):
        print(written)


if __name__ == "__main__":
    main()
