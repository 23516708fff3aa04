"""The paper's analysis as runnable experiments: probes -> JSON files -> figures (HTML).

    swiftlab probe importance --model lab --task story --out runs/figures/importance-story.json
    swiftlab figures --model lab --out runs/figures          # run every probe, then draw everything
    swiftlab figures --from runs/figures --out runs/figures  # redraw from saved records only

Each saved file is {"probe": name, "record": {...}}, so figures can be rebuilt without a model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from . import figures
from ..support.errors import SwiftlabError
from .probes import (STRATEGIES, ImportanceRecord, RedundancyRecord, SweepRecord, TaskSparsityRecord,
                     latency_breakdown, ratio_sweep, redundancy, sublayer_importance, task_sparsity)
from ..search.skipsearch import SearchConfig, Trajectory
from ..support.storage import atomic_write_json, read_json
from ..support.validate import field_type_errors, integer

TASKS = ("reasoning", "summarization", "story", "code")
RECORDS = {"importance": ImportanceRecord, "redundancy": RedundancyRecord, "sweep": SweepRecord,
           "task-sparsity": TaskSparsityRecord}


def _prompts(tokenizer, task, n: int, seed: int = 0, chat="auto") -> list[list[int]]:
    """Token ids of n held-out prompts of a task (a name or a TaskSource), through the chat template per `chat`."""
    from ..tasks.chat import encode_prompt
    from ..tasks import task_source

    return [encode_prompt(tokenizer, ex.prompt, chat) for ex in task_source(task).examples(n, seed=seed)]


def save(path: Path, probe: str, record) -> Path:
    """Write a probe's record to `path` as {"probe": probe, "record": ...}, atomically; `record` is a record
    dataclass (its `to_json`) or, for the dynamics and latency probes, a dict. Returns `path`."""
    payload = record if isinstance(record, dict) else json.loads(record.to_json())
    atomic_write_json(path, {"probe": probe, "record": payload})
    return path


class NotARecord(SwiftlabError):
    """A JSON file that is not a probe record at all (other files may share the folder)."""


DICT_RECORD_FIELDS = {"dynamics": ("task", "trajectory", "records"), "latency": ("task", "accelerating")}


def load(path: Path):
    """(probe name, record) of a file `save` wrote: a record dataclass, or a dict for dynamics and latency.
    Raises NotARecord for a JSON file that is no probe record, SwiftlabError for an unknown probe or a record
    whose fields are missing or mistyped."""
    data = read_json(path, what="probe record")
    if not isinstance(data, dict) or "probe" not in data or "record" not in data:
        raise NotARecord(f"{path} is not a swiftlab probe record")
    probe, record = data["probe"], data["record"]
    if probe not in PROBES:
        raise SwiftlabError(f"{path}: unknown probe {probe!r}")
    if probe in RECORDS:
        try:
            loaded = RECORDS[probe].from_json(json.dumps(record))
        except (TypeError, ValueError, KeyError) as e:
            raise SwiftlabError(f"{path}: not a valid {probe} record ({e})") from None
        wrong = field_type_errors(loaded)
        if wrong:
            raise SwiftlabError(f"{path}: not a valid {probe} record ({'; '.join(wrong)})")
        return probe, loaded
    missing = [k for k in DICT_RECORD_FIELDS[probe] if not isinstance(record, dict) or k not in record]
    if missing:
        raise SwiftlabError(f"{path}: not a valid {probe} record (missing {', '.join(missing)})")
    return probe, record


def run_probe(name: str, model, tokenizer, *, task="story", prompts: int = 4, max_new_tokens: int = 96,
              ratios=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6), repeats: int = 3, tasks=None, strategies=STRATEGIES,
              search: SearchConfig | None = None, progress: bool = True, chat="auto"):
    """One probe's record. Speedups are medians over prompts × `repeats` (after a warm-up); `search` sets the
    on-the-fly search of the probes that run one (task-sparsity, dynamics, latency). `task` is a name or a
    TaskSource (records carry its label); task-sparsity compares `tasks` (default: the four built-in ones)."""
    from functools import partial

    from ..tasks import task_source

    integer("prompts", prompts, 1)  # no prompts would write an empty record and call it done
    integer("max_new_tokens", max_new_tokens, 1)
    integer("repeats", repeats, 1)
    source = task_source(task)
    task, encoded = source.label, partial(_prompts_of, tokenizer, chat=chat, sources={source.label: source})
    if name == "importance":
        return sublayer_importance(model, encoded(task, prompts), task, progress=progress)
    if name == "redundancy":
        return redundancy(model, encoded(task, prompts), task, progress=progress)
    if name == "sweep":
        return ratio_sweep(model, encoded(task, prompts), ratios, strategies, task=task,
                           max_new_tokens=max_new_tokens, repeats=repeats,
                           search_prompts=encoded(task, prompts, seed=1), progress=progress)
    if name == "task-sparsity":
        sources = {s.label: s for s in map(task_source, tasks or TASKS)}
        encoded = partial(_prompts_of, tokenizer, chat=chat, sources=sources)
        return task_sparsity(model, {t: encoded(t, prompts, seed=1) for t in sources},
                             {t: encoded(t, max(2, prompts // 2)) for t in sources},
                             search=search, max_new_tokens=max_new_tokens, repeats=repeats, progress=progress)
    if name == "dynamics":  # the search and the stream, as the paper's optimization figures show them
        from ..search.stream import REFERENCE_SETTINGS, SwiftStream

        stream = SwiftStream(model, search or SearchConfig(), settings=REFERENCE_SETTINGS)
        for ids in tqdm(encoded(task, prompts * 5, seed=2), desc="dynamics (prompts)", disable=not progress):
            stream.decode(ids, max_new_tokens=max_new_tokens)
        return {"task": task, "trajectory": stream.search.trajectory.to_dict(), **stream.summary()}
    if name == "latency":
        from ..search.stream import REFERENCE_SETTINGS, SwiftStream

        stream = SwiftStream(model, search or SearchConfig(), settings=REFERENCE_SETTINGS)
        results = [stream.decode(ids, max_new_tokens=max_new_tokens)
                   for ids in tqdm(encoded(task, prompts * 3, seed=3), desc="latency (prompts)",
                                   disable=not progress)]
        return {"task": task, "all": latency_breakdown(results),
                "accelerating": latency_breakdown([r for r, rec in zip(results, stream.records)
                                                   if rec.phase == "accelerate"] or results)}
    raise SwiftlabError(f"unknown probe {name!r}; choose from importance, redundancy, sweep, task-sparsity, "
                        "dynamics, latency")


def _prompts_of(tokenizer, label: str, n: int, seed: int = 0, *, chat, sources: dict) -> list[list[int]]:
    return _prompts(tokenizer, sources[label], n, seed, chat)


PROBES = ("importance", "redundancy", "sweep", "task-sparsity", "dynamics", "latency")


def build_figures(records: dict[str, list]) -> dict:
    """name -> plotly figure, for every figure the records allow (no I/O)."""
    from ..search.stream import PromptRecord

    figs = {}
    if records.get("importance"):
        figs["importance"] = figures.importance_heatmap(records["importance"])
    if records.get("redundancy"):
        figs["redundancy"] = figures.redundancy_figure(records["redundancy"])
    for r in records.get("sweep", []):
        figs[f"sweep-{r.task}"] = figures.sweep_figure(r)
    for r in records.get("task-sparsity", []):
        figs["task-skip-sets"] = figures.skip_sets_heatmap(r.sets())
        figs["transfer"] = figures.transfer_matrix(r.speedups(), r.spread())
    for d in records.get("dynamics", []):
        figs[f"trajectory-{d['task']}"] = figures.trajectory_figure(Trajectory.from_dict(d["trajectory"]))
        figs[f"stream-{d['task']}"] = figures.stream_figure([PromptRecord(**p) for p in d["records"]])
    for d in records.get("latency", []):
        figs[f"latency-{d['task']}"] = figures.latency_figure(d["accelerating"])
    return figs


def draw(records: dict[str, list], out: Path, png: bool = True) -> list[Path]:
    """Write one self-contained HTML file per figure (and a PNG where a static exporter works)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in build_figures(records).items():
        path = out / f"{name}.html"
        # plotly.js inside every page (~4.8 MB each): a page beside a shared plotly.min.js opened blank in
        # JupyterLab, whose file server refused the script ("Plotly is not defined"); offline either way
        write_html(fig, path)
        written.append(path)
        if png:
            png = _write_png(fig, out / f"{name}.png")
            if png:
                written.append(out / f"{name}.png")
    return written


