"""`swiftlab` / `python -m swiftlab`: the command line over the same engine the notebooks use."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from contextlib import contextmanager

from .support.errors import SwiftlabError

DEMO_PROMPTS = [
    "Once upon a time, there was a little girl named Lily.",
    "The cat sat on the mat and looked at the",
    "Tom and his dog went to the park. They",
    "One day, a big bird flew over the house and",
]
# where --store's file is when none is given (search/store.py: default_store_path), said once for every command
STORE_DEFAULT = "(default $SWIFTLAB_STORE, else $SWIFTLAB_HOME/skip_layers.json, else ~/.cache/swiftlab/skip_layers.json)"
DEMO_QUESTIONS = [  # for a chat model (SmolLM2-135M-Instruct)
    "Explain in two sentences why the sky is blue.",
    "Give three short tips for staying focused while studying.",
    "What is the difference between weather and climate?",
]


def _add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model", required=required,
                   help="a name from `swiftlab models` (lab, smollm2-135m), a hub id or a local folder")
    p.add_argument("--dtype", default=None, help="float32 | float16 | bfloat16 | auto")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: where it loads)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model's own Python code to run (off by default)")


def _add_data_args(p: argparse.ArgumentParser, categories: bool = False) -> None:
    p.add_argument("--data", default=None, metavar="PATH",
                   help="local dataset file for --task cnndm|gsm8k|tinystories|humaneval|specbench "
                        "(Spec-Bench: data/spec_bench/question.jsonl)")
    p.add_argument("--category", default=None,
                   help="Spec-Bench category (summarization, translation, qa, math_reasoning, rag, mt_bench or an "
                        "MT-bench one)" + ("; comma-separated for several, one task each" if categories else ""))
    _add_chat_arg(p)


def _add_chat_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chat", choices=("auto", "on", "off"), default="auto",
                   help="send prompts as a user turn through the tokenizer's chat template "
                        "(auto: where it has one)")


def _task(args):
    from .tasks import task_source

    return task_source(args.task, getattr(args, "data", None), getattr(args, "category", None))


def _add_skip_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-ratio", type=float, default=None,
                   help="uniform skip set at this ratio of the 2(L-2) middle sub-layers (default: with no skip set "
                        "given, what the store knows about the model, else plain steps and lookup drafts while a "
                        "search looks for a set)")
    p.add_argument("--skip-set", default=None, metavar="FILE[#KEY]",
                   help="skip set JSON (swiftlab's, or the reference skip_layers.json with #KEY)")
    p.add_argument("--epsilon", type=float, default=0.8, help="stop drafting below this confidence")
    p.add_argument("--max-draft", type=int, default=25, help="draft-length cap")
    p.add_argument("--verify", choices=("tree", "chain"), default="tree",
                   help="verify a token tree (top-1 chain plus runner-ups) or the top-1 chain only")
    p.add_argument("--lookup", type=int, default=0, metavar="N",
                   help="where the last tokens occurred earlier, draft up to N of the tokens that followed "
                        "(prompt lookup: 3 or 7 after a miss, growing while accepted whole; default 0: off, but 15 "
                        "where no skip set is given)")
    p.add_argument("--no-fallback", action="store_true",
                   help="always draft, even while plain autoregressive steps are measured faster")
    p.add_argument("--compile", action="store_true",
                   help="run the full model's passes after the prompt through torch.compile (autoregressive "
                        "decoding too), and the lean drafts on a CPU: faster passes after a one-off compile of "
                        "1-4 minutes per graph on a CPU")
    p.add_argument("--draft-dtype", default="auto", choices=("auto", "model", "float16", "bfloat16"),
                   help="precision of the drafter's matrices (lean drafter only; verification is always the "
                        "model's own): auto = a float16 copy of a small float32 model, model = no copy")


def _swift_params(args):
    from .engine.decoding import SwiftParams

    return SwiftParams(args.epsilon, args.max_draft, verify=args.verify, lookup=args.lookup,
                       fallback=not args.no_fallback, draft_dtype=args.draft_dtype, compile=args.compile)


def build_parser() -> argparse.ArgumentParser:
    """The `swiftlab` argument parser with every subcommand, passed through clicheck.harden (value rules per
    option, one-line usage errors)."""
    parser = argparse.ArgumentParser(
        prog="swiftlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="environment:\n"
               "  SWIFTLAB_HOME   the root of what swiftlab writes: converted models (models/) and the skip-set\n"
               "                  store (skip_layers.json); default ~/.cache/swiftlab\n"
               "  SWIFTLAB_STORE  the skip-set store file, where it should live apart from SWIFTLAB_HOME\n"
               "  SWIFTLAB_QUICK  1: notebooks at smoke-test sizes; 0 or unset: full sizes\n"
               "  SWIFTLAB_DEBUG  1: a traceback for an internal error")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="decode one prompt with SWIFT or autoregressively")
    _add_model_args(g)
    g.add_argument("--prompt", required=True)
    g.add_argument("--method", choices=("ar", "swift"), default="swift")
    _add_skip_args(g)
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--json", action="store_true", help="print one JSON object")
    _add_chat_arg(g)
    g.add_argument("--task", default=None, help="use the skip set cached for this model and task")
    g.add_argument("--store", default=None, help="skip-set store file " + STORE_DEFAULT)

    o = sub.add_parser("optimize", help="find a skip set on the fly over a stream of task prompts")
    _add_model_args(o)
    o.add_argument("--task", required=True)
    _add_data_args(o)
    o.add_argument("--prompts", type=int, default=10)
    o.add_argument("--skip-ratio", type=float, default=None,
                   help="search at this ratio only (default: search the ratio too, valuing sets by expected speedup)")
    o.add_argument("--bayes-interval", type=int, default=25)
    o.add_argument("--max-steps", type=int, default=1000)
    o.add_argument("--tolerance", type=int, default=300)
    o.add_argument("--max-score", type=float, default=0.93)
    o.add_argument("--window", type=int, default=32)
    o.add_argument("--candidates", type=int, default=1, help="candidates scored together per step")
    o.add_argument("--max-new-tokens", type=int, default=128)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--out", default=None, help="write the found set to this file instead of the store")
    o.add_argument("--store", default=None, help="skip-set store file the found set goes to " + STORE_DEFAULT)
    o.add_argument("--json", action="store_true")
    o.add_argument("--replace", action="store_true",
                   help="store the found set even where the stored one for this model and task scored better")
    o.add_argument("--fresh", action="store_true", help="search from scratch, not from the stored set")
    o.add_argument("--search-share", type=float, default=0.10,
                   help="most share of the stream's wall time spent scoring candidates (default 0.10)")
    o.add_argument("--unbudgeted", action="store_true",
                   help="score after every verification and never give up, as the reference does")

    d = sub.add_parser("demo", help="SWIFT vs autoregressive on a few prompts: same tokens, measured ratio")
    _add_model_args(d, required=False)
    _add_skip_args(d)
    d.add_argument("--max-new-tokens", type=int, default=None,
                   help="new tokens per prompt (default 96; 48 on smollm2-135m)")
    d.add_argument("--repeats", type=int, default=None, help="runs of each prompt (default 3; 1 on smollm2-135m)")
    d.add_argument("--store", default=None, help="skip-set store file " + STORE_DEFAULT)
    t = sub.add_parser("tasks", help="the task suite: list tasks, show examples")
    tsub = t.add_subparsers(dest="tasks_command", required=True)
    tsub.add_parser("list", help="the registered tasks")
    show = tsub.add_parser("show", help="print examples of a task")
    show.add_argument("task")
    show.add_argument("-n", type=int, default=2)
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--split", default="heldout", help="train | heldout")
    show.add_argument("--path", "--data", dest="path", default=None, help="local dataset file (real-dataset tasks)")
    show.add_argument("--category", default=None, help="Spec-Bench category")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    ev = tsub.add_parser("evaluate", help="quality per task on held-out prompts, next to an untrained twin")
    _add_model_args(ev)
    ev.add_argument("-n", type=int, default=40, help="held-out prompts per task")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--tasks", default="reasoning,summarization,story,code")
    ev.add_argument("--no-baseline", action="store_true", help="skip the untrained model")
    ev.add_argument("--json", action="store_true")
    tr = sub.add_parser("train-lab", help="train (or resume, or export) the bundled lab model")
    tr.add_argument("--out", default="runs/lab", help="run folder: checkpoint, loss log, tokenizer")
    tr.add_argument("--steps", type=int, default=None)
    tr.add_argument("--layers", type=int, default=None)
    tr.add_argument("--hidden", type=int, default=None)
    tr.add_argument("--batch-size", type=int, default=None)
    tr.add_argument("--seed", type=int, default=None)
    tr.add_argument("--lr", type=float, default=None, help="peak learning rate")
    tr.add_argument("--warmup", type=int, default=None, help="warm-up steps")
    tr.add_argument("--mix", default=None, help="corpus shares, e.g. reasoning=0.4,summarization=0.35,story=0.15,code=0.1 "
                    "(facts = fact-extraction drills over summarization articles)")
    tr.add_argument("--init-from", default=None,
                    help="continue from this finished run's weights and tokenizer (fresh optimizer and schedule)")
    tr.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    tr.add_argument("--export", action="store_true",
                    help="write the latest checkpoint to swiftlab/models/lab, evaluate it, write its model card")
    tr.add_argument("--eval-n", type=int, default=30, help="held-out prompts per task for the model card")
    b = sub.add_parser("bench", help="Spec-Bench-style benchmark: methods x prompts x repeats, interleaved")
    _add_model_args(b)
    b.add_argument("--task", required=True)
    _add_data_args(b)
    b.add_argument("--prompts", type=int, default=10)
    b.add_argument("--methods", default="ar,swift,uniform,early-exit,hf-early-exit,hf-prompt-lookup")
    b.add_argument("--repeats", type=int, default=1)
    b.add_argument("--max-new-tokens", type=int, default=128)
    b.add_argument("--skip-ratio", type=float, default=0.45)
    b.add_argument("--exit-layer", type=int, default=None, help="early-exit layer (default L/2)")
    b.add_argument("--store", default=None,
                   help="skip-set store file: swift streams start from the set it holds for this model and task, and "
                        "the set they find goes there " + STORE_DEFAULT)
    b.add_argument("--fresh", action="store_true",
                   help="swift streams start from scratch (a cold start), not from the set stored for this model and "
                        "task, and store nothing")
    b.add_argument("--fixed-ratio", action="store_true",
                   help="swift streams search at --skip-ratio only (default: the ratio is searched too)")
    b.add_argument("--out", default="results.jsonl", help="JSON lines, appended as measured")
    b.add_argument("--specbench", default=None, help="also write Spec-Bench's answer format here")

    pr = sub.add_parser("probe", help="run one layer-sparsity probe and write its record as JSON")
    pr.add_argument("name", help="importance | redundancy | sweep | task-sparsity | dynamics | latency")
    _add_model_args(pr)
    pr.add_argument("--task", default="story")
    _add_data_args(pr, categories=True)
    pr.add_argument("--prompts", type=int, default=4)
    pr.add_argument("--max-new-tokens", type=int, default=96)
    pr.add_argument("--out", required=True, help="JSON file to write")

    fg = sub.add_parser("figures", help="draw every figure (HTML) from saved probe records, or run them all first")
    fg.add_argument("--from", dest="source", default=None, help="folder of probe records to draw")
    _add_model_args(fg, required=False)
    fg.add_argument("--task", default=None, help="run the probes on this task instead of the four built-in ones "
                    "(with --data; for specbench, --category a,b,c,d gives one task per category)")
    _add_data_args(fg, categories=True)
    fg.add_argument("--prompts", type=int, default=4)
    fg.add_argument("--max-new-tokens", type=int, default=96)
    fg.add_argument("--out", required=True)

    sub.add_parser("models", help="the models swiftlab knows by name, where each comes from, whether it is here")

    ch = sub.add_parser("chat", help="a multi-turn chat in the terminal, each answer streamed as SWIFT verifies it",
                        description="Chat with a model through its chat template, each verified chunk printed as it "
                                    "is accepted. /reset forgets the conversation, /exit or Ctrl-D quits, Ctrl-C stops "
                                    "an answer (its printed part stays in the history). The turns share one SWIFT "
                                    "stream: the skip-set search learns across them, and what it learned is stored "
                                    "for the model and task 'chat' at the end. After each answer one line: tokens, "
                                    "tokens per full-model pass, tokens/s, and its speed against plain steps at this "
                                    "chat's measured cost of one. --model defaults to smollm2-135m where installed, "
                                    "else lab.")
    _add_model_args(ch, required=False)  # default: smollm2-135m where installed, else lab
    ch.add_argument("--max-new-tokens", type=int, default=256, help="per answer")
    ch.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    ch.add_argument("--top-p", type=float, default=1.0)
    ch.add_argument("--top-k", type=int, default=0)
    ch.add_argument("--seed", type=int, default=None, help="sampling seed (answer t of a chat uses seed + t)")
    ch.add_argument("--no-lookup", action="store_true", help="draft with the skipping model only (no lookup drafts)")
    ch.add_argument("--system", default=None, help="a system message first in the conversation")
    ch.add_argument("--store", default=None,
                    help="skip-set store file " + STORE_DEFAULT + ": the chat starts from the "
                         "set stored for the model's chats and stores what its search learned at the end")

    rp = sub.add_parser("report", help="rebuild the summary table from a results file, without re-running")
    rp.add_argument("results")
    rp.add_argument("--json", action="store_true")
    _add_export_hf_parser(sub)
    from .clicheck import harden

    return harden(parser)  # value rules per option, one-line usage errors


def cmd_bench(args) -> int:
    """`swiftlab bench`: --methods over --task's prompts, appended to --out as JSON lines; prints the summary table."""
    from .analysis.harness import run_bench, search_notes, summarize, summary_table, to_specbench
    from .search.skipsearch import RATIOS, SearchConfig
    from .search.store import SkipSetStore

    task = _task(args)
    model, tokenizer = _load(args)
    search = SearchConfig(skip_ratio=args.skip_ratio, ratios=() if args.fixed_ratio else RATIOS)
    lines = run_bench(model, tokenizer, task=task, prompts=args.prompts, chat=args.chat,
                      methods=[m.strip() for m in args.methods.split(",") if m.strip()], model_name=args.model,
                      repeats=args.repeats, max_new_tokens=args.max_new_tokens, out=args.out,
                      skip_ratio=args.skip_ratio, exit_layer=args.exit_layer,
                      search=search, store=SkipSetStore(args.store), reuse_store=not args.fresh,
                      save_found=not args.fresh)
    if args.specbench:
        from .support.storage import atomic_write_text

        atomic_write_text(args.specbench, "".join(json.dumps(r) + "\n" for r in to_specbench(lines, tokenizer, args.model)))
    rows = summarize(lines)
    print(summary_table(rows))
    for note in search_notes(rows):
        print(note)
    print(f"results appended to {args.out}")
    return 0


