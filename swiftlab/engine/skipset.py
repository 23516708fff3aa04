"""SkipSet: which attention and MLP sub-layers the drafter switches off.

A skip set is two sets of 0-based decoder-layer indices. SWIFT never skips the first or the last
layer (the search space is the 2·(L−2) middle sub-layers); early-exit drafting (LayerSkip-style)
does skip the last layers, so it has to say so explicitly with `allow_edges=True`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..support.errors import SwiftlabError
from ..support.storage import atomic_write_json, read_json
from ..support.validate import is_integer


@dataclass(frozen=True)
class SkipSet:
    """The attention and MLP sub-layers to switch off, as sorted tuples of 0-based layer indices, for a model
    of `num_layers` decoder layers; checked on creation (SwiftlabError). `allow_edges` admits the first and last
    layer (early exit) and takes no part in equality. A set that skips nothing is false."""
    attention: tuple[int, ...]
    mlp: tuple[int, ...]
    num_layers: int
    allow_edges: bool = field(default=False, compare=False)

    def __post_init__(self):
        if not is_integer(self.num_layers) or self.num_layers < 1:
            raise SwiftlabError(f"num_layers must be a positive integer, got {self.num_layers!r}")
        object.__setattr__(self, "num_layers", int(self.num_layers))
        for kind in ("attention", "mlp"):
            indices = getattr(self, kind)
            if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
                raise SwiftlabError(f"{kind} must be a list of layer indices, got {indices!r}")
            if any(not is_integer(i) for i in indices):
                raise SwiftlabError(f"{kind} layer indices must be integers, got {list(indices)!r}")
            indices = [int(i) for i in indices]  # numpy integers welcome
            for i in indices:
                if not 0 <= i < self.num_layers:
                    raise SwiftlabError(
                        f"{kind} layer index {i} out of range for a model with {self.num_layers} "
                        f"layers (valid: 0..{self.num_layers - 1})")
                if not self.allow_edges and i in (0, self.num_layers - 1):
                    raise SwiftlabError(
                        f"{kind} layer {i} is the first or last layer, which SWIFT never skips; "
                        "pass allow_edges=True to skip it anyway")
            object.__setattr__(self, kind, tuple(sorted(set(indices))))

    # ----- derived quantities -------------------------------------------------------------
    @property
    def num_skipped(self) -> int:
        return len(self.attention) + len(self.mlp)

    @property
    def search_size(self) -> int:
        """Number of skippable sub-layers: 2·(L−2), the denominator of the skip ratio."""
        return 2 * max(self.num_layers - 2, 0)

    @property
    def ratio(self) -> float:
        return self.num_skipped / self.search_size if self.search_size else 0.0

    def __bool__(self) -> bool:
        return self.num_skipped > 0

    def __str__(self) -> str:
        return (f"SkipSet(r={self.ratio:.2f}, attention={list(self.attention)}, "
                f"mlp={list(self.mlp)}, L={self.num_layers})")

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def none(cls, num_layers: int) -> "SkipSet":
        """The set that skips nothing for a `num_layers`-layer model: its drafter is the full model."""
        return cls((), (), num_layers)

    @classmethod
    def uniform(cls, num_layers: int, ratio: float = 0.5) -> "SkipSet":
        """Middle layers spread evenly, attention and MLP each on their own; ratio 0.5 is the reference's
        "every other layer" (1, 3, 5, ...). An odd count gives attention the extra sub-layer."""
        k = _count_for_ratio(num_layers, ratio)
        middle = list(range(1, num_layers - 1))
        return cls(tuple(_spread(middle, (k + 1) // 2)), tuple(_spread(middle, k // 2)), num_layers)

    @classmethod
    def random(cls, num_layers: int, ratio: float, seed: int | None = None) -> "SkipSet":
        """k = int(2(L−2)·r) sub-layers chosen uniformly at random, as SWIFT's random search does."""
        k = _count_for_ratio(num_layers, ratio)
        coords = random.Random(seed).sample(range(2 * (num_layers - 2)), k)
        return cls.from_coordinates(num_layers, coords)

    @classmethod
    def early_exit(cls, num_layers: int, exit_layer: int) -> "SkipSet":
        """Draft with the first `exit_layer` layers only (skip every later one, last included)."""
        if not is_integer(exit_layer) or not 1 <= exit_layer < num_layers:
            raise SwiftlabError(
                f"exit layer {exit_layer} out of range: the drafter must keep 1..{num_layers - 1} "
                f"of the {num_layers} layers")
        skipped = tuple(range(int(exit_layer), num_layers))
        return cls(skipped, skipped, num_layers, allow_edges=True)

    # The optimizer works on a flat binary vector over the middle sub-layers:
    # coordinate j < L-2 is attention of layer j+1, coordinate j >= L-2 is MLP of layer j-(L-2)+1.
    @classmethod
    def from_coordinates(cls, num_layers: int, coords) -> "SkipSet":
        """A skip set from the indices of the optimizer's vector over the 2·(L−2) middle
        sub-layers: coordinate j < L−2 is layer j+1's attention, j ≥ L−2 layer j−(L−2)+1's MLP (`to_mask`'s layout)."""
        half = num_layers - 2
        attention = [int(c) + 1 for c in coords if int(c) < half]
        mlp = [int(c) - half + 1 for c in coords if int(c) >= half]
        return cls(tuple(attention), tuple(mlp), num_layers)

    def to_mask(self) -> list[int]:
        """The set as the optimizer's 0/1 vector of length 2·(L−2) (`from_coordinates`' layout); the
        first and last layer of an `allow_edges` set have no coordinate and are left out."""
        half = self.num_layers - 2
        mask = [0] * (2 * half)
        for i in self.attention:
            if 1 <= i <= half:
                mask[i - 1] = 1
        for i in self.mlp:
            if 1 <= i <= half:
                mask[half + i - 1] = 1
        return mask

    # ----- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """swiftlab's JSON form: attention, mlp (lists) and num_layers, with allow_edges only where it is set."""
        d = {"attention": list(self.attention), "mlp": list(self.mlp), "num_layers": self.num_layers}
        if self.allow_edges:
            d["allow_edges"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict, num_layers: int | None = None) -> "SkipSet":
        """A skip set from `to_dict`'s form. `num_layers`, where given, is the model's layer count: it
        fills in a missing "num_layers" and must equal a present one. A SwiftlabError for anything malformed."""
        if not isinstance(d, dict) or "attention" not in d or "mlp" not in d:
            raise SwiftlabError("a skip set needs 'attention' and 'mlp' lists of layer indices")
        n = d.get("num_layers", num_layers)
        if n is None:
            raise SwiftlabError("skip set has no 'num_layers'; the model's layer count is needed")
        if not is_integer(n) or n < 1:
            raise SwiftlabError(f"skip set's 'num_layers' must be a positive integer, got {n!r}")
        if num_layers is not None and n != num_layers:
            raise SwiftlabError(f"skip set is for a {n}-layer model, this model has {num_layers} layers")
        if not isinstance(d["attention"], list) or not isinstance(d["mlp"], list):
            raise SwiftlabError("skip set 'attention' and 'mlp' must be lists of layer indices")
        return cls(tuple(d["attention"]), tuple(d["mlp"]), n, bool(d.get("allow_edges", False)))

    def save(self, path: str | os.PathLike) -> None:
        """Write the set to `path` as JSON (`to_dict`), atomically; `SkipSet.load` reads it back."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, num_layers: int | None = None, key: str | None = None) -> "SkipSet":
        """Read a skip set: swiftlab's own format, or one entry of a reference skip_layers.json."""
        data = read_json(path, what="skip set")
        if isinstance(data, dict) and "attention" in data:
            if key is not None:
                raise SwiftlabError(f"{path} holds a single skip set (swiftlab's format), not named entries: "
                                    f"drop #{key}")
            return cls.from_dict(data, num_layers)
        entries = read_reference_entries(data, path)
        if key is None:
            if len(entries) != 1:
                raise SwiftlabError(
                    f"{path} holds {len(entries)} skip sets ({', '.join(sorted(entries))}); "
                    "choose one with FILE#KEY")
            key = next(iter(entries))
        if key not in entries:
            raise SwiftlabError(f"{path} has no skip set {key!r}; it has: {', '.join(sorted(entries))}")
        return cls.from_dict(entries[key], num_layers)


