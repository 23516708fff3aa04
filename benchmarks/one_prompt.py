"""One prompt, one fresh process: `swiftlab generate` with no skip set given against `--method ar`.

What a person sees who runs `python -m swiftlab generate --model M --prompt "..."` once: the process
starts, loads the model, decodes the prompt with the default plan (plan.default_skip_plan: what the
skip-set store knows about the model, else plain steps with lookup drafts while a budgeted search looks
for a set) and exits. Each run is its own process (`python -m swiftlab generate ... --json`), SWIFT and
`--method ar` alternated prompt by prompt (which goes first alternates too), so drift hits both alike.

- cold: every SWIFT run gets an empty store of its own (--store in a fresh tmp folder);
- warm: every SWIFT run gets a copy of the store the cold runs wrote (their entries merged: a verdict wins
  over an unjudged set, then the higher matchness).

Per prompt: decode seconds (the record's wall_s) and whole-process seconds of both, their ratios
(ar / swift: above 1 is SWIFT faster), the steps SWIFT took by drafter, and whether the tokens are
the same. Then per model and phase the median ratio with its min-max. Target: median >= 0.97x, cold
and warm. Models: smollm2-135m on Spec-Bench questions, the lab model on its own tasks.

    python benchmarks/one_prompt.py                 # 10 prompts per model, 128 new tokens
    python benchmarks/one_prompt.py --quick         # 2 prompts, 80 new tokens: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC_BENCH = ROOT.parent / "shared" / "data" / "spec_bench" / "question.jsonl"
LAB_TASKS = ("reasoning", "summarization", "story", "code")


def prompts_for(model: str, n: int, data: Path) -> tuple[list[str], str]:
    from swiftlab.tasks import get_examples

    if model == "lab":
        per_task = [get_examples(task, n, seed=0) for task in LAB_TASKS]
        mixed = [ex.prompt for group in zip(*per_task) for ex in group]  # reasoning, summarization, story, code, ...
        return mixed[:n], "lab tasks " + ", ".join(LAB_TASKS)
    if not data.exists():
        sys.exit(f"Spec-Bench's question.jsonl is not at {data}: give --data")
    examples = get_examples("specbench", n, seed=0, path=str(data))
    return [ex.prompt for ex in examples], "Spec-Bench questions (first turns)"


def run_generate(model: str, prompt: str, max_new: int, store: Path, method: str, env: dict) -> dict:
    command = [sys.executable, "-m", "swiftlab", "generate", "--model", model, "--prompt", prompt,
               "--max-new-tokens", str(max_new), "--json", "--store", str(store), "--method", method]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    process_s = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"swiftlab generate failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    record = json.loads(done.stdout)
    record["process_s"] = process_s
    return record


def merge_stores(stores: list[Path], into: Path) -> None:
    """The cold runs' entries in one store: per key, a verdict over an unjudged set, then the higher matchness."""
    merged: dict[str, dict] = {}
    for path in stores:
        if not path.exists():
            continue
        for key, entry in json.loads(path.read_text()).items():
            score = (entry.get("verdict") is not None, entry.get("matchness") or 0.0)
            old = merged.get(key)
            if old is None or score > (old.get("verdict") is not None, old.get("matchness") or 0.0):
                merged[key] = entry
    into.write_text(json.dumps(merged, indent=1))


def run_phase(model: str, prompts: list[str], max_new: int, work: Path, phase: str, env: dict,
              warm_store: Path | None = None) -> list[dict]:
    rows = []
    for i, prompt in enumerate(prompts):
        store = work / f"{phase}-{i}" / "store.json"
        store.parent.mkdir(parents=True)
        if warm_store is not None and warm_store.exists():
            shutil.copy(warm_store, store)
        ar_store = work / f"{phase}-{i}-ar" / "store.json"  # never read by --method ar; kept apart anyway
        order = ("swift", "ar") if i % 2 == 0 else ("ar", "swift")
        runs = {m: run_generate(model, prompt, max_new, store if m == "swift" else ar_store, m, env) for m in order}
        swift, ar = runs["swift"], runs["ar"]
        rows.append({"prompt": i, "phase": phase, "ar": ar, "swift": swift, "store": store,
                     "decode_ratio": ar["wall_s"] / swift["wall_s"], "process_ratio": ar["process_s"] / swift["process_s"],
                     "same": swift["token_ids"] == ar["token_ids"]})
        print_row(rows[-1])
    return rows


def print_row(row: dict) -> None:
    s, a = row["swift"], row["ar"]
    d = s["drafters"]
    print(f"| {row['phase']} | {row['prompt']} | {a['new_tokens']} | {a['wall_s']:.2f} | {s['wall_s']:.2f} | "
          f"{row['decode_ratio']:.2f}x | {a['process_s']:.1f} | {s['process_s']:.1f} | {row['process_ratio']:.2f}x | "
          f"{d.get('ar', 0)}/{d.get('lookup', 0)}/{d.get('skip', 0)} | {s['plan']['kind']} | {row['same']} |", flush=True)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m,lab")
    parser.add_argument("--prompts", type=int, default=None, help="per model (default 10; --quick 2)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="default 128; --quick 80 (a cold run searches from about 70 on)")
    parser.add_argument("--data", type=Path, default=SPEC_BENCH, help="Spec-Bench question.jsonl")
    parser.add_argument("--quick", action="store_true", help="2 prompts, 80 new tokens: a check that it runs")
    args = parser.parse_args()
    n = args.prompts or (2 if args.quick else 10)
    max_new = args.max_new_tokens or (80 if args.quick else 128)
    summary = []
    with tempfile.TemporaryDirectory(prefix="one-prompt-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "SWIFTLAB_STORE": str(work / "unused-default-store.json"), "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            prompts, source = prompts_for(model, n, args.data)
            print(f"\n## {model}: {len(prompts)} prompts ({source}), {max_new} new tokens, a fresh process per run\n")
            print("| phase | prompt | tokens | ar decode s | swift decode s | ratio | ar process s | swift process s "
                  "| ratio | swift steps plain/lookup/skip | plan | same tokens |")
            print("| --- " * 12 + "|")
            cold = run_phase(model, prompts, max_new, work / model, "cold", env)
            warm_store = work / model / "warm-store.json"
            merge_stores([row["store"] for row in cold], warm_store)
            warm = run_phase(model, prompts, max_new, work / model, "warm", env, warm_store)
            stored = ", ".join(f"{key} ({entry.get('verdict') or 'not judged'})"
                               for key, entry in json.loads(warm_store.read_text()).items()) or "nothing"
            summary.append((model, cold, warm, stored))
    print("\n## median swift/ar (ar seconds over swift seconds: above 1 is faster), min-max\n")
    print("| model | phase | decode | whole process | same tokens |")
    print("| --- | --- | --- | --- | --- |")
    for model, cold, warm, stored in summary:
        for phase, rows in (("cold", cold), ("warm", warm)):
            print(f"| {model} | {phase} | {spread([r['decode_ratio'] for r in rows])} | "
                  f"{spread([r['process_ratio'] for r in rows])} | {all(r['same'] for r in rows)} |")
    for model, _, _, stored in summary:
        print(f"{model}: the cold runs stored {stored}")
    return 0 if all(r["same"] for _, cold, warm, _ in summary for r in cold + warm) else 1


if __name__ == "__main__":
    sys.exit(main())