def cmd_probe(args) -> int:
    """`swiftlab probe NAME`: run one layer-sparsity probe, write its JSON record to --out and print the path."""
    from pathlib import Path

    from .analysis.experiments import run_probe, save

    tasks = _tasks(args)
    model, tokenizer = _load(args)
    record = run_probe(args.name, model, tokenizer, task=tasks[0], tasks=tasks if len(tasks) > 1 else None,
                       prompts=args.prompts, max_new_tokens=args.max_new_tokens, chat=args.chat)
    print(f"wrote {save(Path(args.out), args.name, record)}")
    return 0


def cmd_figures(args) -> int:
    """`swiftlab figures`: every figure (HTML) into --out from the --from records, or after running all probes."""
    from pathlib import Path

    from .analysis.experiments import draw, load_dir, run_all

    if args.source:  # (clicheck.preflight has checked --from / --model and --out)
        records = load_dir(Path(args.source))
        try:
            written = draw(records, Path(args.out))
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:  # values of the wrong kind
            raise SwiftlabError(f"cannot draw the records in {args.source}: one holds a value of the wrong kind "
                                f"({type(e).__name__}: {e})") from None
    else:
        tasks = _tasks(args) if args.task else None
        model, tokenizer = _load(args)
        written = run_all(model, tokenizer, Path(args.out), prompts=args.prompts, max_new_tokens=args.max_new_tokens,
                          tasks=tasks, chat=args.chat)
    for path in written:
        print(path)
    return 0


