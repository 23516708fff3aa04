"""Found skip sets, kept by model and task so a later stream can skip the search.

The file is the reference code's skip_layers.json, {"<model>_<task>": {"attention": [...],
"mlp": [...]}}, with extra keys per entry (num_layers, matchness, ...) that the reference ignores.
So a store can be handed to the reference code, and the reference's file can be used as a store.
Writes are atomic and locked (concurrent optimize runs keep every entry); a corrupt file is
reported, never silently replaced; a searched entry is only replaced by a better-scored one
unless the caller asks otherwise.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..support.errors import SwiftlabError
from ..engine.skipset import SkipSet, read_reference_entries
from ..support.storage import atomic_write_json, check_writable, locked, read_json


def default_store_path() -> Path:
    """$SWIFTLAB_STORE, else $SWIFTLAB_HOME/skip_layers.json, else ~/.cache/swiftlab/skip_layers.json."""
    from ..support.settings import store_path

    return store_path()


def model_key(name_or_path: str) -> str:
    """'meta-llama/Llama-2-13b-hf' -> 'Llama-2-13b-hf'; a local folder -> its name."""
    name = str(name_or_path).rstrip("/\\")
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name.replace("\\", "/").split("/")[-1]) or "model"


class SkipSetStore:
    """Skip sets kept in one JSON file by model and task (the reference's skip_layers.json, see the module
    docstring); `path` defaults to `default_store_path()`. Nothing is read or written until a method asks."""
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_store_path()

    def entries(self) -> dict[str, dict]:
        """Every stored entry by key ("<model>_<task>"), as dicts; empty where the file does not exist.
        Raises SwiftlabError where the file cannot be read or is not a store."""
        if not self.path.exists():
            return {}
        return read_reference_entries(read_json(self.path, what="skip-set store"), self.path)

    def check(self) -> None:
        """Fail now if this store cannot be read or written: before a search whose result it is to keep."""
        self.entries()
        check_writable(self.path, "skip-set store", must_exist_folder=False)

    @staticmethod
    def key(model: str, task: str) -> str:
        """The entry key of a model and task: "<model_key(model)>_<task>", as the reference names them."""
        return f"{model_key(model)}_{task}"

    def get(self, model: str, task: str, num_layers: int) -> SkipSet | None:
        """The set stored for this model and task, checked against `num_layers` (and the entry's own layer count
        where it recorded one), or None where none is stored. Raises SwiftlabError where the entry does not fit."""
        entry = self.entries().get(self.key(model, task))
        if entry is None:
            return None
        # the entry's own layer count, where it recorded one: a 16-layer set must not land on a 5-layer model
        recorded = {"num_layers": entry["num_layers"]} if "num_layers" in entry else {}
        try:
            return SkipSet.from_dict({"attention": entry["attention"], "mlp": entry["mlp"], **recorded}, num_layers)
        except SwiftlabError as e:
            raise SwiftlabError(f"stored skip set {model_key(model)}_{task} in {self.path}: {e}") from None

    def for_model(self, model: str, num_layers: int) -> list["StoredEntry"]:
        """Every entry stored for this model, whatever its task: the usable ones best first (by their stored
        expected speedup, then matchness; entries without them last), then those that cannot be used on a
        `num_layers`-layer model, each with why. Other models' entries are never among them (a model key has
        no '_', so "<model>_" starts only this model's keys)."""
        prefix = f"{model_key(model)}_"
        found = []
        for key, entry in self.entries().items():
            if not key.startswith(prefix):
                continue
            recorded = {"num_layers": entry["num_layers"]} if "num_layers" in entry else {}
            try:
                skip_set = SkipSet.from_dict({"attention": entry["attention"], "mlp": entry["mlp"], **recorded},
                                             num_layers)
                found.append(StoredEntry(key, key[len(prefix):], entry, skip_set))
            except SwiftlabError as e:
                found.append(StoredEntry(key, key[len(prefix):], entry, None, str(e)))
        return sorted(found, key=StoredEntry.rank)

    def put(self, model: str, task: str, skip_set: SkipSet, **meta) -> str:
        """Store (or replace) the entry for this model and task; returns its key."""
        with locked(self.path):  # read-modify-write: a concurrent put would otherwise be lost
            entries = self.entries()
            key = f"{model_key(model)}_{task}"
            entries[key] = self._entry(skip_set, meta)
            atomic_write_json(self.path, entries)
        return key

    def put_if_better(self, model: str, task: str, skip_set: SkipSet, matchness: float, *, replace: bool = False,
                      **meta) -> tuple[str, str | None]:
        """Store a searched set unless the stored entry for this model and task scored at least as well
        (or cannot be compared); `replace=True` stores it regardless. Returns (key, why it was not stored)."""
        with locked(self.path):
            entries = self.entries()
            key = f"{model_key(model)}_{task}"
            why_not = None if replace else _why_keep(entries.get(key), skip_set, matchness)
            if why_not is None:
                entries[key] = self._entry(skip_set, {"matchness": matchness, **meta})
                atomic_write_json(self.path, entries)
        return key, why_not

    @staticmethod
    def _entry(skip_set: SkipSet, meta: dict) -> dict:
        return {"attention": list(skip_set.attention), "mlp": list(skip_set.mlp), "num_layers": skip_set.num_layers,
                "ratio": round(skip_set.ratio, 4), "saved": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta}


def _why_keep(stored: dict | None, skip_set: SkipSet, matchness: float) -> str | None:
    """Why a stored entry stays (a reason to print), or None when the new set may replace it."""
    if stored is None:
        return None
    score = stored.get("matchness")
    if stored.get("num_layers", skip_set.num_layers) != skip_set.num_layers:
        return f"the stored entry is for a {stored['num_layers']}-layer model, this set for {skip_set.num_layers} layers"
    if not isinstance(score, (int, float)) or isinstance(score, bool):
        return "the stored entry has no matchness score to compare with"
    if matchness <= score:
        return f"the stored entry scored matchness {score:.3f}, this search {matchness:.3f}"
    return None


@dataclass
class StoredEntry:
    """One stored entry of a model (SkipSetStore.for_model): its set, or why it cannot be used."""

    key: str
    task: str
    entry: dict
    skip_set: SkipSet | None
    unusable: str | None = None

    @property
    def verdict(self) -> str | None:
        return self.entry.get("verdict")

    @property
    def expected_speedup(self) -> float | None:
        return _number(self.entry.get("expected_speedup"))

    def rank(self) -> tuple:
        """Sort key, best first: usable, then the highest expected speedup, then the highest matchness."""
        speedup, matchness = self.expected_speedup, _number(self.entry.get("matchness"))
        return (self.skip_set is None, -speedup if speedup is not None else float("inf"),
                -matchness if matchness is not None else float("inf"))


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
