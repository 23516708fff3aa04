"""What every task is made of: `Example`s, and splits that never overlap (catalog.py names the tasks).

A task is anything that yields `Example`s for a split. The four built-in tasks are seeded
generators shaped like the paper's analysis tasks (summarization ~ CNN/DailyMail, reasoning ~
GSM8K, story ~ TinyStories, code ~ HumanEval); real datasets (tasks/datasets.py) read local files
or the `datasets` library.

Splits never overlap: a generated example belongs to the held-out split when a hash of its
content says so, so the same content can never appear in both splits, whatever the seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field
from typing import Iterator, Protocol

from ..support.errors import SwiftlabError

SPLITS = ("train", "heldout")
HELDOUT_SHARE = 0.2


@dataclass(frozen=True)
class Example:
    """One prompt of a task and what a perfect model would write after it: `prompt` + `reference` reads as
    the whole text. `id` is stable across runs; `answer` and `facts` are what analysis.quality scores (where
    the task has them), `meta` anything else a task records (its source, index, ...)."""
    task: str
    id: str  # stable across runs: a content hash or the dataset's own id
    prompt: str  # everything the model is given, few-shot demonstrations included
    reference: str  # what a perfect model would continue with
    answer: str | None = None  # reasoning: the final number, as a string
    facts: tuple[str, ...] = ()  # summarization: the facts a summary should recall
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The example as a JSON-ready dict of its fields (`facts` as a list, `meta` copied)."""
        d = asdict(self)
        d["facts"] = list(self.facts)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Example":
        """The example a `to_dict` dict describes (`facts` back to a tuple, empty where absent); a missing or
        unknown field is a TypeError."""
        return cls(**{**d, "facts": tuple(d.get("facts", ()))})


class Task(Protocol):
    """What every task is: a `name`, a one-line `description`, and `examples` for a split."""

    name: str
    description: str

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """Up to `n` examples of `split` ("train" or "heldout"), the same ones for the same `seed`; fewer
        where the task has fewer. The built-in tasks raise SwiftlabError for an unknown split."""
        ...


def content_id(*parts: str) -> str:
    """A stable id for some content: the first 16 hex digits of the SHA-256 of `parts` joined by "\\x1f"
    (so ("ab", "c") and ("a", "bc") get different ids)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def split_of(key: str) -> str:
    """Deterministic split membership from content: ~20% held out."""
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if bucket < HELDOUT_SHARE else "train"


def check_split(split: str) -> None:
    """Raise a SwiftlabError unless `split` is one of `SPLITS` ("train", "heldout")."""
    if split not in SPLITS:
        raise SwiftlabError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def take_split(candidates: Iterator[tuple[str, Example]], split: str, n: int, task: str,
               max_tries: int = 200_000) -> list[Example]:
    """The first n distinct candidates (key, example) whose key hashes into `split`."""
    check_split(split)
    if n < 0:
        raise SwiftlabError(f"number of examples must be >= 0, got {n}")
    chosen, seen = [], set()
    for tries, (key, example) in enumerate(candidates):
        if len(chosen) == n:
            break
        if tries >= max_tries:
            raise SwiftlabError(f"task {task!r} could only produce {len(chosen)} distinct {split} examples")
        if key in seen or split_of(key) != split:
            continue
        seen.add(key)
        chosen.append(example)
    return chosen


def rng_stream(task: str, seed: int) -> random.Random:
    """A `random.Random` seeded with "<task>:<seed>": the same stream for a task and seed in every run and
    process, and a different one for each task."""
    return random.Random(f"{task}:{seed}")