def _tasks(args) -> list:
    """--task with --data and --category; several comma-separated categories give one task each."""
    from .tasks import task_source

    categories = [c.strip() for c in (args.category or "").split(",") if c.strip()] or [None]
    return [task_source(args.task, args.data, c) for c in categories]


def cmd_models(args) -> int:
    """`swiftlab models`: print each named model, whether it is here (or how to install it), its source and folder."""
    from .models.registry import describe

    for row in describe():
        state = "present" if row["present"] else (
            "converted on first use" if row["installed"] else f"not installed: {row['install']}")
        print(f"{row['name']:<14} {state}\n  {row['description']}\n  from: {row['source']}\n  folder: {row['folder']}")
    return 0


def cmd_report(args) -> int:
    """`swiftlab report FILE`: print the summary table per model and machine (--json: the rows) without re-running."""
    import warnings

    from .analysis.harness import by_run, read_lines, summarize, summary_table

    with warnings.catch_warnings(record=True) as skipped:  # truncated lines: named, then left out
        warnings.simplefilter("always")
        lines = read_lines(args.results)
    for warning in skipped:
        print(f"swiftlab: warning: {warning.message}", file=sys.stderr)
    runs = by_run(lines)  # one table per model and machine: their speedups must not be blended
    tables, rows = [], []
    for (model, machine), mine in runs.items():
        run_rows = [{"model": model, "machine": machine, **row} for row in summarize(mine)]
        rows += run_rows
        heading = f"model {model or '(not recorded)'} on {machine or '(machine not recorded)'}"
        tables.append(f"{heading}\n\n{summary_table(run_rows)}" if len(runs) > 1 else summary_table(run_rows))
    print(json.dumps(rows) if args.json else "\n\n".join(tables))
    return 0


