"""A Spec-Bench-style benchmark harness: methods x prompts x repeats, interleaved, one JSON line each.

Methods (all greedy):
  ar            swiftlab's autoregressive loop (the baseline every speedup is relative to)
  ar-compile, swift-compile, swift+lookup-compile  the same with the full model's passes compiled
                (SwiftParams(compile=True), compiled.py; compiled before the first prompt)
  swift         SWIFT on the fly: one stream over the task's prompts, searching, then accelerating
  swift+lookup  the same, drafting by prompt lookup where the context repeats (up to 15 tokens, 3 or 7 after
                a miss: drafters.LookupDrafter; its own stream and search)
  swift-cached  SWIFT with the skip set cached for this model and task (`swiftlab optimize`)
  uniform       SWIFT drafting with the static uniform set at --skip-ratio
  early-exit    SWIFT drafting with the first layers only (LayerSkip-style static set)
  hf-generate   transformers' model.generate(do_sample=False)
  hf-early-exit transformers' generate(assistant_early_exit=E), E = the early-exit layer
                (early-exit:E and hf-early-exit:E pick E per method, so several exits compete in one run)
  hf-prompt-lookup  transformers' generate(prompt_lookup_num_tokens=10)
  hf-static     transformers' generate with its static (preallocated) KV cache
  hf-static-compile  the same with its forward pass compiled (torch.compile; on a CPU too): the fastest
                plain decoding transformers offers, its compile time in the first call (the warm-up)
  clasp         SWIFT drafting with a skip set chosen from the context (layerselect.py, CLaSp's idea) at
                --skip-ratio, no search: after the prompt pass, then after every 16th drafted verification;
                clasp:N after every N-th (clasp:1 after each, as CLaSp)
Metrics follow Spec-Bench: speedup = mean tokens/s ratio to `ar`, mean accepted tokens per
full-model pass, acceptance rate; medians over repeats; lossless methods are checked for
token-identical output against `ar`.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from tqdm.auto import tqdm

from ..models.adapters import input_device, num_layers
from .bench import hf_generate
from ..engine.compiled import compile_passes
from ..engine.decoding import SwiftParams, decode
from ..support.errors import SwiftlabError
from ..engine.lookup import LOOKUP_TOKENS
from ..engine.records import DecodeResult
from ..search.skipsearch import SearchConfig
from ..engine.skipset import SkipSet
from ..support.storage import append_line
from ..search.stream import StreamSettings, SwiftStream

COMPILED_METHODS = ("ar-compile", "swift-compile", "swift+lookup-compile")  # SwiftParams(compile=True)
METHODS = ("ar", "ar-compile", "swift", "swift-compile", "swift+lookup", "swift+lookup-compile", "swift-cached", "uniform", "early-exit", "hf-generate", "hf-early-exit",
           "hf-prompt-lookup", "hf-static", "hf-static-compile", "clasp")


@dataclass
class BenchLine:
    """One measured decoding: a method on one prompt (and turn) in one repeat, with the tokens it emitted, its
    wall time and its per-pass statistics, as one JSON line of the results file (`read_lines` reads them
    back, `summarize` aggregates them)."""
    method: str
    task: str
    prompt_id: str
    repeat: int
    new_tokens: int
    wall_s: float
    steps: int | None  # full-model passes (None where transformers does not say)
    accepted_lengths: list[int] | None  # tokens per pass (accepted drafts + 1), Spec-Bench's
    drafted_per_step: list[int] | None
    skip_set: dict | None
    token_ids: list[int] = field(default_factory=list)
    timings_s: dict | None = None
    phase: str | None = None  # swift: "optimize" while the search runs, "accelerate" once it stopped
    step_kinds: list[str] | None = None  # per pass: prefill, skip, lookup or ar (swiftlab's methods)
    tree_size_per_step: list[int] | None = None  # nodes verified per pass (SWIFT)
    model: str | None = None  # what ran: speedups of different models or machines must not be averaged
    machine: str | None = None
    turn: int = 0  # Spec-Bench's multi-turn questions: 1 is the second turn, asked after the method's own answer
    # swift streams: the search's share of the stream's wall time so far, its verdict (does skipping pay?) and
    # why, the chosen skip ratio and why, where the starting set came from (stream.SwiftStream.search_facts)
    search: dict | None = None

    @property
    def tokens_per_s(self) -> float:
        """New tokens over wall seconds (0 where no time was recorded)."""
        return self.new_tokens / self.wall_s if self.wall_s else 0.0


def _line(method, task, prompt_id, repeat, result: DecodeResult) -> BenchLine:
    lengths = [a + 1 for a in result.accepted_per_step] if result.accepted_per_step else None
    return BenchLine(method, task, prompt_id, repeat, result.new_tokens, result.wall_s, result.steps or None,
                     lengths, result.drafted_per_step or None, result.skip_set, result.token_ids, result.timings_s,
                     step_kinds=result.step_kinds or None, tree_size_per_step=result.tree_size_per_step or None)


def make_runners(model, methods, *, task: str, model_name: str, skip_ratio: float = 0.45,
                 exit_layer: int | None = None, search: SearchConfig = SearchConfig(),
                 swift: SwiftParams = SwiftParams(), store=None, reuse_store: bool = False,
                 stream_settings: StreamSettings = StreamSettings()) -> dict:
    """method -> function(ids, max_new_tokens) -> DecodeResult. With `reuse_store`, swift streams start
    from the set `store` holds for this model and task, where it holds one."""
    unknown = [m for m in methods if m.split(":")[0] not in METHODS]
    if unknown:
        raise SwiftlabError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    L = num_layers(model)
    default_exit = exit_layer if exit_layer is not None else max(1, L // 2)
    runners = {}
    for name in methods:
        # "early-exit:E" and "hf-early-exit:E" pick the exit layer per method, so several compete in one run
        m, _, layer = name.partition(":")
        if layer and m not in ("early-exit", "hf-early-exit", "clasp"):
            raise SwiftlabError(f"method {name!r}: only early-exit and hf-early-exit take a layer (:E), "
                                "and clasp an interval (:N)")
        exit_layer = _exit_layer(name, layer, L) if layer and m != "clasp" else default_exit
        compiled = m in COMPILED_METHODS
        m = m.removesuffix("-compile") if compiled else m
        if m == "ar":
            plain = SwiftParams(compile=compiled)
            runners[name] = lambda ids, n, plain=plain: decode(model, ids, method="ar", max_new_tokens=n, swift=plain)
        elif m in ("swift", "swift+lookup"):
            params = replace(swift, lookup=LOOKUP_TOKENS) if m == "swift+lookup" else swift
            params = replace(params, compile=compiled)
            settings = replace(stream_settings, swift=params)
            stream = (SwiftStream.from_store(model, store, model_name, task, search, settings)
                      if reuse_store and store is not None else SwiftStream(model, search, settings=settings))
            runners[name] = lambda ids, n, stream=stream: stream.decode(ids, max_new_tokens=n)
            runners[name].stream = stream  # run_bench reads each prompt's phase from it
        elif m == "swift-cached":
            from ..search.store import SkipSetStore

            cached = (store or SkipSetStore()).get(model_name, task, L)
            if cached is None:
                raise SwiftlabError(f"no cached skip set for {model_name!r} / {task!r}: run `swiftlab optimize` "
                                    "first, or leave swift-cached out")
            runners[name] = lambda ids, n, s=cached: decode(model, ids, method="swift", skip_set=s, max_new_tokens=n,
                                                         swift=swift)
        elif m in ("uniform", "early-exit"):
            s = SkipSet.uniform(L, skip_ratio) if m == "uniform" else SkipSet.early_exit(L, exit_layer)
            runners[name] = lambda ids, n, s=s: decode(model, ids, method="swift", skip_set=s, max_new_tokens=n,
                                                    swift=swift)
        elif m == "clasp":
            runners[name] = _clasp_runner(model, name, layer, skip_ratio, swift)
        elif m == "hf-generate":
            runners[name] = lambda ids, n: hf_generate(model, ids, n)
        elif m == "hf-early-exit":
            runners[name] = lambda ids, n, e=exit_layer: hf_generate(model, ids, n, assistant_early_exit=e)
        elif m == "hf-prompt-lookup":
            runners[name] = lambda ids, n: hf_generate(model, ids, n, prompt_lookup_num_tokens=10)
        elif m in ("hf-static", "hf-static-compile"):
            options = static_generate_options(compiled=m == "hf-static-compile")
            runners[name] = lambda ids, n, options=options: hf_generate(model, ids, n, **options)
    return runners


def static_generate_options(compiled: bool) -> dict:
    """generate()'s options for its static KV cache, and for compiling its forward pass: transformers compiles
    a static-cache generate by itself on a GPU only, so the compile config asks for it on every device."""
    if not compiled:
        return {"cache_implementation": "static"}
    from transformers import CompileConfig

    config = CompileConfig()
    config._compile_all_devices = True  # transformers' own switch (underscored) for compiling on a CPU too
    return {"cache_implementation": "static", "compile_config": config}


def _clasp_runner(model, name: str, every: str, skip_ratio: float, swift: SwiftParams):
    from ..search.layerselect import LayerSelector, SelectParams

    if every and not (every.isdigit() and int(every) >= 1):
        raise SwiftlabError(f"method {name!r}: the re-selection interval must be a whole number from 1")
    params = SelectParams(ratio=skip_ratio, **({"every": int(every)} if every else {}))
    selector = LayerSelector(model, params)
    return lambda ids, n: decode(model, ids, method="swift", max_new_tokens=n, swift=swift, selector=selector)


def _exit_layer(name: str, layer: str, num_layers: int) -> int:
    if not layer.isdigit() or not 1 <= int(layer) < num_layers:
        raise SwiftlabError(f"method {name!r}: the exit layer must be a whole number from 1 to {num_layers - 1}")
    return int(layer)


def run_bench(model, tokenizer, *, task: str, prompts: int, methods, model_name: str, repeats: int = 1,
              max_new_tokens: int = 128, seed: int = 0, out: str | Path | None = None, progress: bool = True,
              chat="auto", save_found: bool = False, **runner_options) -> list[BenchLine]:
    """Every method on every prompt, interleaved; lines are appended to `out` as they come, so an
    interrupted run keeps what it measured. `task` is a name or a TaskSource (a dataset file, a
    Spec-Bench category); prompts go through the chat template per `chat` (tasks.chat), and a
    multi-turn question runs turn by turn, as Spec-Bench runs it. With `save_found`, each swift
    stream's best set goes to the `store` afterwards (SwiftStream.save_to), for the next run to start from."""
    from ..tasks.chat import encode_prompt
    from ..tasks import task_source

    if not methods:
        raise SwiftlabError("no methods to benchmark")
    if prompts < 1 or repeats < 1:
        raise SwiftlabError(f"a benchmark needs at least one prompt and one repeat (got {prompts} and {repeats})")
    source = task_source(task)
    examples = source.examples(prompts, seed=seed)
    if not examples:
        raise SwiftlabError(f"task {source.label!r} gave no prompts")
    machine = machine_name(model)
    runners = make_runners(model, methods, task=source.label, model_name=model_name, **runner_options)
    if any(m in COMPILED_METHODS for m in runners):
        # compiled once per process and model, before any prompt: a stream is not warmed up (its first prompt
        # is its cold start), and the AR warm-up compiles no tree graph, which a stream's first prompt would
        compile_passes(model, progress=progress)
    warm = encode_prompt(tokenizer, examples[0].prompt, chat)
    for method, run in runners.items():  # one short warm-up each, kept out of the numbers
        if method.startswith("hf-static"):
            # generate() keeps its static cache while a run fits in it, and a bigger one is a new graph to
            # compile: warmed up on the longest first turn at full length, a later turn alone may outgrow it
            run(max((encode_prompt(tokenizer, ex.prompt, chat) for ex in examples), key=len), max_new_tokens)
        elif not hasattr(run, "stream"):  # a stream's first prompt is part of its cold start
            run(warm, 4)
    lines = []
    names = list(runners)
    bar = tqdm(total=len(names) * repeats * len(examples), desc=f"bench {source.label}", disable=not progress)
    for repeat in range(repeats):
        for i, ex in enumerate(examples):
            shift = (i + repeat) % len(names)
            for method in names[shift:] + names[:shift]:
                results = decode_turns(runners[method], tokenizer, ex, max_new_tokens, chat)
                stream = getattr(runners[method], "stream", None)
                phases = [r.phase for r in stream.records[-len(results):]] if stream else [None] * len(results)
                facts = stream.search_facts() if stream else None
                for turn, (result, phase) in enumerate(zip(results, phases)):
                    line = _line(method, source.label, ex.id, repeat, result)
                    line.turn, line.phase, line.model, line.machine = turn, phase, model_name, machine
                    line.search = facts
                    lines.append(line)
                    if out is not None:
                        append_line(out, json.dumps(asdict(line)))  # on a fresh line, even after a killed run
                bar.update()
    bar.close()
    if save_found and runner_options.get("store") is not None:
        _save_found(runners, runner_options["store"], model_name, source.label, lines)
    return lines


