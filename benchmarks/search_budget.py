"""Benchmark: the whole cold-start SWIFT stream (search included) against plain decoding, before and after.

    .venv/bin/python benchmarks/search_budget.py --model lab --tasks story,reasoning,code,summarization
    .venv/bin/python benchmarks/search_budget.py --model smollm2-135m --tasks summarization,rag \\
        --data ../shared/data/spec_bench/question.jsonl [--base /path/to/a/checkout/of/main]

Per task, `swiftlab bench --methods ar,hf-generate,swift,swift+lookup` from a cold start (an empty skip-set store),
with this checkout and, given --base, with another checkout of swiftlab (run with PYTHONPATH pointing
at it): each run interleaves its methods prompt by prompt, so its ratios are measured side by side.
Prints per task, version and stream (swift; swift+lookup, which also drafts by prompt lookup) the
stream's speedup over the faster of swiftlab's AR loop and transformers' generate, its search share
of wall time, and the verdict. With --data the tasks are
Spec-Bench categories. Not a test: ratios from one run on a shared machine; say the load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from swiftlab.analysis.harness import read_lines, summarize


def bench(code: Path, model: str, task: str, args, out: Path, fresh: bool) -> None:
    command = [sys.executable, "-m", "swiftlab", "bench", "--model", model, "--prompts", str(args.prompts),
               "--max-new-tokens", str(args.max_new_tokens), "--methods", ",".join(["ar", "hf-generate", *args.streams.split(",")]), "--out", str(out)]
    command += (["--task", "specbench", "--data", str(Path(args.data).resolve()), "--category", task] if args.data
                else ["--task", task])
    command += ["--fresh"] if fresh else []
    with tempfile.TemporaryDirectory() as empty:  # a cold start: no stored set to begin from
        env = {**os.environ, "PYTHONPATH": str(code), "SWIFTLAB_STORE": str(Path(empty) / "skip_layers.json")}
        # run in the checkout: `python -m` puts the working folder first on sys.path, before PYTHONPATH, so
        # from anywhere else it would import whichever swiftlab sits there (every version measured the same code)
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=code)


def row(lines, stream: str) -> dict:
    rows = {r["method"]: r for r in summarize(lines)}
    swift = rows[stream]
    facts = swift.get("search") or {}
    return {"ar": rows["ar"]["tokens_per_s"], "generate": rows["hf-generate"]["tokens_per_s"],
            "swift": swift["tokens_per_s"], "vs_best": swift["speedup_vs_best_ar"],
            "identical": swift["identical_to_ar"], "share": facts.get("search_share"),
            "verdict": facts.get("verdict"), "ratio": facts.get("ratio")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--tasks", default="story,reasoning,code,summarization")
    p.add_argument("--data", default=None, help="Spec-Bench question.jsonl: --tasks are its categories")
    p.add_argument("--prompts", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--streams", default="swift,swift+lookup", help="the stream methods measured")
    p.add_argument("--base", default=None, help="another swiftlab checkout to compare with (e.g. main)")
    p.add_argument("--code", default=None, help="the checkout measured as 'after' (default: this one)")
    p.add_argument("--out", default="runs/search_budget")
    args = p.parse_args()

    here = Path(args.code).resolve() if args.code else Path(__file__).resolve().parents[1]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    versions = {"after": here} | ({"before": Path(args.base).resolve()} if args.base else {})
    print(f"# {args.model}, {args.prompts} prompts x {args.max_new_tokens} new tokens, cold start; load {os.getloadavg()}")
    print("| task | version | stream | ar tok/s | generate tok/s | stream tok/s | vs best AR | search share | verdict "
          "| ratio | identical |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for task in args.tasks.split(","):
        for version, code in versions.items():
            path = out / f"{args.model.replace('/', '-')}-{task}-{version}.jsonl"
            path.unlink(missing_ok=True)
            bench(code, args.model, task, args, path, fresh=version == "after")
            for stream in args.streams.split(","):
                r = row(read_lines(path), stream)
                share = f"{r['share']:.1%}" if r["share"] is not None else "-"
                print(f"| {task} | {version} | {stream} | {r['ar']:.1f} | {r['generate']:.1f} | {r['swift']:.1f} | "
                      f"{r['vs_best']:.2f}x | {share} | {r['verdict'] or '-'} | "
                      f"{r['ratio'] if r['ratio'] is not None else '-'} | {r['identical']} |", flush=True)
    print(f"# load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
