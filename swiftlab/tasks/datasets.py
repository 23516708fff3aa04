"""Loaders for the real datasets of the SWIFT paper, with the paper's prompt formats.

The built-in tasks (generators.py, code.py) are offline stand-ins; these read the real data, for
users with a network connection (or a local copy) and a GPU:

    cnndm        CNN/DailyMail 3.0.0, 1-shot summarization        (abisee/cnn_dailymail)
    gsm8k        GSM8K "main", 5-shot chain-of-thought reasoning  (openai/gsm8k)
    tinystories  TinyStories, 1-shot story continuation           (roneneldan/TinyStories)
    humaneval    HumanEval, function-body completion              (openai/openai_humaneval)
    specbench    Spec-Bench question.jsonl (local file only; there is no hub copy)

Where the data comes from. Every task takes `path=`: a local .jsonl (one JSON object a line),
.json (a list of objects, or an object holding that list under "data"/"examples"/"rows"/
"records") or .parquet file (needs pyarrow). A local file is taken as-is for either split - it
*is* the split asked for - except that few-shot demonstrations are drawn from records other than
the query (the first ones in file order that are not the query). Without `path`, the `datasets`
library is used (imported only then, so that swiftlab works without it), and swiftlab's splits map
to the dataset's own: "train" -> train, "heldout" -> test (validation for TinyStories, which has
no test split). Demonstrations then come from the train split, the first records in its order,
skipping the query itself when the query is also from train. Demonstrations are fixed, not
seeded, so every prompt of a run shares the same prefix, as in the paper.

Order and count. `seed` shuffles the records deterministically (random.Random(seed)) and the
first `n` are returned, so a smaller n is a prefix of a larger one for the same seed; `n` caps
the count and a file with fewer usable records yields fewer examples.

References follow the built-in tasks' convention: `reference` is exactly what a perfect model
would write after the prompt, so prompt + reference reads as the whole text (hence the leading
space after "Summary:" and "Answer:").

Every bad input (missing file, corrupt JSON line, missing field, unknown option or category, the
`datasets` library missing or failing) is a one-line SwiftlabError naming the file, line and field.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import re
from pathlib import Path
from typing import Any, Callable

from ..support.errors import SwiftlabError
from ..support.storage import read_json
from .base import Example, check_split, content_id

FILE_FORMATS = (".jsonl", ".json", ".parquet")
JSON_LIST_KEYS = ("data", "examples", "rows", "records")  # where a .json file may keep its list


# ----- reading records ----------------------------------------------------------------------------
class _Records:
    """An indexable sequence of records (dicts) with a human-readable location for each one, so
    that an error can say "line 7 of file.jsonl" rather than an index nobody can find."""

    def __init__(self, rows, where: Callable[[int], str]):
        self.rows, self.where = rows, where

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def _read_file(path: Path) -> _Records:
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise SwiftlabError(f"dataset file {path}: unsupported format {suffix or '(no extension)'!r}; "
                            f"use {', '.join(FILE_FORMATS)}")
    if not path.exists():
        raise SwiftlabError(f"dataset file {path} does not exist")
    if path.is_dir():
        raise SwiftlabError(f"dataset file {path} is a directory, not a file")
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json_list(path)
    return _read_parquet(path)


def _read_jsonl(path: Path) -> _Records:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SwiftlabError(f"dataset file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise SwiftlabError(f"cannot read dataset file {path}: {e.strerror}") from None
    rows, lines = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():  # blank lines (a trailing newline, spacing) are not records
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SwiftlabError(f"corrupt dataset file {path}: line {lineno} is not valid JSON ({e.msg})") from None
        except RecursionError:
            raise SwiftlabError(f"corrupt dataset file {path}: line {lineno} is JSON nested too deeply") from None
        if not isinstance(row, dict):
            raise SwiftlabError(f"dataset file {path}: line {lineno} is a JSON {type(row).__name__}, "
                                f"not an object")
        rows.append(row)
        lines.append(lineno)
    return _Records(rows, lambda i: f"line {lines[i]} of {path}")


def _read_json_list(path: Path) -> _Records:
    try:
        data = read_json(path, "dataset file")
    except UnicodeDecodeError as e:  # read_json reports missing and corrupt files, not bad encodings
        raise SwiftlabError(f"dataset file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if isinstance(data, dict):
        lists = [k for k in JSON_LIST_KEYS if isinstance(data.get(k), list)]
        if not lists:
            raise SwiftlabError(f"dataset file {path}: expected a JSON list of records, or an object with "
                                f"the list under one of {', '.join(map(repr, JSON_LIST_KEYS))}")
        data = data[lists[0]]
    if not isinstance(data, list):
        raise SwiftlabError(f"dataset file {path}: expected a JSON list of records, got {type(data).__name__}")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise SwiftlabError(f"dataset file {path}: record {i + 1} is a JSON {type(row).__name__}, "
                                f"not an object")
    return _Records(data, lambda i: f"record {i + 1} of {path}")


def _read_parquet(path: Path) -> _Records:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SwiftlabError(f"reading {path} needs pyarrow (pip install pyarrow); "
                            f"or convert the file to .jsonl") from None
    try:
        rows = pq.read_table(path).to_pylist()  # lists stay lists, unlike pandas' numpy arrays
    except Exception as e:  # pyarrow raises its own error types for every kind of bad file
        raise SwiftlabError(f"cannot read parquet file {path}: {_one_line(e)}") from None
    return _Records(rows, lambda i: f"row {i + 1} of {path}")


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = str(e).strip().splitlines()
    text = text[0] if text else ""
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _import_datasets():
    """The `datasets` library, imported on first use: it is heavy and optional."""
    try:
        return importlib.import_module("datasets")
    except ImportError:
        raise SwiftlabError("loading from the Hugging Face hub needs the datasets library: "
                            "pip install datasets, or pass path=... to a local .jsonl/.json file") from None


def _text(record: dict, field: str, where: str, task: str, required: tuple[str, ...]) -> str:
    value = record.get(field)
    if value is None:
        raise SwiftlabError(f"{where} has no field {field!r} ({task} records need {', '.join(required)})")
    if not isinstance(value, str):
        raise SwiftlabError(f"field {field!r} in {where} must be a string, got {type(value).__name__}")
    return value


# ----- the shared machinery ------------------------------------------------------------------------
class DatasetTask:
    """A real dataset: records from a file or the hub, turned into Examples by `make_example`.

    Subclasses set the hub coordinates, the required fields and the number of demonstrations,
    and implement `make_example(record, shots, index, where)`. `path` is a local file (see the module
    docstring; None loads from the hub), `shots` the demonstrations per prompt; an unknown option, a bad
    `shots` or a missing file is a SwiftlabError at once, before anything is read.
    """

    name = ""
    description = ""
    hub_name: str | None = None
    """The dataset's name on the Hugging Face hub, for `datasets.load_dataset` (None: no hub copy)."""
    hub_config: str | None = None
    """The hub dataset's configuration ("3.0.0", "main"), or None for its default."""
    hub_splits: dict[str, str] = {"train": "train", "heldout": "test"}
    """swiftlab's split -> the hub's split; without `path`, a split not here is a SwiftlabError."""
    shot_split = "train"
    """The hub split demonstrations come from (its first records, in order), where `path` is None."""
    required: tuple[str, ...] = ()
    """The fields every record must have, as strings (`check` names the one missing)."""

    def __init__(self, path: str | os.PathLike | None = None, shots: int = 0, **unknown: Any):
        _reject_unknown(self.name, unknown, self._options())
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
            raise SwiftlabError(f"{self.name}: shots must be an integer >= 0, got {shots!r}")
        self.shots = shots
        """Demonstrations per prompt, drawn from records other than the query."""
        self.path = Path(path).expanduser() if path is not None else None
        """The local dataset file (the split asked for, whichever it is), or None to load from the hub."""
        # Fail early on a missing file (before any model is loaded); reading waits for examples().
        if self.path is not None and not self.path.exists():
            raise SwiftlabError(f"dataset file {self.path} does not exist")
        self._file: _Records | None = None
        self._hub: dict[str, _Records] = {}

    @classmethod
    def _options(cls) -> tuple[str, ...]:
        return ("path", "shots")

    # -- where the records come from
    def _file_records(self) -> _Records:
        if self._file is None:
            records = _read_file(self.path)
            for i in range(len(records)):  # validate the whole file now: errors name the line
                self.check(records[i], records.where(i))
            self._file = records
        return self._file

    def _hub_records(self, hub_split: str) -> _Records:
        if hub_split not in self._hub:
            datasets = _import_datasets()
            try:
                rows = datasets.load_dataset(self.hub_name, self.hub_config, split=hub_split)
            except Exception as e:  # network, auth, missing cache: the library raises many types
                raise SwiftlabError(f"could not load {self.hub_name} ({hub_split}) with the datasets library "
                                    f"({_one_line(e)}); check the network or pass path=... to a local file") from None
            self._hub[hub_split] = _Records(rows, lambda i, s=hub_split: f"{self.hub_name} {s} record {i}")
        return self._hub[hub_split]

    def _hub_split(self, split: str) -> str:
        if split not in self.hub_splits:
            raise SwiftlabError(f"{self.name} has no {split!r} split on the hub (it has "
                                f"{', '.join(sorted(self.hub_splits))}); pass path=... to use your own file")
        return self.hub_splits[split]

    # -- per-task hooks
    def check(self, record: dict, where: str) -> None:
        """Raise a SwiftlabError when `record` cannot be used (a missing or mistyped field); `where`
        names it in the message ("line 7 of file.jsonl")."""
        for field in self.required:
            _text(record, field, where, self.name, self.required)

    def usable_query(self, record: dict) -> bool:
        """Whether a checked `record` can be a query (it can still be a demonstration); `examples` skips
        those that cannot. Here every record can."""
        return True

    def make_example(self, record: dict, shots: list[dict], index: int, where: str) -> Example:
        """The Example for query `record` after the demonstrations `shots`; `index` is its place in its
        source, `where` names it in errors. Subclasses implement it (NotImplementedError here)."""
        raise NotImplementedError

    # -- the Task protocol
    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """Up to `n` examples of `split`: the records (the local file's, else the hub split `hub_splits`
        maps it to) shuffled by random.Random(`seed`), those `usable_query` rejects skipped, each with
        `shots` demonstrations. A bad split, `n` or record, too few demonstrations or a failed load raise
        SwiftlabError."""
        check_split(split)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise SwiftlabError(f"number of examples must be an integer >= 0, got {n!r}")
        if n == 0:
            return []
        if self.path is not None:
            queries = pool = self._file_records()
        else:
            queries = self._hub_records(self._hub_split(split))
            pool = self._hub_records(self.shot_split) if self.shots else queries
        order = list(range(len(queries)))
        random.Random(seed).shuffle(order)
        same = pool is queries  # then the query itself must not be its own demonstration
        chosen: list[Example] = []
        for i in order:
            if len(chosen) == n:
                break
            record, where = queries[i], queries.where(i)
            if self.path is None:
                self.check(record, where)  # hub rows are checked as they are used, not all up front
            if not self.usable_query(record):
                continue
            shots = self._demonstrations(pool, i if same else None)
            chosen.append(self.make_example(record, shots, i, where))
        return chosen

    def _demonstrations(self, pool: _Records, exclude: int | None) -> list[dict]:
        shots: list[dict] = []
        for j in range(len(pool)):
            if len(shots) == self.shots:
                return shots
            if j == exclude:
                continue
            if self.path is None:
                self.check(pool[j], pool.where(j))
            shots.append(pool[j])
        if len(shots) < self.shots:
            source = str(self.path) if self.path is not None else f"{self.hub_name} {self.shot_split}"
            raise SwiftlabError(f"{self.name} needs {self.shots} demonstration(s) besides the query but {source} "
                                f"has only {len(shots)} other record(s); add records or pass a smaller shots=")
        return shots

    def _meta(self, index: int, **extra) -> dict:
        source = str(self.path) if self.path is not None else f"hf:{self.hub_name}"
        return {"source": source, "index": index, **extra}