def write_html(fig, path: Path) -> Path:
    """A standalone page with plotly.js embedded, written atomically."""
    from ..support.storage import atomic_write_text

    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
    return path


def _write_png(fig, path: Path) -> bool:
    """A static image through kaleido (it drives a Chrome or Chromium); False, said once, where it cannot."""
    try:
        fig.write_image(path, width=900, height=500, scale=2)
        return True
    except Exception as err:  # no kaleido, no browser: the HTML pages are still written
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"swiftlab figures: PNG export skipped ({first}); the HTML figures are written", file=sys.stderr)
        return False


def load_dir(folder: Path) -> dict[str, list]:
    """Every probe record in `folder` (its *.json files) by probe name, skipping JSON files that are no
    records. Raises SwiftlabError where any record cannot be read, or where there is none."""
    records: dict[str, list] = {}
    unreadable = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            probe, record = load(path)
        except NotARecord:
            continue  # other JSON files may live there too
        except SwiftlabError as e:
            unreadable.append(str(e))
            continue
        records.setdefault(probe, []).append(record)
    if unreadable:  # a figure silently missing would look like a finished run
        raise SwiftlabError(f"{len(unreadable)} record(s) in {folder} could not be read: " + "; ".join(unreadable))
    if not records:
        raise SwiftlabError(f"no probe records in {folder}")
    return records


