"""How far decoding runs from the machine's limit: one pass against the time it takes to read the weights.

    .venv/bin/python benchmarks/limit.py --model smollm2-135m [--device cpu] [--task summarization] [--prompts 5]
    python3 benchmarks/limit.py --shape llama2-7b --dtype float16 --device cuda --methods ar,ar-compile,hf-static-compile

--shape builds a randomly initialised Llama with a real model's layer shapes at full depth (gpu_check.py's
LLAMA2 shapes; `tiny` for a smoke run) in `--dtype`, prompted with the lab model's tokens: its passes cost
what the real model's do, so its plain decodings' pass/bound means what theirs would (its streams' numbers
mean nothing: random weights draft nothing right).

A one-token pass of a small-batch decoder reads every weight once and does little else, so its floor is the
weight-read time: the bytes the pass reads (every parameter; the input embedding only where it is the output
head too, since a pass gathers one row of it) over the read bandwidth measured here, the faster of a sum and
a matrix-vector product over a buffer of the same size and dtype (so caches help the bound as they help the
model). Then, side by side in one process, prompt by prompt with the order rotated:

  ar                 swiftlab's autoregressive loop (the engine's plain steps)
  ar-compile         the same with its passes compiled (SwiftParams(compile=True); compiled in the warm-up)
  hf-generate        transformers' generate(), eager, its dynamic cache
  hf-static          generate() with its static (preallocated) cache
  hf-static-compile  generate() with its static cache and its forward compiled (inductor; its first call,
                     the warm-up, compiles: that time is printed)
  swift              a SWIFT stream over the prompts (its search from a cold start included)
  swift+lookup       the same, drafting by prompt lookup where the text repeats
  swift-compile, swift+lookup-compile  the two streams with the full model's passes compiled

For each: the median ms per full-model pass after the prompt pass (plain decodings: (T(n) - T(1)) / (n - 1),
each timed on the same prompt; streams: their wall time over their passes) and the median tokens/s with its
spread. The last line:

    limit: <model> AR pass/bound <x>, swift+lookup over best AR <y>

with the best AR the fastest plain decoding of this run (compiled included) and swift+lookup the faster of its
eager and compiled streams. Not a test: ratios from one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from swiftlab import load_model
from swiftlab.analysis.harness import make_runners
from swiftlab.engine.compiled import compile_passes
from swiftlab.tasks import get_examples
from swiftlab.tasks.chat import encode_prompt

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_check.py beside this file
from gpu_check import DTYPES, LLAMA2, Shape, random_llama  # noqa: E402

SHAPES = {**LLAMA2, "tiny": Shape(64, 4, 172, 2048, 4)}  # tiny: a smoke run's (the lab's vocabulary)

PLAIN = ("ar", "ar-compile", "hf-generate", "hf-static", "hf-static-compile")
STREAMS = ("swift", "swift+lookup", "swift-compile", "swift+lookup-compile")


def bytes_read_per_pass(model) -> int:
    """Bytes of the parameters a one-token pass reads: each tensor once (tied ones once), the input
    embedding left out unless it is the output head too."""
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() in seen or (p is embedding and p.data_ptr() != head.data_ptr()):
            continue
        seen.add(p.data_ptr())
        total += p.numel() * p.element_size()
    return total


def read_bandwidth(nbytes: int, dtype: torch.dtype, device: torch.device, repeats: int = 30) -> float:
    """Bytes per second this machine reads a buffer of `nbytes` in `dtype`: the faster of a sum over it and a
    matrix-vector product with it as the matrix, each the median of `repeats` timings."""
    width = 2048
    matrix = torch.randn(max(nbytes // (torch.finfo(dtype).bits // 8) // width, 1), width, dtype=dtype, device=device)
    vector = torch.randn(1, width, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def median_seconds(work) -> float:
        work()
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            work()
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    fastest = min(median_seconds(matrix.sum), median_seconds(lambda: torch.nn.functional.linear(vector, matrix)))
    return matrix.numel() * matrix.element_size() / fastest


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="lab")
    p.add_argument("--shape", choices=sorted(SHAPES), help="a random model of these layer shapes instead of --model")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="the model's precision (default: its own; "
                   "float16 with --shape)")
    p.add_argument("--device", default=None, help="e.g. cpu or cuda (default: where the loader puts the model)")
    p.add_argument("--task", default="summarization")
    p.add_argument("--prompts", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--methods", default=",".join(PLAIN + STREAMS))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.shape:
        _, tokenizer = load_model("lab")  # its prompts' tokens: every shape's vocabulary holds them
        shape = SHAPES[args.shape]
        model = random_llama(shape, shape.depth, DTYPES[args.dtype or "float16"], args.device or "cpu", "sdpa")
        args.model = f"{args.shape}-shape"
    else:
        options = {name: value for name, value in (("device", args.device), ("dtype", args.dtype)) if value}
        model, tokenizer = load_model(args.model, **options)
    device = model.get_output_embeddings().weight.device
    dtype = model.get_output_embeddings().weight.dtype
    methods = [m for m in args.methods.split(",") if m]

    nbytes = bytes_read_per_pass(model)
    bandwidth = read_bandwidth(nbytes, dtype, device)
    bound_ms = nbytes / bandwidth * 1e3
    print(f"{args.model} on {device} ({dtype}, {torch.get_num_threads()} threads): a pass reads {nbytes / 1e6:.1f} MB, "
          f"read at {bandwidth / 1e9:.1f} GB/s: weight-read bound {bound_ms:.2f} ms per pass", flush=True)

    prompts = [encode_prompt(tokenizer, ex.prompt) for ex in get_examples(args.task, args.prompts, seed=0)]
    runners = make_runners(model, methods, task=args.task, model_name=args.model)
    if any(m in methods for m in ("ar-compile", "swift-compile", "swift+lookup-compile")):
        t0 = time.perf_counter()
        swifting = any(m in methods for m in ("swift-compile", "swift+lookup-compile"))
        seconds = compile_passes(model, tree=swifting, verify=swifting)
        print(f"  compiled passes in {time.perf_counter() - t0:.1f} s (" +
              ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()) + ")", flush=True)
    longest = max(prompts, key=len)
    for name in methods:  # warm-ups (compiles) outside the numbers; a stream's first prompt is its cold start
        if name in STREAMS:
            continue
        t0 = time.perf_counter()
        # generate() keeps its static cache while a run fits in it, and a bigger one is a new graph to compile
        runners[name](longest, args.max_new_tokens if name.startswith("hf-static") else 4)
        print(f"  warm-up {name}: {time.perf_counter() - t0:.1f} s", flush=True)

    n = args.max_new_tokens
    pass_ms = {m: [] for m in methods}
    tps = {m: [] for m in methods}
    tokens = {m: [] for m in methods}
    for i, ids in enumerate(prompts):
        order = methods[i % len(methods):] + methods[:i % len(methods)]
        for name in order:
            result = runners[name](ids, n)
            tps[name].append(len(result.token_ids) / result.wall_s)
            tokens[name].append(list(result.token_ids))
            if name in STREAMS:
                pass_ms[name].append(result.wall_s / max(len(result.drafted_per_step), 1) * 1e3)
            elif len(result.token_ids) > 1:
                one = runners[name](ids, 1)
                pass_ms[name].append((result.wall_s - one.wall_s) / (len(result.token_ids) - 1) * 1e3)
        # the medians so far, so that a run cut short still says something
        print(f"  prompt {i + 1}/{len(prompts)} done: ms/pass " +
              ", ".join(f"{m} {statistics.median(pass_ms[m]):.2f}" for m in methods if pass_ms[m]), flush=True)

    print(f"\n{'method':18} {'ms/pass':>22} {'pass/bound':>10} {'tokens/s':>24}")
    for name in methods:
        ms = statistics.median(pass_ms[name])
        print(f"{name:18} {spread(pass_ms[name]):>22} {ms / bound_ms:9.2f}x {spread(tps[name]):>24}")
    plain = [m for m in methods if m in PLAIN]
    best_ar = max(plain, key=lambda m: statistics.median(tps[m])) if plain else None
    ar_ratio = min(statistics.median(pass_ms[m]) for m in plain) / bound_ms if plain else float("nan")
    lookups = [statistics.median(tps[m]) for m in ("swift+lookup", "swift+lookup-compile") if m in tps]
    lookup = max(lookups) / statistics.median(tps[best_ar]) if best_ar and lookups else float("nan")
    print(f"(best AR: {best_ar})")
    if "ar" in tokens:  # compiled and half-precision passes may round a near-tie the other way: counted, not failed
        print("outputs token-identical to ar's: " + ", ".join(
            f"{m} {sum(a == b for a, b in zip(tokens[m], tokens['ar']))}/{len(prompts)}" for m in methods if m != "ar"))
    print(f"limit: {args.model} AR pass/bound {ar_ratio:.2f}x, swift+lookup over best AR {lookup:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
