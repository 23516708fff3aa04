"""The probe and figure set on a real model and Spec-Bench categories, sized for a shared CPU.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/real_model_figures.py \
        --data ../shared/data/spec_bench/question.jsonl --out docs/figures/smollm2-135m

Like `swiftlab figures --model M --task specbench --data Q --category a,b,c,d`, with the sweep cut to
one category, three ratios and three strategies (the full plan takes hours at 135M on 2 shared cores). Resumable: a
finished probe's record is kept and not run again; the figures are redrawn from all records at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from swiftlab.analysis.experiments import draw, load_dir, run_probe, save
from swiftlab.models.loading import load_model
from swiftlab.tasks import task_source


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data", required=True, help="Spec-Bench question.jsonl")
    p.add_argument("--categories", default="math_reasoning,qa,translation,mt_bench",
                   help="Spec-Bench categories (summarization and rag prompts are ~1000 tokens: slow here)")
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--ratios", default="0.25,0.45,0.65")
    p.add_argument("--strategies", default="uniform,early_exit,swift",
                   help="skip-set strategies in the sweep (also: random, offline_bo)")
    p.add_argument("--dynamics-prompts", type=int, default=3,
                   help="the search stream decodes 5x this many prompts, the latency split 3x")
    p.add_argument("--window", type=int, default=16,
                   help="matchness window of the searches (a search steps only once a prompt has generated "
                        "this many tokens: the default 32 never steps at --max-new-tokens 32)")
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
        if probe == "sweep":  # run_probe's sweep with fewer strategies
            record = sweep(model, tokenizer, first, args)
        elif probe in ("dynamics", "latency", "task-sparsity"):  # run_probe's, with the search's window
            record = searched(probe, model, tokenizer, sources, args)
        else:
            record = run_probe(probe, model, tokenizer, task=source or first, tasks=sources, prompts=prompts,
                               max_new_tokens=args.max_new_tokens, progress=True)
        save(path, probe, record)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s", flush=True)
    for written in draw(load_dir(out), out):
        print(written)


def searched(probe, model, tokenizer, sources, args):
    from swiftlab.api import encode_prompt
    from swiftlab.analysis.probes import latency_breakdown, task_sparsity
    from swiftlab.search.skipsearch import SearchConfig
    from swiftlab.search.stream import SwiftStream

    config = SearchConfig(window=args.window)
    encode = lambda source, n, seed: [encode_prompt(tokenizer, ex.prompt) for ex in source.examples(n, seed=seed)]
    if probe == "task-sparsity":  # one held-out prompt per target in the transfer matrix
        return task_sparsity(model, {s.label: encode(s, args.prompts, 1) for s in sources},
                             {s.label: encode(s, 1, 0) for s in sources}, search=config,
                             max_new_tokens=args.max_new_tokens, progress=True)
    source, n = sources[0], args.dynamics_prompts
    stream = SwiftStream(model, config)
    results = [stream.decode(ids, max_new_tokens=args.max_new_tokens)
               for ids in encode(source, n * (5 if probe == "dynamics" else 3), 2 if probe == "dynamics" else 3)]
    if probe == "dynamics":
        return {"task": source.label, "trajectory": stream.search.trajectory.to_dict(), **stream.summary()}
    accelerating = [r for r, rec in zip(results, stream.records) if rec.phase == "accelerate"]
    return {"task": source.label, "all": latency_breakdown(results),
            "accelerating": latency_breakdown(accelerating or results)}


def sweep(model, tokenizer, source, args):
    from swiftlab.api import encode_prompt
    from swiftlab.analysis.probes import ratio_sweep

    prompts = [encode_prompt(tokenizer, ex.prompt) for ex in source.examples(args.prompts)]
    search_prompts = [encode_prompt(tokenizer, ex.prompt) for ex in source.examples(args.prompts, seed=1)]
    return ratio_sweep(model, prompts, tuple(float(r) for r in args.ratios.split(",")),
                       strategies=tuple(args.strategies.split(",")), task=source.label,
                       max_new_tokens=args.max_new_tokens, search_prompts=search_prompts, progress=True)


if __name__ == "__main__":
    main()
