"""GPU check: CUDA correctness, pass costs and SWIFT vs AR in one command (204 s on an H200;
docs/measurements.md's NVIDIA H200 section has its tables).

    python3 benchmarks/gpu_check.py --device cuda --out runs/gpu_check.json
    python3 benchmarks/gpu_check.py --smoke --device cpu      # tiny sizes, seconds: what the tests run

On the lent GPU machine (torch there, an older transformers, no network): `bash bin/gpu-wheels` here puts the
wheels it lacks into .whl/, then one call of the run tool, with carry [".whl"] and timeout_s 570, runs

    set -o pipefail; python3 -m pip install -q --no-index --find-links .whl -r .whl/requirements.txt && PYTHONPATH=$PWD PYTHONUNBUFFERED=1 timeout 540 python3 benchmarks/gpu_check.py --device cuda --out $OUT/gpu_check.json 2>&1 | tee $OUT/gpu_check.log

Three parts, each a markdown table on stdout and a part of the JSON record (rewritten after every part, so a
run cut short keeps what it measured):
1. Greedy identity: SWIFT (chain, tree, and tree drafted through transformers instead of the lean drafter)
   against the model's own `generate(do_sample=False)`, in float16 and bfloat16, with SDPA and eager
   attention, on the lab model and on randomly initialised models with Llama-2-7B and -13B layer shapes
   (a few layers). In half precision a k-token verify pass rounds differently from k one-token passes, so
   at a near-tie the two may pick different tokens; a difference is therefore judged by teacher forcing
   both outputs through the model: a "float tie" if every token of both is within the dtype's rounding of
   the argmax, a MISMATCH (exit status 1) if any token is further off. The random models' residual
   branches are scaled down so that the drafter agrees with the model often enough to exercise accepted
   drafts; their acceptance says nothing about real models.
2. Pass costs (synchronised medians): a full one-token pass, a draft pass at r = 0.3 and 0.45 (through
   transformers and through the lean drafter), and verify passes of 1-64 tokens, on the lab model and on
   the 7B and 13B shapes at full depth (32 and 40 layers: a skip ratio over two middle layers means
   nothing), through benchmarks/step_costs.py's `pass_costs`.
3. SWIFT vs autoregressive decoding on the lab model: each task's searched skip set (the committed record
   docs/figures/task-sparsity-all.json), prompts x repeats interleaved through swiftlab.analysis.bench.compare,
   median tokens/s and the per-prompt speedup's median [min-max].
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # step_costs.py beside this file

from step_costs import pass_costs  # noqa: E402

from swiftlab import SkipSet, SwiftParams, decode, load_model, num_layers  # noqa: E402
from swiftlab.api import encode_prompt  # noqa: E402
from swiftlab.analysis.bench import compare, hf_generate  # noqa: E402
from swiftlab.cli import DEMO_PROMPTS  # noqa: E402
from swiftlab.engine.decoding import eos_ids  # noqa: E402
from swiftlab.support.errors import SwiftlabError  # noqa: E402
from swiftlab.support.storage import atomic_write_json, check_writable  # noqa: E402
from swiftlab.tasks import get_examples  # noqa: E402

TASK_SETS = ROOT / "docs" / "figures" / "task-sparsity-all.json"  # the lab model's searched set per task
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# a float tie: within this many units of the dtype's rounding (eps) of the largest logit
TIE_EPS = 8
TIE_FLOOR = 1e-4  # float32 passes of different shapes still differ in the last bits
VERDICTS = ("identical", "float tie", "MISMATCH")  # best to worst


@dataclass(frozen=True)
class Shape:
    """A Llama-2 layer shape; the models built from it are randomly initialised."""
    hidden: int
    heads: int
    intermediate: int
    vocab: int
    depth: int  # the real model's layer count, used for the pass costs


@dataclass(frozen=True)
class Sizes:
    shapes: dict
    check_layers: int = 4  # layers of the random models the identity check decodes with
    dtypes: tuple = ("float16", "bfloat16")
    attentions: tuple = ("sdpa", "eager")
    prompts: int = 2
    prompt_tokens: int = 48
    new_tokens: int = 64
    cost_context: int = 512
    cost_repeats: int = 30
    cost_depth: bool = True  # pass costs at the real depth (else at check_layers)
    ratios: tuple = (0.3, 0.45)
    widths: tuple = (1, 2, 4, 8, 16, 32, 64)
    tasks: tuple = ("reasoning", "summarization", "story", "code")
    speed_prompts: int = 3
    speed_repeats: int = 2
    speed_tokens: int = 128


LLAMA2 = {"llama2-7b": Shape(4096, 32, 11008, 32000, 32), "llama2-13b": Shape(5120, 40, 13824, 32000, 40)}
FULL = Sizes(LLAMA2)
# the same parts at toy sizes: every code path in seconds on a CPU; the numbers mean nothing
SMOKE = Sizes({"llama2-7b (smoke: width 64)": Shape(64, 4, 172, 512, 4),
               "llama2-13b (smoke: width 80)": Shape(80, 5, 216, 512, 4)},
              dtypes=("float32",), check_layers=3, prompts=1, prompt_tokens=12, new_tokens=12, cost_context=32, cost_repeats=2,
              cost_depth=False, widths=(1, 4), tasks=("story",), speed_prompts=1, speed_repeats=1, speed_tokens=12)

# SWIFT variants checked against generate(): fallback off, so every step drafts and verifies
VARIANTS = {"chain": SwiftParams(verify="chain", fallback=False),
            "tree": SwiftParams(verify="tree", fallback=False),
            "tree, transformers drafter": SwiftParams(verify="tree", fallback=False, lean_draft=False)}
# a random model's drafter is never confident: draft a fixed length so that trees are verified
RANDOM_VARIANTS = {name: replace(params, epsilon=0.0, max_draft=6) for name, params in VARIANTS.items()}


def random_llama(shape: Shape, layers: int, dtype: torch.dtype, device: str, attention: str, seed: int = 0):
    """A Llama with `shape`'s layers, randomly initialised on `device`. Its attention and MLP outputs are
    scaled so each adds about a quarter of the embedding's size to the residual stream: the next token then
    depends on the context but skipping a few sub-layers changes it only sometimes, so drafts are accepted
    and rejected (at initialisation's scale every sub-layer rewrites the stream and no draft is ever right)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                         num_hidden_layers=layers, num_attention_heads=shape.heads, num_key_value_heads=shape.heads,
                         max_position_embeddings=4096, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                         tie_word_embeddings=False)
    torch.manual_seed(seed)
    with torch.device(device):  # built where it runs: a 13B-shaped model never passes through host memory
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attention).to(device)
    branch = 0.25 / (config.initializer_range * shape.hidden)  # a branch's output is ~(0.02 sqrt(hidden))^2 rms
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(branch)
            layer.mlp.down_proj.weight.mul_(branch)
    model.generation_config.pad_token_id = config.eos_token_id  # generate() would say so at every call
    return model.eval()