def _reject_unknown(task: str, unknown: dict, known: tuple[str, ...]) -> None:
    # get_task passes options straight to the constructor; a typo there would otherwise be a
    # TypeError traceback rather than one line.
    if unknown:
        raise SwiftlabError(f"task {task!r} has no option(s) {', '.join(sorted(unknown))}; "
                            f"it takes {', '.join(known)}")


# ----- CNN/DailyMail ---------------------------------------------------------------------------------
def _truncate(text: str, limit: int | None) -> tuple[str, bool]:
    """At most `limit` characters, cut at a word boundary when one is near the end."""
    if limit is None or len(text) <= limit:
        return text, False
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit * 0.8:  # don't throw away a fifth of the budget for one long "word"
        cut = cut[:space]
    return cut.rstrip(), True


class CnnDailyMail(DatasetTask):
    """1-shot summarization. Articles (the demonstration's too) are cut to `max_article_chars`
    characters so that a 1-shot prompt fits a 4k context; None keeps them whole."""

    name = "cnndm"
    description = "CNN/DailyMail 3.0.0: summarise a news article into its highlights (1-shot)"
    hub_name, hub_config = "abisee/cnn_dailymail", "3.0.0"
    required = ("article", "highlights")  # `id` is used when present, else a content hash

    def __init__(self, path=None, shots: int = 1, max_article_chars: int | None = 2000, **unknown):
        super().__init__(path, shots, **unknown)
        if max_article_chars is not None and (isinstance(max_article_chars, bool)
                                              or not isinstance(max_article_chars, int) or max_article_chars < 1):
            raise SwiftlabError(f"cnndm: max_article_chars must be a positive integer or None, "
                                f"got {max_article_chars!r}")
        self.max_article_chars = max_article_chars

    @classmethod
    def _options(cls):
        return ("path", "shots", "max_article_chars")

    def make_example(self, record, shots, index, where):
        """The prompt "Article: ...\\nSummary:" after the demonstrations (articles cut to `max_article_chars`);
        the highlights, after a space, as reference and, one a line, as `facts`. The id is the record's `id`, else
        a content hash; `meta["truncated"]` says whether the article was cut."""
        demos = ""
        for shot in shots:
            article, _ = _truncate(shot["article"].strip(), self.max_article_chars)
            demos += f"Article: {article}\nSummary: {shot['highlights'].strip()}\n\n"
        article, truncated = _truncate(record["article"].strip(), self.max_article_chars)
        highlights = record["highlights"].strip()
        own_id = record.get("id")
        return Example(
            self.name,
            str(own_id) if own_id is not None else content_id(self.name, record["article"]),
            f"{demos}Article: {article}\nSummary:",
            " " + highlights,
            facts=tuple(line.strip() for line in highlights.splitlines() if line.strip()),
            meta=self._meta(index, truncated=truncated),
        )