def cmd_train_lab(args) -> int:
    """`swiftlab train-lab`: train or resume the lab model in --out; --export writes it to swiftlab/models/lab."""
    from dataclasses import replace

    from .models.train import TrainConfig, train

    if args.export:
        return _export_lab(args.out, args.eval_n)
    heads = {"heads": max(1, args.hidden // 32)} if args.hidden else {}  # 32-wide heads
    given = {"steps": args.steps, "layers": args.layers, "hidden": args.hidden, "batch_size": args.batch_size,
             "seed": args.seed, "lr": args.lr, "warmup": args.warmup, "init_from": args.init_from,
             "mix": _parse_mix(args.mix) if args.mix else None}
    overrides = {**heads, **{k: v for k, v in given.items() if v is not None}}
    train(args.out, replace(TrainConfig(), **overrides), device=args.device)
    return 0


def _parse_mix(text: str) -> dict:
    from .models.train import CORPUS_PARTS as known  # the built-in generators; real datasets are not training data

    mix = {}
    for part in text.split(","):
        name, _, share = part.partition("=")
        name = name.strip()
        if name not in known:
            raise SwiftlabError(f"--mix: unknown task {name!r} (known: {', '.join(known)})")
        try:
            mix[name] = float(share)
        except ValueError:
            raise SwiftlabError(f"--mix: share of {name!r} must be a number, got {share!r}") from None
        if not math.isfinite(mix[name]):
            raise SwiftlabError(f"--mix: share of {name!r} must be a finite number, got {share!r}")
        if mix[name] < 0:
            raise SwiftlabError(f"--mix: share of {name!r} is negative")
    if not sum(mix.values()) > 0:
        raise SwiftlabError("--mix: the shares add up to zero")
    return mix


def _export_lab(run_dir: str, eval_n: int) -> int:
    import platform

    from .models.loading import load_model
    from .models.modelcard import write_model_card
    from .analysis.quality import evaluate, untrained_twin
    from .models.train import export

    target = export(run_dir)
    model, tokenizer = load_model(target, dtype="float32")
    trained = evaluate(model, tokenizer, eval_n)
    baseline = evaluate(untrained_twin(model), tokenizer, eval_n)
    table = quality_table(trained, baseline)
    samples = [{"task": row["task"], **sample} for row in trained for sample in row["samples"]]
    hardware = f"{platform.machine()} CPU, {os.cpu_count()} cores"
    card = write_model_card(target, run_dir, table, samples, {"hardware": hardware})
    from .support.storage import atomic_write_json

    atomic_write_json(target / "quality.json", {"trained": trained, "untrained": baseline})
    print(table)
    print(f"exported to {target}; model card {card}")
    return 0


def cmd_tasks(args) -> int:
    """`swiftlab tasks list|show|evaluate`: print the tasks, a task's examples, or quality next to an untrained twin."""
    from .tasks import get_examples, get_task, task_names

    if args.tasks_command == "list":
        for name in task_names():
            try:
                description = get_task(name).description
            except SwiftlabError:  # real-dataset tasks that need a path still get listed
                description = "(real dataset; needs --path or the datasets library)"
            print(f"{name:<14} {description}")
        return 0
    if args.tasks_command == "evaluate":
        return _tasks_evaluate(args)
    options = {k: v for k, v in (("path", args.path), ("category", args.category)) if v}
    for ex in get_examples(args.task, args.n, seed=args.seed, split=args.split, **options):
        if args.json:
            print(json.dumps(ex.to_dict()))
        else:
            print(f"--- {ex.task} {ex.id}\n{ex.prompt}\n--- reference:\n{ex.reference}\n")
    return 0


def _tasks_evaluate(args) -> int:
    from .analysis.quality import evaluate, untrained_twin

    model, tokenizer = _load(args)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    trained = evaluate(model, tokenizer, args.n, args.seed, tasks)
    baseline = None if args.no_baseline else evaluate(untrained_twin(model), tokenizer, args.n, args.seed, tasks)
    if args.json:
        print(json.dumps({"model": args.model, "trained": trained, "untrained": baseline}))
        return 0
    print(quality_table(trained, baseline))
    return 0


def quality_table(trained: list[dict], baseline: list[dict] | None) -> str:
    """A Markdown table: one row per task metric, trained next to untrained."""
    lines = ["| task | metric | trained | untrained |", "| --- | --- | --- | --- |"]
    for i, row in enumerate(trained):
        for metric, value in row.items():
            if metric in ("task", "n", "samples"):
                continue
            base = baseline[i][metric] if baseline else None
            fmt = (lambda v: f"{v:.1%}") if metric != "perplexity" else (lambda v: f"{v:.2f}")
            lines.append(f"| {row['task']} (n={row['n']}) | {metric} | {fmt(value)} | "
                         f"{fmt(base) if base is not None else '-'} |")
    return "\n".join(lines)


def cmd_optimize(args) -> int:
    """`swiftlab optimize`: search a skip set on --task's prompts, store it (or write --out), print how it went."""
    from .models.adapters import num_layers
    from .api import encode_prompt
    from .search.skipsearch import RATIOS, SearchConfig
    from .search.store import SkipSetStore
    from .search.stream import StreamSettings, SwiftStream
    from tqdm.auto import tqdm

    task = _task(args)
    model, tokenizer = _load(args)
    config = SearchConfig(skip_ratio=args.skip_ratio if args.skip_ratio is not None else 0.45,
                          ratios=() if args.skip_ratio is not None else RATIOS,
                          bayes_interval=args.bayes_interval, max_score=args.max_score,
                          tolerance=args.tolerance, max_steps=args.max_steps, window=args.window,
                          candidates_per_step=args.candidates, seed=args.seed)
    store = SkipSetStore(args.store)
    start = None if args.fresh else store.get(args.model, task.label, num_layers(model))
    settings = (StreamSettings(search_share=None, give_up=False) if args.unbudgeted
                else StreamSettings(search_share=args.search_share))
    stream = SwiftStream(model, config, start, settings)
    if start is not None:
        stream.started_from = f"{store.path} [{store.key(args.model, task.label)}]"
        if not args.json:
            print(f"starting from the stored set {stream.started_from} (--fresh starts from scratch)")
    examples = task.examples(args.prompts, seed=args.seed)
    for ex in tqdm(examples, desc=f"optimizing on {task.label}", disable=args.json):
        stream.decode(encode_prompt(tokenizer, ex.prompt, args.chat), max_new_tokens=args.max_new_tokens)
    search, summary = stream.search, stream.summary()
    _check_searched(search, args)
    kept = None
    if args.out:
        search.best.save(args.out)
        where = args.out
    else:
        key, kept = stream.save_to(store, args.model, task.label, replace=args.replace)
        where = None if kept else f"{store.path} [{key}]"
        if kept:
            print(f"swiftlab: not stored: {kept} (kept {store.path} [{key}]; --replace stores it anyway)",
                  file=sys.stderr)
    if args.json:
        print(json.dumps({**{k: v for k, v in summary.items() if k != "skip_set"},
                          "skip_set": {"attention": list(search.best.attention), "mlp": list(search.best.mlp),
                                       "num_layers": search.best.num_layers},
                          "trajectory": [step for step in search.trajectory.to_dict()["steps"]], "saved_to": where,
                          "not_saved_because": kept}))
        return 0
    print(f"best skip set: {search.best}  matchness {search.best_score:.3f}")
    print(f"{search.iteration} proposals ({summary['bayes_iterations']} Bayesian) over {len(stream.records)} prompts; "
          f"stopped because: {search.stopped_because or 'still running (prompts ran out)'}"
          + (f"; search {summary['search_share']:.1%} of wall time" if summary["search_share"] is not None else ""))
    if summary["ratio_reason"]:
        print(f"ratio {summary['ratio_reason']}")
    if summary["verdict_reason"]:
        print(summary["verdict_reason"])
    for r in stream.records:
        print(f"  prompt {r.index:>3} {r.phase:<10} {r.tokens_per_s:7.1f} tok/s  {r.mean_accepted_tokens:.2f} tok/pass"
              f"  acceptance {r.acceptance_rate:.0%}  optimize {r.optimize_s:.2f} s")
    print(f"saved to {where}" if where else "not saved (the stored set scored at least as well)")
    return 0


def _check_searched(search, args) -> None:
    """A search that never scored a candidate found nothing: store nothing, and say why."""
    if search.best_score is not None and search.iteration > 0:
        return
    raise SwiftlabError(
        f"the search did not run: {args.prompts} prompt(s) of at most {args.max_new_tokens} new tokens never filled "
        f"its {args.window}-token scoring window ({search.iteration} proposals scored); nothing was saved. "
        "Give more --prompts or --max-new-tokens, a smaller --window, or a larger --search-share (or --unbudgeted)")


def _skip_set(args, model):
    from .models.adapters import num_layers
    from .engine.skipset import SkipSet

    if args.skip_set and args.skip_ratio is not None:
        raise SwiftlabError("give --skip-ratio or --skip-set, not both")
    n = num_layers(model)
    if getattr(args, "task", None):
        from .search.store import SkipSetStore

        if args.skip_set or args.skip_ratio is not None:
            raise SwiftlabError("give --task (cached set) or --skip-set / --skip-ratio, not both")
        store = SkipSetStore(args.store)
        cached = store.get(args.model, args.task, n)
        if cached is None:
            raise SwiftlabError(_nothing_stored(store, args.model, args.task, n))
        return cached
    if args.skip_set:
        path, _, key = args.skip_set.partition("#")
        return SkipSet.load(path, n, key or None)
    if args.skip_ratio is not None:
        return SkipSet.uniform(n, args.skip_ratio)
    return None  # none given: the default plan (api.default_skip_plan) decides


def _nothing_stored(store, model: str, task: str, layers: int) -> str:
    """Why --task found no set, with what is stored for the model and a next step that works: `optimize` for
    a task it can search, else where to find those (a store label such as "generate" is no such task)."""
    from .tasks import task_names

    stored = [e.task for e in store.for_model(model, layers) if e.skip_set is not None]
    message = (f"no cached skip set for model {model!r} and task {task!r} in {store.path}"
               + (f" (stored for this model: {', '.join(stored)})" if stored else ""))
    if task in task_names():
        return f"{message}; run `swiftlab optimize --model {model} --task {task}` first"
    category = task.removeprefix("specbench-")
    if category != task and category.replace("_", "").isalnum():
        return (f"{message}; run `swiftlab optimize --model {model} --task specbench --data question.jsonl "
                f"--category {category}` first")
    return f"{message}; {task!r} is not a task `optimize` can search (`swiftlab tasks list` names those)"


def _given_set_why(args, skip_set) -> str:
    """The drafters of a run with a skip set the user gave, and why (for the stderr line)."""
    if getattr(args, "task", None):
        source = f"the set stored for task {args.task} (--task)"
    elif args.skip_set:
        source = f"the set given with --skip-set {args.skip_set}"
    else:
        source = f"the uniform set at --skip-ratio {args.skip_ratio}"
    lookup = ", lookup drafts where the text repeats" if args.lookup else ""
    return f"skip drafts with {source} (r={skip_set.ratio:.2f}){lookup}, plain steps while drafting is measured slower"


def _load(args):
    from .models.loading import load_model

    return load_model(args.model, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code)


def _add_export_hf_parser(sub) -> None:
    x = sub.add_parser("export-hf", help="write a folder transformers' generate() runs as custom_generate (SWIFT)",
                       description="Write DIR with custom_generate/generate.py, the skip set and a README: then "
                                   "model.generate(**inputs, custom_generate=DIR, trust_remote_code=True) decodes "
                                   "with SWIFT wherever swiftlab is installed (push DIR to the Hub to share it).")
    x.add_argument("dir", metavar="DIR", help="the folder to write (must not exist yet)")
    _add_model_args(x)
    x.add_argument("--task", default=None, help="take the skip set stored for --model and this task (with --skip-set: "
                                                "only its name in the README)")
    x.add_argument("--skip-set", default=None, metavar="FILE[#KEY]",
                   help="take this skip set JSON instead (swiftlab's, or the reference skip_layers.json with #KEY)")
    x.add_argument("--store", default=None, help="skip-set store file " + STORE_DEFAULT)


def cmd_export_hf(args) -> int:
    """`swiftlab export-hf DIR`: the skip set of --task (or --skip-set) in a folder for custom_generate (hf.py)."""
    from pathlib import Path

    from .models.adapters import num_layers
    from .hf import export_folder
    from .engine.skipset import SkipSet
    from .search.store import SkipSetStore

    if Path(args.dir).exists():
        raise SwiftlabError(f"{args.dir} already exists: give a new folder")
    if not args.task and not args.skip_set:
        raise SwiftlabError("give --task T (the skip set stored for --model and T) or --skip-set FILE")
    model, _ = _load(args)
    n = num_layers(model)
    if args.skip_set:
        path, _, key = args.skip_set.partition("#")
        skip_set, source = SkipSet.load(path, n, key or None), f"from {args.skip_set}"
    else:
        store = SkipSetStore(args.store)
        skip_set = store.get(args.model, args.task, n)
        if skip_set is None:
            raise SwiftlabError(f"no skip set for model {args.model!r} and task {args.task!r} in {store.path}, so "
                                f"{args.dir} was not written: run `swiftlab optimize --model {args.model} --task "
                                f"{args.task}` first, or give --skip-set FILE")
        source = f"tuned for task {args.task}: store entry {store.key(args.model, args.task)}"
    folder = export_folder(args.dir, skip_set, model=args.model, task=args.task or "any task", source=source)
    print(f"wrote {folder}: model.generate(**inputs, custom_generate={str(folder)!r}, trust_remote_code=True)")
    return 0


def cmd_generate(args) -> int:
    """`swiftlab generate`: stream the decoded --prompt to stdout, its costs and drafters on one stderr line."""
    from .api import default_skip_plan, encode_prompt, generate
    from .tasks.chat import uses_chat

    model, tokenizer = _load(args)
    encode_prompt(tokenizer, args.prompt, args.chat)  # a bad prompt is its one-line error before anything is printed
    swift = _swift_params(args)
    skip_set = _skip_set(args, model) if args.method == "swift" else None
    plan = None
    if args.method == "swift" and skip_set is None:
        plan = default_skip_plan(model, model_name=args.model, store=args.store, swift=swift)
    chat = uses_chat(tokenizer, args.chat)
    streamer = None
    if not args.json:  # the text as it is verified; a chat answer on its own line, a continuation on the prompt's
        from transformers import TextStreamer

        print(args.prompt, end="\n" if chat else "", flush=True)
        streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    with _store_warnings_as_lines():
        result = generate(model, tokenizer, args.prompt, method=args.method, skip_set=skip_set, plan=plan,
                          max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                          top_k=args.top_k, seed=args.seed, swift=swift, chat=args.chat, streamer=streamer)
    why = _run_why(args, skip_set, plan)
    if args.json:
        d = result.to_dict()
        d["skip_set"] = d["skip_set"] or {"attention": [], "mlp": []}
        d["plan"] = {"why": why, "kind": plan.kind if plan else ("ar" if args.method == "ar" else "given"),
                     "store_entry": plan.used if plan else None, "stored": plan.note if plan else None}
        print(json.dumps(d))
    else:
        print(f"[{args.method}] {result.new_tokens} tokens in {result.wall_s:.2f} s "
              f"({result.tokens_per_s:.1f} tok/s), {result.steps} full-model passes, "
              f"{result.mean_accepted_tokens:.2f} tokens/pass, acceptance {result.acceptance_rate:.0%}; "
              f"{_steps_taken(result)}: {why}", file=sys.stderr)
    if plan is not None and plan.note and (not args.json or plan.note.startswith("warning")):
        print(f"swiftlab: {plan.note}", file=sys.stderr)  # what the run learned, and where it went
    return 0


def _run_why(args, skip_set, plan) -> str:
    if args.method == "ar":
        return "plain steps: autoregressive decoding (--method ar)"
    return plan.why if plan is not None else _given_set_why(args, skip_set)


def _steps_taken(result) -> str:
    """'57 plain, 2 lookup, 0 skip steps': the full-model passes after the prompt's, by drafter."""
    kinds = result.drafters or {"ar": result.steps - 1}
    return ", ".join(f"{kinds.get(k, 0)} {name}" for k, name in (("ar", "plain"), ("lookup", "lookup"), ("skip", "skip"))
                     if k in kinds) + " steps"


@contextmanager
def _store_warnings_as_lines():
    """A store that cannot be written is reported by the command as one line (the plan's note), not as
    Python's two-line warning."""
    import warnings

    from .api import StoreWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        yield


def _demo_choice(args) -> tuple[str | None, str]:
    """Which model the demo runs on, and why: --model, else the real model where it is installed, else the
    bundled lab model, else (None) a random one."""
    from .models import registry

    if args.model:
        return args.model, "given with --model"
    if registry.is_present(registry.SMOLLM2):
        return registry.SMOLLM2.name, "the real model, installed here: SmolLM2-135M-Instruct, a chat model"
    try:
        registry.source_file(registry.SMOLLM2)
        return registry.SMOLLM2.name, "the real model's package is installed: SmolLM2-135M-Instruct, converted once"
    except SwiftlabError:
        pass
    if registry.is_present(registry.LAB):
        return "lab", (f"the real model is not installed ({registry.SMOLLM2.install}): the bundled lab model, small "
                       "and trained on this project's tasks")
    return None, "no real model and no bundled lab model"


def _demo_model(args):
    """(model, tokenizer, why): the chosen model loaded, `args.model` set to its name (None: the random one)."""
    args.model, why = _demo_choice(args)
    if args.model:
        model, tokenizer = _load(args)
        return model, tokenizer, why
    from .models.demo import random_demo_model

    print("No --model given and no bundled lab model: using a small randomly initialised Llama (its text is "
          "gibberish, but the equality check and the speed ratio are real).", file=sys.stderr)
    return (*random_demo_model(), why)


def _demo_prompts(args, tokenizer) -> list[str]:
    """Prompts that suit the model: questions for a chat model, its own tasks' prompts for the lab model."""
    from .tasks.chat import uses_chat

    if uses_chat(tokenizer, "auto"):
        return DEMO_QUESTIONS
    if args.model == "lab":
        from .tasks import get_examples

        return [ex.prompt for task in ("story", "reasoning") for ex in get_examples(task, 2, seed=0)]
    return DEMO_PROMPTS


def cmd_demo(args) -> int:
    """`swiftlab demo`: print AR and SWIFT speeds on a few prompts and a sample; exit 1 where their outputs differ."""
    from .api import decode_continuation, default_skip_plan, encode_prompt
    from .analysis.bench import Comparison, compare, interleaved
    from .engine.decoding import decode
    from .tasks.chat import uses_chat

    model, tokenizer, chosen = _demo_model(args)
    real = args.model == "smollm2-135m"  # a CPU pass costs ~50x the lab model's: fewer, shorter runs
    max_new = args.max_new_tokens or (48 if real else 96)
    repeats = args.repeats or (1 if real else 3)
    texts = _demo_prompts(args, tokenizer)[:3 if real else 4]
    prompts = [encode_prompt(tokenizer, p) for p in texts]
    skip_set, swift = _skip_set(args, model), _swift_params(args)
    plan = None
    if skip_set is not None:
        comparison = compare(model, prompts, skip_set, max_new_tokens=max_new, repeats=repeats, swift=swift)
    else:  # what `swiftlab generate` uses with no skip set given
        plan = default_skip_plan(model, model_name=args.model, store=args.store if args.model else False, swift=swift)
        with _store_warnings_as_lines():
            results = interleaved({"ar": lambda ids, n: decode(model, ids, method="ar", max_new_tokens=n),
                                   "swift": lambda ids, n: plan.decode(ids, n)},
                                  prompts, max_new_tokens=max_new, repeats=repeats)
            plan.save()
        comparison = Comparison(results["ar"], results["swift"])
    s = comparison.summary()
    steps = {k: sum(r.drafters.get(k, 0) for r in comparison.swift) for k in ("skip", "lookup", "ar")}
    print(f"model: {args.model or 'random demo Llama'} ({chosen})")
    print(f"drafted: {steps['skip']} skip, {steps['lookup']} lookup, {steps['ar']} plain steps: "
          + (plan.why if plan else f"skip drafts with {skip_set}"))
    print(f"autoregressive  {s['ar_tokens_per_s']:8.1f} tok/s (median of {s['runs']} runs)")
    print(f"SWIFT           {s['swift_tokens_per_s']:8.1f} tok/s   "
          f"{s['mean_accepted_tokens']:.2f} tokens/pass, acceptance {s['acceptance_rate']:.0%}")
    print(f"speedup         {s['speedup']:8.2f}x   output identical to autoregressive: {s['identical']}")
    if plan is not None and plan.note:
        print(plan.note)
    first = comparison.swift[0]
    answer = decode_continuation(tokenizer, first.prompt_ids, first.token_ids)
    shown = texts[0] if len(texts[0]) <= 160 else "..." + texts[0][-160:]  # a lab task's prompt is a whole story
    print("\nsample (SWIFT):", shown + ("\n" if uses_chat(tokenizer, "auto") else "") + answer)
    return 0 if s["identical"] else 1


def cmd_chat(args) -> int:
    """`swiftlab chat`: the terminal chat (chat.py) until /exit or Ctrl-D; stores what its search learned at the end."""
    from .chat import LOOKUP, Chat, Terminal, banner, chat_stream, default_model, run_chat, save_stream, start_note
    from .engine.sampling import SamplingParams
    from .search.store import SkipSetStore

    store = SkipSetStore(args.store)
    store.check()  # a corrupt or unwritable store fails now, not when the chat ends
    args.model = args.model or default_model()
    model, tokenizer = _load(args)
    stream = chat_stream(model, store, args.model, lookup=0 if args.no_lookup else LOOKUP)
    terminal = Terminal()
    chat = Chat(model, tokenizer, stream, system=args.system, max_new_tokens=args.max_new_tokens,
                sampling=SamplingParams(args.temperature, args.top_k, args.top_p), seed=args.seed, notify=terminal.note)
    terminal.note(banner(args.model, chat))
    if start_note(stream):
        terminal.note(start_note(stream))
    if sys.stdin.isatty():
        import readline  # noqa: F401  (line editing and history for input())
    try:
        run_chat(chat, terminal)
    finally:
        terminal.note(save_stream(stream, store, args.model))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command line (`argv`, default sys.argv[1:]) and return its exit status: the command's own, 0 for
    --help, 2 for a usage or SwiftlabError (one line on stderr), 130 on Ctrl-C, 141 on a broken pipe, 1 on an
    unforeseen error (its traceback with SWIFTLAB_DEBUG=1)."""
    # everything, argument parsing and the heavy imports included, runs inside the handlers below, so
    # Ctrl-C during start-up prints one line too (swiftlab/__init__.py imports nothing heavy)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from .clicheck import preflight

        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:  # usage errors (one line, exit 2) and --help (exit 0)
            return e.code if isinstance(e.code, int) else 2
        preflight(args)
        with _interrupt_exits_now():
            from transformers.utils import logging as hf_logging

            if args.command not in ("models", "tasks"):  # the commands that never touch torch
                import torch  # noqa: F401
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        return {"generate": cmd_generate, "demo": cmd_demo, "tasks": cmd_tasks, "train-lab": cmd_train_lab,
                "optimize": cmd_optimize, "bench": cmd_bench, "report": cmd_report,
                "probe": cmd_probe, "figures": cmd_figures, "models": cmd_models,
                "chat": cmd_chat, "export-hf": cmd_export_hf}[args.command](args)
    except SwiftlabError as e:
        _close_progress_bars()
        print(f"swiftlab: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush does not fail again
        return 141
    except KeyboardInterrupt:
        _close_progress_bars()
        print("swiftlab: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # anything unforeseen: one line, the traceback only on request
        if os.environ.get("SWIFTLAB_DEBUG"):
            raise
        _close_progress_bars()
        print(f"swiftlab: internal error: {type(e).__name__}: {e} (set SWIFTLAB_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


def _close_progress_bars() -> None:
    """An error that stops a command mid-loop leaves its tqdm bar open, drawn without a newline: close every
    bar first, so the error prints on a line of its own instead of glued onto the bar."""
    tqdm = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


@contextmanager
def _interrupt_exits_now():
    """The heavy imports: Ctrl-C there prints the one line and exits 130 at once. Nothing is recorded yet,
    and a KeyboardInterrupt raised while torch's C++ import code (pybind11) runs cannot be caught: it
    aborted the process once in a clean-clone test run ("terminate called after throwing an instance of
    'pybind11::error_already_set'", status -6). Where SIGINT is not Python's default handler (ignored in a
    background job, or in a thread that cannot set handlers) nothing changes."""
    import signal

    def exit_now(signum, frame):
        os.write(2, b"swiftlab: interrupted\n")
        os._exit(130)

    try:
        ours = signal.getsignal(signal.SIGINT) is signal.default_int_handler
        previous = signal.signal(signal.SIGINT, exit_now) if ours else None
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def run() -> None:
    """The program's entry point (`swiftlab`, `python -m swiftlab`): main(), then exit with its status.
    An interrupt exits at once with 130, skipping the interpreter's shutdown: once in a clean-clone test
    run, Ctrl-C during the start-up imports printed the one line and then ended with status -2 (killed
    by SIGINT) instead of 130, as CPython does at shutdown when a KeyboardInterrupt has passed through
    code run with PyRun_*, even one that was caught."""
    status = main()
    if status == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(status)


if __name__ == "__main__":
    run()