def lab_model(dtype: str, device: str, attention: str):
    model, tokenizer = load_model("lab", dtype=dtype, device=device)
    model.set_attn_implementation(attention)
    return model, tokenizer


def free(device: str) -> None:
    """Give the last model's memory back before the next is built: the 13B-shaped model at full depth takes a
    third of an H100, and two left to the cyclic collector would not fit beside a third."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# --- part 1: greedy identity -------------------------------------------------------------------------------

def greedy_gaps(model, prompt: list[int], tokens: list[int]) -> list[float]:
    """Per new token: how far its logit is below the largest one, over the largest logit's size, when the
    whole sequence is fed through the model at once (teacher forcing). 0 where it is the argmax."""
    device = model.get_input_embeddings().weight.device
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt + tokens], device=device)).logits[0].float()
    steps = logits[len(prompt) - 1: len(prompt) - 1 + len(tokens)]
    chosen = steps.gather(1, torch.tensor(tokens, device=device)[:, None])[:, 0]
    top = steps.max(-1).values
    return ((top - chosen) / top.abs().clamp(min=1.0)).tolist()


def tie_tolerance(dtype: torch.dtype) -> float:
    return max(TIE_EPS * torch.finfo(dtype).eps, TIE_FLOOR)


def judge(model, prompt: list[int], reference: list[int], candidate: list[int]) -> dict:
    """Compare SWIFT's tokens with generate()'s: identical, a float tie (both are greedy within the dtype's
    rounding at every token), or a MISMATCH (some token is not the model's greedy choice)."""
    if candidate == reference:
        return {"verdict": "identical", "first_difference": None, "worst_gap": 0.0}
    first = next((i for i, (a, b) in enumerate(zip(reference, candidate)) if a != b),
                 min(len(reference), len(candidate)))
    tolerance = tie_tolerance(model.get_input_embeddings().weight.dtype)
    worst = max(max(greedy_gaps(model, prompt, seq), default=0.0) for seq in (reference, candidate))
    shorter = min(reference, candidate, key=len)
    # a shorter output must end at end-of-text; else one of the two stopped (or ran on) for no reason
    length_ok = len(reference) == len(candidate) or (bool(shorter) and shorter[-1] in eos_ids(model))
    verdict = "float tie" if worst <= tolerance and length_ok else "MISMATCH"
    return {"verdict": verdict, "first_difference": first, "worst_gap": worst, "tolerance": tolerance}


def identity_rows(model, model_name: str, dtype: str, attention: str, prompts: list[list[int]],
                  new_tokens: int, variants: dict) -> list[dict]:
    """One row per SWIFT variant: how its greedy output compares with generate() on every prompt."""
    references = [hf_generate(model, ids, new_tokens).token_ids for ids in prompts]
    skip = SkipSet.uniform(num_layers(model), 0.45)
    rows = []
    for name, params in variants.items():
        verdicts, results = [], []
        for ids, reference in zip(prompts, references):
            result = decode(model, ids, method="swift", skip_set=skip, max_new_tokens=new_tokens, swift=params)
            results.append(result)
            verdicts.append(judge(model, ids, reference, result.token_ids))
        rows.append({"model": model_name, "dtype": dtype, "attention": attention, "decoding": name,
                     "identical": sum(v["verdict"] == "identical" for v in verdicts), "prompts": len(prompts),
                     "verdict": max((v["verdict"] for v in verdicts), key=VERDICTS.index),
                     "worst_gap": max(v["worst_gap"] for v in verdicts),
                     "first_difference": [v["first_difference"] for v in verdicts],
                     "tokens_per_pass": statistics.median(r.mean_accepted_tokens for r in results),
                     "acceptance": statistics.median(r.acceptance_rate for r in results),
                     "tree_nodes": max((max(r.tree_size_per_step, default=0) for r in results), default=0)})
    return rows


def random_prompts(vocab: int, count: int, length: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(3, vocab, (length,), generator=generator).tolist() for _ in range(count)]


def lab_identity(sizes: Sizes, dtype: str, device: str, attention: str) -> list[dict]:
    model, tokenizer = lab_model(dtype, device, attention)
    prompts = [encode_prompt(tokenizer, text) for text in DEMO_PROMPTS[:sizes.prompts]]
    return identity_rows(model, "lab", dtype, attention, prompts, sizes.new_tokens, VARIANTS)


def random_identity(sizes: Sizes, name: str, dtype: str, device: str, attention: str) -> list[dict]:
    shape = sizes.shapes[name]
    model = random_llama(shape, sizes.check_layers, DTYPES[dtype], device, attention)
    prompts = random_prompts(shape.vocab, sizes.prompts, sizes.prompt_tokens)
    return identity_rows(model, f"{name}, {sizes.check_layers} layers, random", dtype, attention, prompts,
                         sizes.new_tokens, RANDOM_VARIANTS)


def check_identity(sizes: Sizes, device: str, record: dict, bar) -> None:
    for dtype in sizes.dtypes:
        for attention in sizes.attentions:
            guarded(record, "identity", f"lab {dtype} {attention}",
                    lambda: lab_identity(sizes, dtype, device, attention))
            bar.update()
            for name in sizes.shapes:
                guarded(record, "identity", f"{name} {dtype} {attention}",
                        lambda: random_identity(sizes, name, dtype, device, attention))
                free(device)
                bar.update()


# --- part 2: pass costs ------------------------------------------------------------------------------------

def cost_cases(layers: int, sizes: Sizes) -> dict:
    """step_costs.pass_costs cases: verify blocks of each width, then draft passes at each ratio."""
    cases = {f"full x{k}": (k, None, None) for k in sizes.widths}
    cases.update({f"draft r={r}": (1, SkipSet.uniform(layers, r), None) for r in sizes.ratios})
    cases.update({f"lean r={r}": (1, SkipSet.uniform(layers, r), "model") for r in sizes.ratios})
    return cases


def cost_row(model, model_name: str, dtype: str, sizes: Sizes) -> list[dict]:
    layers = num_layers(model)
    times = pass_costs(model, sizes.cost_context, cost_cases(layers, sizes), sizes.cost_repeats)
    return [{"model": f"{model_name}, {layers} layers", "dtype": dtype, "layers": layers,
             "context": sizes.cost_context, "ms": {name: seconds * 1e3 for name, seconds in times.items()},
             "x_full": {name: seconds / times["full x1"] for name, seconds in times.items()}}]


def lab_costs(sizes: Sizes, dtype: str, device: str) -> list[dict]:
    return cost_row(lab_model(dtype, device, "sdpa")[0], "lab", dtype, sizes)


def random_costs(sizes: Sizes, name: str, dtype: str, device: str) -> list[dict]:
    shape = sizes.shapes[name]
    layers = shape.depth if sizes.cost_depth else sizes.check_layers
    return cost_row(random_llama(shape, layers, DTYPES[dtype], device, "sdpa"), f"{name}, random", dtype, sizes)


def measure_costs(sizes: Sizes, device: str, record: dict, bar) -> None:
    for dtype in sizes.dtypes:
        guarded(record, "pass_costs", f"lab {dtype}", lambda: lab_costs(sizes, dtype, device))
        bar.update()
        for name in sizes.shapes:
            guarded(record, "pass_costs", f"{name} {dtype}", lambda: random_costs(sizes, name, dtype, device))
            free(device)
            bar.update()


# --- part 3: SWIFT vs autoregressive decoding on the lab model ----------------------------------------------

def task_skip_set(task: str, layers: int) -> tuple[SkipSet, str]:
    """The committed searched set for the task, else the uniform set at r = 0.45 (and which it was)."""
    try:
        found = json.loads(TASK_SETS.read_text())["record"]["skip_sets"][task]
        return SkipSet.from_dict(found, layers), "searched (docs/figures/task-sparsity-all.json)"
    except (OSError, KeyError, ValueError):
        return SkipSet.uniform(layers, 0.45), "uniform r=0.45"


def speed_row(model, tokenizer, task: str, sizes: Sizes) -> list[dict]:
    skip, source = task_skip_set(task, num_layers(model))
    prompts = [encode_prompt(tokenizer, ex.prompt) for ex in get_examples(task, sizes.speed_prompts)]
    comparison = compare(model, prompts, skip, max_new_tokens=sizes.speed_tokens, repeats=sizes.speed_repeats,
                         with_hf_generate=True, progress=False)
    summary = comparison.summary()
    median, low, high = comparison.speedup_spread()
    verdicts = [judge(model, ar.prompt_ids, ar.token_ids, swift.token_ids)["verdict"]
                for ar, swift in zip(comparison.ar, comparison.swift)]
    return [{"verdict": max(verdicts, key=VERDICTS.index), "task": task, "skip_set": skip.to_dict(), "skip_set_source": source, "ratio": skip.ratio,
             "prompts": len(prompts), "repeats": sizes.speed_repeats, "new_tokens": sizes.speed_tokens,
             "speedup_median": median, "speedup_min": low, "speedup_max": high, **summary}]


def measure_speed(sizes: Sizes, device: str, record: dict, bar) -> None:
    model, tokenizer = load_model("lab", device=device)  # float32, as in the CPU tables
    for task in sizes.tasks:
        guarded(record, "speed", task, lambda: speed_row(model, tokenizer, task, sizes))
        bar.update()


# --- the record and the tables -----------------------------------------------------------------------------

def guarded(record: dict, part: str, what: str, measure) -> None:
    """Add `measure()`'s rows to the record's part; an exception is recorded (and fails the run), not raised,
    so one broken case still leaves every other measurement of a scarce GPU session."""
    try:
        record[part].extend(measure())
    except Exception as error:  # noqa: BLE001 - any failure on an unknown machine is a finding to report
        record["errors"].append({"part": part, "case": what, "error": f"{type(error).__name__}: {error}"})
        tqdm.write(f"ERROR in {part} / {what}: {type(error).__name__}: {error}", file=sys.stderr)


def machine(device: str) -> dict:
    import transformers

    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else (platform.processor()
                                                                                or platform.machine())
    return {"device": device, "name": name, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "cuda": torch.version.cuda}


def exit_status(record: dict) -> int:
    """1 when any output was not the model's greedy output or any case failed, else 0."""
    bad = [row for row in record["identity"] + record["speed"] if row["verdict"] == "MISMATCH"]
    return 1 if bad or record["errors"] else 0


def identity_table(rows: list[dict]) -> list[str]:
    lines = ["| model | dtype | attention | decoding | identical | verdict | worst gap | tokens/pass | accepted |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['dtype']} | {r['attention']} | {r['decoding']} | "
                     f"{r['identical']}/{r['prompts']} | {r['verdict']} | {r['worst_gap']:.1e} | "
                     f"{r['tokens_per_pass']:.2f} | {r['acceptance']:.0%} |")
    return lines


def cost_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    names = list(rows[0]["ms"])
    lines = ["| model | dtype | full x1 ms | " + " | ".join(n for n in names if n != "full x1") + " |",
             "| --- | --- | --- |" + " --- |" * (len(names) - 1)]
    for r in rows:
        cells = [f"{r['x_full'][n]:.2f}" for n in names if n != "full x1"]
        lines.append(f"| {r['model']} | {r['dtype']} | {r['ms']['full x1']:.2f} | " + " | ".join(cells) + " |")
    return lines


def speed_table(rows: list[dict]) -> list[str]:
    lines = ["| task | skip set | AR tok/s | generate tok/s | SWIFT tok/s | speedup, median [min-max] | tokens/pass "
             "| identical |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['task']} | r={r['ratio']:.2f} {r['skip_set_source'].split()[0]} | "
                     f"{r['ar_tokens_per_s']:.1f} | {r['hf_generate_tokens_per_s']:.1f} | "
                     f"{r['swift_tokens_per_s']:.1f} | {r['speedup_median']:.2f}x [{r['speedup_min']:.2f}-"
                     f"{r['speedup_max']:.2f}] | {r['mean_accepted_tokens']:.2f} | {r['verdict']} |")
    return lines


def report(record: dict, sizes: Sizes) -> str:
    m = record["machine"]
    lines = [f"# GPU check on {m['name']} ({m['device']}), torch {m['torch']}, transformers {m['transformers']}"
             + (" - SMOKE sizes: the numbers mean nothing" if record["smoke"] else "")]
    titles = {
        "identity": f"## 1. Greedy identity against generate(do_sample=False) ({sizes.prompts} prompts, "
                    f"{sizes.new_tokens} new tokens, uniform skip set r=0.45, fallback off; a float tie: every token "
                    f"of both outputs within {TIE_EPS} eps of the dtype of the argmax, teacher-forced). The random "
                    f"models' acceptance is meaningless: their weights are random.",
        "pass_costs": f"## 2. Pass costs: full one-token pass in ms, every other pass as a multiple of it (context "
                      f"{sizes.cost_context}, synchronised medians of {sizes.cost_repeats}; full xk = a verify pass "
                      f"of k tokens; draft = transformers with sub-layers skipped, lean = swiftlab's lean drafter)",
        "speed": f"## 3. SWIFT vs AR on the lab model (float32, {sizes.speed_prompts} prompts x {sizes.speed_repeats} "
                 f"repeats, {sizes.speed_tokens} new tokens; tokens/s medians; speedup per prompt over AR)"}
    tables = {"identity": identity_table, "pass_costs": cost_table, "speed": speed_table}
    for part in [p for p in PARTS if p in record["seconds"]]:  # the parts that ran
        lines += ["", titles[part], ""] + tables[part](record[part])
    if record["errors"]:
        lines += ["", "## Errors", ""] + [f"- {e['part']} / {e['case']}: {e['error']}" for e in record["errors"]]
    lines += ["", f"total {record['seconds']['total']:.0f} s; exit status {exit_status(record)}"]
    return "\n".join(lines)


PARTS = {"identity": check_identity, "pass_costs": measure_costs, "speed": measure_speed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (seconds on a CPU); the numbers mean nothing")
    p.add_argument("--out", default="runs/gpu_check.json", help="the JSON record (rewritten after every part)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)} (a rerun "
                   "of what a cut-short run missed)")
    args = p.parse_args(argv)
    chosen = args.parts.split(",")
    if not chosen or set(chosen) - set(PARTS):
        p.error(f"--parts {args.parts!r}: choose from {', '.join(PARTS)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: torch sees no CUDA device here")
    try:
        check_writable(args.out, "--out", must_exist_folder=False)
    except SwiftlabError as error:
        p.error(str(error))
    sizes = SMOKE if args.smoke else FULL
    if args.smoke and args.device == "cpu":
        torch.set_num_threads(1)  # toy sizes gain nothing from threads, and the tests share a small machine
    record = {"machine": machine(args.device), "smoke": args.smoke, "sizes": asdict(sizes), "identity": [],
              "pass_costs": [], "speed": [], "errors": [], "seconds": {}}
    start = time.perf_counter()
    steps = {"identity": len(sizes.dtypes) * len(sizes.attentions) * (1 + len(sizes.shapes)),
             "pass_costs": len(sizes.dtypes) * (1 + len(sizes.shapes)), "speed": len(sizes.tasks)}
    for part in chosen:
        run = PARTS[part]
        began = time.perf_counter()
        with tqdm(total=steps[part], desc=part, file=sys.stderr) as bar:
            run(sizes, args.device, record, bar)
        record["seconds"][part] = time.perf_counter() - began
        record["seconds"]["total"] = time.perf_counter() - start
        atomic_write_json(args.out, record)
    print(report(record, sizes))
    print(f"record: {args.out}")
    return exit_status(record)


if __name__ == "__main__":
    raise SystemExit(main())
