"""Found skip sets, kept by model and task so a later stream can skip the search.

The file is the reference code's skip_layers.json, {"<model>_<task>": {"attention": [...],
"mlp": [...]}}, with extra keys per entry (num_layers, matchness, ...) that the reference ignores.
So a store can be handed to the reference code, and the reference's file can be used as a store.
Writes are atomic; a corrupt file is reported, never silently replaced.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from .skipset import SkipSet, read_reference_entries
from .storage import atomic_write_json, read_json


def default_store_path() -> Path:
    return Path(os.environ.get("SWIFTLAB_STORE", Path.home() / ".cache" / "swiftlab" / "skip_layers.json"))


def model_key(name_or_path: str) -> str:
    """'meta-llama/Llama-2-13b-hf' -> 'Llama-2-13b-hf'; a local folder -> its name."""
    name = str(name_or_path).rstrip("/\\")
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name.replace("\\", "/").split("/")[-1]) or "model"


class SkipSetStore:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_store_path()

    def entries(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        return read_reference_entries(read_json(self.path, what="skip-set store"), self.path)

    def get(self, model: str, task: str, num_layers: int) -> SkipSet | None:
        entry = self.entries().get(f"{model_key(model)}_{task}")
        if entry is None:
            return None
        return SkipSet.from_dict({"attention": entry["attention"], "mlp": entry["mlp"]}, num_layers)

    def put(self, model: str, task: str, skip_set: SkipSet, **meta) -> str:
        entries = self.entries()
        key = f"{model_key(model)}_{task}"
        entries[key] = {"attention": list(skip_set.attention), "mlp": list(skip_set.mlp),
                        "num_layers": skip_set.num_layers, "ratio": round(skip_set.ratio, 4),
                        "saved": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta}
        atomic_write_json(self.path, entries)
        return key