def _save_found(runners: dict, store, model_name: str, task: str, lines: list[BenchLine]) -> None:
    """Store what each stream that searched found, and say so in its last line's search facts (the CLI's
    note; the lines already in the results file were written before)."""
    for method, run in runners.items():
        stream = getattr(run, "stream", None)
        if stream is None or stream.search.iteration == 0:
            continue  # not a stream, or one that started from the store and never searched
        key, why_not = stream.save_to(store, model_name, task)
        last = next(line for line in reversed(lines) if line.method == method)
        last.search = {**last.search, "stored": None if why_not else f"{store.path} [{key}]",
                       "not_stored_because": why_not}


def machine_name(model) -> str:
    """The hardware a benchmark ran on, as recorded with each line: the GPU's name, or the CPU's kind."""
    import os
    import platform

    import torch

    device = input_device(model)
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    return f"{device.type} {platform.machine()} ({os.cpu_count()} cores)"


_FIELD_TYPES = {"method": str, "task": str, "prompt_id": str, "repeat": int, "new_tokens": int, "wall_s": (int, float),
                "token_ids": list}


def decode_turns(run, tokenizer, example, max_new_tokens: int, chat="auto") -> list[DecodeResult]:
    """One result per turn of the example: its prompt alone, or (Spec-Bench's multi-turn questions)
    each later turn after the method's own answer to the one before, as Spec-Bench runs them."""
    from ..tasks.chat import decode_continuation, encode_prompt
    from ..tasks.chat import encode_turns

    turns = example.meta.get("turns") or [example.prompt]
    results, answers = [], []
    for k in range(len(turns)):
        ids = encode_prompt(tokenizer, turns[0], chat) if k == 0 else encode_turns(tokenizer, turns[:k + 1],
                                                                                     answers, chat)
        # timed around the call, as `generate` is: a decode's own clock starts at its prompt pass, so a run's
        # set-up (its drafters) would go uncounted
        started = time.perf_counter()
        result = run(ids, max_new_tokens)
        result = result.plus(time.perf_counter() - started - result.wall_s)
        answers.append(decode_continuation(tokenizer, result.prompt_ids, result.token_ids).strip())
        results.append(result)
    return results