# ----- GSM8K -----------------------------------------------------------------------------------------
_FINAL = re.compile(r"####\s*(.*?)\s*$", re.S)


def gsm8k_solution(answer: str, where: str) -> tuple[str, str]:
    """(worked solution ending "The answer is N.", N) from a GSM8K answer ending "#### N".

    N loses its thousands separators ("1,000" -> "1000") so that it compares equal to a number
    parsed from a model's output.
    """
    m = _FINAL.search(answer)
    if m is None:
        raise SwiftlabError(f"{where}: the answer has no final '#### N' line")
    number = m.group(1).replace(",", "").strip()
    if not number:
        raise SwiftlabError(f"{where}: the answer's '####' line has no number after it")
    body = answer[:m.start()].rstrip()
    sentence = f"The answer is {number}."
    return (f"{body}\n{sentence}" if body else sentence), number


class Gsm8k(DatasetTask):
    """Chain-of-thought reasoning: `shots` (5) worked demonstrations, then the question; the reference is its
    worked solution ending "The answer is N.", and `answer` N, to compare with a model's final number."""

    name = "gsm8k"
    description = "GSM8K: grade-school math word problems with worked solutions (5-shot chain of thought)"
    hub_name, hub_config = "openai/gsm8k", "main"
    required = ("question", "answer")

    def __init__(self, path=None, shots: int = 5, **unknown):
        super().__init__(path, shots, **unknown)

    def check(self, record, where):
        """As `DatasetTask.check`, and the answer must end in a "#### N" line (`gsm8k_solution`)."""
        super().check(record, where)
        gsm8k_solution(record["answer"], where)  # a missing '####' is reported with its line

    def make_example(self, record, shots, index, where):
        """The prompt "Question: ...\\nAnswer:" after the worked demonstrations; the worked solution ending
        "The answer is N." (`gsm8k_solution`), after a space, as reference, N as `answer`; the id is a hash of
        the question."""
        demos = "".join(f"Question: {s['question'].strip()}\nAnswer: {gsm8k_solution(s['answer'], where)[0]}\n\n"
                        for s in shots)
        question = record["question"].strip()
        solution, number = gsm8k_solution(record["answer"], where)
        return Example(self.name, content_id(self.name, question), f"{demos}Question: {question}\nAnswer:",
                       " " + solution, answer=number, meta=self._meta(index))