def _spread(items: list[int], n: int) -> list[int]:
    """n of `items`, evenly spaced and centred (gaps differ by at most one; every other item at n = len/2)."""
    if not n:
        return []
    step = len(items) / n
    return [items[int(i * step + (step - 1) / 2 + 1e-9)] for i in range(n)]


def _count_for_ratio(num_layers: int, ratio: float) -> int:
    if not is_integer(num_layers):
        raise SwiftlabError(f"num_layers must be an integer, got {num_layers!r}")
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool):  # numpy floats are floats
        raise SwiftlabError(f"skip ratio must be a number between 0 and 1, got {ratio!r}")
    if num_layers < 3:
        raise SwiftlabError(f"a {num_layers}-layer model has no middle layers to skip")
    if not 0.0 <= ratio <= 1.0:
        raise SwiftlabError(f"skip ratio must be between 0 and 1, got {ratio}")
    return int(2 * (num_layers - 2) * ratio + 1e-9)


# ----- the reference code's skip_layers.json: {"<model>_<task>": {"attention": [...], "mlp": [...]}} ----
def read_reference_entries(data, path="skip_layers.json") -> dict[str, dict]:
    """The entries of a parsed reference skip_layers.json (`data`), returned as they are once
    every value has "attention" and "mlp"; a SwiftlabError naming `path` otherwise. Layer counts are not checked."""
    if not isinstance(data, dict) or not all(
            isinstance(v, dict) and "attention" in v and "mlp" in v for v in data.values()):
        raise SwiftlabError(
            f"{path} is not a skip-set file: expected {{\"attention\": [...], \"mlp\": [...]}} or "
            "{\"<model>_<task>\": {\"attention\": [...], \"mlp\": [...]}}")
    return data


def load_reference_skip_sets(path: str | os.PathLike, num_layers: int) -> dict[str, SkipSet]:
    """All entries of a reference-format skip_layers.json, validated for an L-layer model."""
    entries = read_reference_entries(read_json(path, what="skip_layers.json"), path)
    return {key: SkipSet.from_dict(v, num_layers) for key, v in entries.items()}


def save_reference_skip_sets(path: str | os.PathLike, skip_sets: dict[str, SkipSet]) -> None:
    """Write (merge into) a reference-format skip_layers.json, atomically."""
    path = Path(path)
    existing = read_reference_entries(read_json(path, what="skip_layers.json"), path) if path.exists() else {}
    existing.update({k: {"attention": list(s.attention), "mlp": list(s.mlp)} for k, s in skip_sets.items()})
    atomic_write_json(path, existing)