def read_lines(path: str | Path) -> list[BenchLine]:
    """The bench results in a JSON-lines file. A line cut off mid-record (a run killed while writing)
    is skipped with a warning naming it; any other bad line is an error."""
    from ..support.storage import read_text

    lines = []
    for number, text in enumerate(read_text(path, "results file").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            if text.lstrip().startswith("{") and not text.rstrip().endswith("}"):  # a record cut short
                warnings.warn(f"{path} line {number} is a truncated record (a run stopped mid-write); skipped")
                continue
            raise SwiftlabError(f"{path} line {number} is not a bench result: invalid JSON ({e.msg})") from None
        except RecursionError:
            raise SwiftlabError(f"{path} line {number} is not a bench result: JSON nested too deeply") from None
        lines.append(_bench_line(data, path, number))
    if not lines:
        raise SwiftlabError(f"{path} holds no bench results")
    return lines


def _bench_line(data, path, number: int) -> BenchLine:
    if not isinstance(data, dict):
        raise SwiftlabError(f"{path} line {number} is not a bench result: a JSON object is expected")
    known = {f.name for f in fields(BenchLine)}
    missing = [f.name for f in fields(BenchLine) if f.default is MISSING and f.default_factory is MISSING
               and f.name not in data]
    unknown = sorted(set(data) - known)
    if missing or unknown:
        raise SwiftlabError(f"{path} line {number} is not a bench result: "
                            + "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                                      unknown and f"unknown fields {', '.join(unknown)}"])))
    for name, kind in _FIELD_TYPES.items():
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool) or (name == "wall_s" and value < 0):
            raise SwiftlabError(f"{path} line {number}: field {name!r} should be {_kind_name(kind)}, got {value!r}")
    return BenchLine(**data)


def _kind_name(kind) -> str:
    return "a number" if isinstance(kind, tuple) else {str: "a string", int: "an integer", list: "a list"}[kind]


def by_run(lines: list[BenchLine]) -> dict[tuple, list[BenchLine]]:
    """Lines grouped by (model, machine): each group is one comparable benchmark."""
    groups: dict[tuple, list[BenchLine]] = {}
    for line in lines:
        groups.setdefault((line.model, line.machine), []).append(line)
    return groups


# one token per full-model pass, by swiftlab's loop or transformers' generate (eager, static cache, compiled)
PLAIN_DECODINGS = ("ar", "ar-compile", "hf-generate", "hf-static", "hf-static-compile")


def summarize(lines: list[BenchLine]) -> list[dict]:
    """Per task and method: Spec-Bench's speedup (mean tokens/s over the mean of `ar`'s), mean
    accepted tokens, acceptance, and whether the output equalled `ar`'s on every prompt.
    Lines of one model on one machine only: a blend of two would be silently wrong (see by_run)."""
    runs = by_run(lines)
    if len(runs) > 1:
        raise SwiftlabError("these results mix " + "; ".join(f"{m or 'an unnamed model'} on {c or 'an unnamed machine'}"
                                                              for m, c in runs) + ": summarize each run on its own")
    rows = []
    for task in dict.fromkeys(l.task for l in lines):
        mine = [l for l in lines if l.task == task]
        per = {}
        for l in mine:  # median over repeats, per prompt (and turn)
            per.setdefault(l.method, {}).setdefault(_prompt_key(l), []).append(l)
        # a stream's acceleration phase alone: its prompts decoded with the search already stopped
        for method in [m for m in per if m.startswith("swift")]:
            accelerating = {p: [x for x in v if x.phase == "accelerate"] for p, v in per[method].items()}
            if any(accelerating.values()) and "ar" in per:
                per[f"{method} (accelerating)"] = {p: v for p, v in accelerating.items() if v}
        ar = per.get("ar")

        def baseline_tps(method: str, prompts) -> float | None:
            """A baseline's tokens/s on these prompts only (a subset for the acceleration row)."""
            lines_of = per.get(method, {})
            return _mean_tps({p: lines_of[p] for p in prompts if p in lines_of}, lambda x: x.tokens_per_s) \
                if any(p in lines_of for p in prompts) else None

        for method, by_prompt in per.items():
            tps = _mean_tps(by_prompt, lambda x: x.tokens_per_s)
            ar_tps = baseline_tps("ar", by_prompt)
            # the fastest plain decoding measured, compiled ones included: the bar a speedup must clear
            best_ar = max(filter(None, (baseline_tps(m, by_prompt) for m in PLAIN_DECODINGS)), default=None)
            lengths = [n for v in by_prompt.values() for x in v for n in (x.accepted_lengths or [])]
            same = None
            if ar:
                same = all(v[0].token_ids == ar[p][0].token_ids for p, v in by_prompt.items() if p in ar)
            # zero-overhead bound: the same tokens if only the model's draft and verify passes cost time
            bound_tps = _mean_tps(by_prompt, _model_only_tps) if all(
                _model_only_tps(x) for v in by_prompt.values() for x in v) else None
            rows.append({"task": task, "method": method, "prompts": len(by_prompt), "tokens_per_s": tps,
                         "speedup": tps / ar_tps if ar_tps else None,
                         "speedup_vs_best_ar": tps / best_ar if best_ar else None,
                         "bound": bound_tps / ar_tps if bound_tps and ar_tps else None,
                         "mean_accepted_tokens": statistics.mean(lengths) if lengths else None,
                         "acceptance_rate": _acceptance(by_prompt), "identical_to_ar": same,
                         "search": _last_search(by_prompt)})
    return rows


def _last_search(by_prompt) -> dict | None:
    """A stream's search facts as of its last line (its share of wall time is cumulative)."""
    return next((x.search for v in reversed(list(by_prompt.values())) for x in reversed(v) if x.search), None)


def search_notes(rows: list[dict]) -> list[str]:
    """One line per stream: its search's share of wall time, the verdict and the ratio chosen, and why."""
    notes = []
    for r in rows:
        facts = r.get("search")
        if not facts or "(accelerating)" in r["method"]:
            continue
        share = facts.get("search_share")
        parts = [f"search {share:.1%} of wall time" if share is not None else "search unbudgeted"]
        if facts.get("started_from"):
            parts.append(f"started from the stored set {facts['started_from']}")
        if facts.get("verdict_reason"):
            parts.append(facts["verdict_reason"])
        if facts.get("ratio_reason"):
            parts.append(f"ratio {facts['ratio_reason']}")
        if facts.get("lookup_reason"):
            parts.append(facts["lookup_reason"])
        if facts.get("stored"):
            parts.append(f"found set stored to {facts['stored']}: the next run starts from it (--fresh: from scratch)")
        elif facts.get("not_stored_because"):
            parts.append(f"found set not stored: {facts['not_stored_because']}")
        notes.append(f"{r['task']} {r['method']}: " + "; ".join(parts))
    return notes


def _prompt_key(line: BenchLine) -> str:
    return line.prompt_id if not line.turn else f"{line.prompt_id}/turn{line.turn + 1}"


def _mean_tps(by_prompt: dict, rate) -> float:
    """Spec-Bench's averaging: the median over repeats per prompt, then the mean over prompts."""
    return statistics.mean(statistics.median(rate(x) for x in v) for v in by_prompt.values())


def _model_only_tps(line: BenchLine) -> float | None:
    """Tokens/s counting only SWIFT's model passes: the prompt pass, drafts and verifications (no search,
    bookkeeping or Python between steps). The prompt pass counts because the baseline's time includes it."""
    t = line.timings_s or {}
    busy = t.get("prefill", 0.0) + t.get("draft", 0.0) + t.get("verify", 0.0)
    return line.new_tokens / busy if line.drafted_per_step and sum(line.drafted_per_step) and busy > 0 else None


def pass_cost_bound(lines: list[BenchLine], full, draft: float) -> float | None:
    """The speedup over autoregressive decoding these SWIFT runs would reach if every step cost only
    its model passes, priced with pass costs measured in isolation (benchmarks/step_costs.py): a
    skip-drafted step, its drafts plus a verify pass over its tree; a lookup step, its verify pass; a
    plain step, one pass. `full(k)` is the seconds of a full pass over k tokens, `draft` of one draft
    pass. The prompt pass and its token are left out on both sides."""
    tokens = cost = 0.0
    for line in lines:
        if not line.step_kinds or not line.tree_size_per_step or not line.drafted_per_step:
            return None
        tokens += line.new_tokens - 1
        for kind, drafted, nodes in zip(line.step_kinds, line.drafted_per_step, line.tree_size_per_step):
            if kind != "prefill":
                cost += (drafted * draft if kind == "skip" else 0.0) + full(nodes + 1)
    return tokens * full(1) / cost if cost else None


def _acceptance(by_prompt) -> float | None:
    lines = [x for v in by_prompt.values() for x in v if x.drafted_per_step]
    drafted = sum(sum(x.drafted_per_step) for x in lines)
    if not drafted:
        return None
    return sum(n - 1 for x in lines for n in x.accepted_lengths) / drafted


def summary_table(rows: list[dict]) -> str:
    """Markdown: speedups over `ar` and over the fastest plain decoding measured (PLAIN_DECODINGS), and for SWIFT methods
    the zero-overhead bound (the speedup if only draft and verify passes cost time) and the share reached."""
    out = ["| task | method | tokens/s | speedup | vs best AR | bound | of bound | tokens/pass | identical |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    f = lambda v, fmt: fmt.format(v) if v is not None else "-"
    for r in rows:
        reached = r["speedup"] / r["bound"] if r.get("bound") and r["speedup"] else None
        out.append(f"| {r['task']} | {r['method']} | {r['tokens_per_s']:.1f} | {f(r['speedup'], '{:.2f}x')} | "
                   f"{f(r.get('speedup_vs_best_ar'), '{:.2f}x')} | {f(r.get('bound'), '{:.2f}x')} | "
                   f"{f(reached, '{:.0%}')} | {f(r['mean_accepted_tokens'], '{:.2f}')} | "
                   f"{f(r['identical_to_ar'], '{}')} |")
    return "\n".join(out)


def to_specbench(lines: list[BenchLine], tokenizer, model_id: str) -> list[dict]:
    """Spec-Bench's answer format, one record per (method, question, repeat), its turns in order."""
    grouped: dict[tuple, list[BenchLine]] = {}
    for l in lines:
        grouped.setdefault((l.method, l.prompt_id, l.repeat), []).append(l)
    records = []
    for (method, prompt_id, repeat), turns in grouped.items():
        turns.sort(key=lambda l: l.turn)
        records.append({
            "question_id": int(prompt_id) if prompt_id.isdigit() else prompt_id,
            "answer_id": f"{method}-{repeat}", "model_id": f"{model_id}-{method}",
            "choices": [{"index": 0, "turns": [tokenizer.decode(l.token_ids, skip_special_tokens=True) for l in turns],
                         "decoding_steps": [l.steps for l in turns], "new_tokens": [l.new_tokens for l in turns],
                         "wall_time": [l.wall_s for l in turns],
                         "accept_lengths": [l.accepted_lengths or [] for l in turns]}],
            "tstamp": time.time()})
    return records