# ----- TinyStories -----------------------------------------------------------------------------------
# The end of the first sentence: ., ! or ? (with any closing quotes or brackets) before whitespace,
# or a line break. Stories are simple enough that abbreviations ("Mr.") are rare.
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)]*(?=\s)|(?=\n)")


def split_story(text: str) -> tuple[str, str] | None:
    """(first sentence, the rest exactly as written, leading whitespace included), or None when
    the story has a single sentence and there is nothing to continue."""
    text = text.strip()
    m = _SENTENCE_END.search(text)
    if m is None or not text[m.end():].strip():
        return None
    return text[:m.end()], text[m.end():]


class TinyStories(DatasetTask):
    """1-shot story continuation: the prompt is a whole demonstration story, then "Story: " and the
    query story's first sentence; the reference is the rest of the story, so prompt + reference is
    "Story: {shot}\\n\\nStory: {story}". Single-sentence stories are skipped as queries."""

    name = "tinystories"
    description = "TinyStories: continue a short children's story from its first sentence (1-shot)"
    hub_name = "roneneldan/TinyStories"
    hub_splits = {"train": "train", "heldout": "validation"}  # the dataset has no test split
    required = ("text",)

    def __init__(self, path=None, shots: int = 1, **unknown):
        super().__init__(path, shots, **unknown)

    def usable_query(self, record):
        """Whether the story has more than one sentence, so that there is a rest to continue (`split_story`)."""
        return split_story(record["text"]) is not None

    def make_example(self, record, shots, index, where):
        """The demonstration stories, then "Story: " and the query's first sentence as prompt; the rest of the
        story, exactly as written, as reference; the id is a hash of the story."""
        demos = "".join(f"Story: {s['text'].strip()}\n\n" for s in shots)
        first, rest = split_story(record["text"])
        return Example(self.name, content_id(self.name, record["text"].strip()), f"{demos}Story: {first}", rest,
                       meta=self._meta(index))