def bench_spread(lines) -> dict[str, tuple[float, float, float]]:
    """Per method: (median, min, max) of its tokens/s over `ar`'s on the same prompt and repeat."""
    import statistics

    ar = {(l.prompt_id, l.repeat): l.tokens_per_s for l in lines if l.method == "ar"}
    ratios: dict[str, list[float]] = {}
    for l in lines:
        if l.method != "ar" and ar.get((l.prompt_id, l.repeat)):
            ratios.setdefault(l.method, []).append(l.tokens_per_s / ar[l.prompt_id, l.repeat])
    return {m: (statistics.median(v), min(v), max(v)) for m, v in ratios.items()}


def run_all(model, tokenizer, out: Path, prompts: int = 4, max_new_tokens: int = 96, tasks=None,
            chat="auto") -> list[Path]:
    """Every probe on every task the figures need, saved as it goes, then drawn. `tasks` (names or
    TaskSources, default the four built-in ones): importance and redundancy on each, the sweep on the
    first two, task sparsity across all, the search dynamics and latency split on the first."""
    from ..tasks import task_source

    out.mkdir(parents=True, exist_ok=True)
    sources = {s.label: s for s in map(task_source, tasks or ("story", "reasoning", "summarization", "code"))}
    labels = list(sources)
    plan = [(p, t) for p in ("importance", "redundancy") for t in labels]
    plan += [("sweep", t) for t in labels[:2]] + [("task-sparsity", "all"), ("dynamics", labels[0]),
                                                 ("latency", labels[0])]
    for probe, task in tqdm(plan, desc="probes"):
        path = out / f"{probe}-{task}.json"
        if path.exists():
            continue  # resumable: a finished probe is not run again
        record = run_probe(probe, model, tokenizer, task=sources[task if task != "all" else labels[0]],
                           tasks=list(sources.values()), prompts=prompts, max_new_tokens=max_new_tokens,
                           progress=False, chat=chat)
        save(path, probe, record)
    return draw(load_dir(out), out)