# ----- HumanEval -------------------------------------------------------------------------------------
class HumanEval(DatasetTask):
    """Function-body completion: the prompt is the signature and docstring, the reference the
    canonical body. HumanEval has only a test split (164 problems): it is "heldout"; asking the hub
    for "train" is an error rather than a silent overlap with it."""

    name = "humaneval"
    description = "HumanEval: complete a Python function from its signature and docstring (0-shot)"
    hub_name = "openai/openai_humaneval"
    hub_splits = {"heldout": "test"}
    required = ("task_id", "prompt", "canonical_solution", "entry_point", "test")

    def __init__(self, path=None, **unknown):
        _reject_unknown(self.name, unknown, self._options())  # before `shots` reaches the base class
        super().__init__(path, 0)

    @classmethod
    def _options(cls):
        return ("path",)

    def make_example(self, record, shots, index, where):
        """The record's `prompt` (signature and docstring) as prompt, `canonical_solution` as reference and
        `task_id` as id; `meta` keeps `task_id`, `entry_point` and `test`, what running the tests needs."""
        return Example(self.name, record["task_id"], record["prompt"], record["canonical_solution"],
                       meta=self._meta(index, task_id=record["task_id"], entry_point=record["entry_point"],
                                       test=record["test"]))


# ----- Spec-Bench ------------------------------------------------------------------------------------
# Spec-Bench's six subtasks. Its 80 MT-bench questions carry MT-bench's own categories, so
# "mt_bench" stands for those eight (as in Spec-Bench's evaluation/speed.py).
MT_BENCH_CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
SPEC_BENCH_CATEGORIES = ("mt_bench", "translation", "summarization", "qa", "math_reasoning", "rag")


def spec_bench_group(category: str) -> str:
    """The Spec-Bench subtask of a question's category: "mt_bench" for MT-bench's eight categories
    (`MT_BENCH_CATEGORIES`), else the category itself."""
    return "mt_bench" if category in MT_BENCH_CATEGORIES else category


class SpecBench(DatasetTask):
    """Spec-Bench (github.com/hemingkx/Spec-Bench, data/spec_bench/question.jsonl): the prompt is a
    question's first turn, `reference` its first reference answer when the file has one (else "").
    `category=` keeps one of the six subtasks (or one MT-bench category)."""

    name = "specbench"
    description = ("Spec-Bench: 480 questions in 6 subtasks (mt_bench, translation, summarization, qa, "
                   "math_reasoning, rag); needs path= to question.jsonl")
    required = ("category",)

    def __init__(self, path=None, category: str | None = None, **unknown):
        _reject_unknown(self.name, unknown, self._options())
        if path is None:
            raise SwiftlabError("specbench has no copy on the Hugging Face hub: download data/spec_bench/"
                                "question.jsonl from github.com/hemingkx/Spec-Bench and pass path=... "
                                "(CLI: --data PATH)")
        if category is not None and category not in SPEC_BENCH_CATEGORIES + MT_BENCH_CATEGORIES:
            raise SwiftlabError(f"unknown Spec-Bench category {category!r}; choose one of "
                                f"{', '.join(SPEC_BENCH_CATEGORIES)} (or an MT-bench category: "
                                f"{', '.join(MT_BENCH_CATEGORIES)})")
        super().__init__(path, 0)
        self.category = category

    @classmethod
    def _options(cls):
        return ("path", "category")

    def check(self, record, where):
        """As `DatasetTask.check` (a string `category`), and the record must have a `question_id` and `turns`,
        a non-empty list of strings."""
        super().check(record, where)
        if record.get("question_id") is None:
            raise SwiftlabError(f"{where} has no field 'question_id' (specbench records need "
                                f"question_id, category, turns)")
        turns = record.get("turns")
        if turns is None:
            raise SwiftlabError(f"{where} has no field 'turns' (specbench records need question_id, category, turns)")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise SwiftlabError(f"field 'turns' in {where} must be a non-empty list of strings")

    def usable_query(self, record):
        """Whether the question is in the chosen `category`, as its own category or its subtask
        (`spec_bench_group`); every question where no category was chosen."""
        if self.category is None:
            return True
        return self.category in (record["category"], spec_bench_group(record["category"]))

    def examples(self, split, n, seed=0):
        """As `DatasetTask.examples` (the file is taken as either split); besides, a SwiftlabError where the
        chosen `category` matches no question in the file."""
        chosen = super().examples(split, n, seed)
        if n and not chosen and self.category is not None:  # a filter matching nothing is a mistake
            raise SwiftlabError(f"no Spec-Bench question in {self.path} has category {self.category!r}")
        return chosen

    def make_example(self, record, shots, index, where):
        """The question's first turn as prompt, its first reference answer as reference ("" where it has none),
        `question_id` as id; `meta` keeps the category, its subtask (`group`), every turn and the references."""
        references = record.get("reference")
        if isinstance(references, str):
            references = [references]
        first_reference = references[0] if isinstance(references, list) and references \
            and isinstance(references[0], str) else ""
        meta = self._meta(index, question_id=record["question_id"], category=record["category"],
                          group=spec_bench_group(record["category"]), turns=list(record["turns"]))
        if references:
            meta["references"] = list(references)
        return Example(self.name, str(record["question_id"]), record["turns"][0], first_reference, meta=meta)
