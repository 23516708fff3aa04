"""Checks at the boundary: a value of the wrong type or out of range becomes one clear SwiftlabError
here, not a TypeError from deep inside torch or a silently truncated float later.

Integers: Python or numpy integers (any numbers.Integral), never bool and never a float, even a
whole one (403.0 as a token id is a bug upstream). Numbers: any real number that is finite.
"""

from __future__ import annotations

import math
import numbers

from .errors import SwiftlabError


def is_integer(value) -> bool:
    """True for a Python or numpy integer (numbers.Integral); False for a bool, a float (even 3.0) and
    anything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(name: str, value, minimum: int | None = None) -> int:
    """`value` as a Python int, at least `minimum`."""
    if not is_integer(value):
        raise SwiftlabError(f"{name} must be an integer, got {_show(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise SwiftlabError(f"{name} must be >= {minimum}, got {value}")
    return value


def optional_integer(name: str, value, minimum: int | None = None) -> int | None:
    """None stays None; any other value must pass `integer` (a Python int, at least `minimum`)."""
    return None if value is None else integer(name, value, minimum)


def number(name: str, value, low: float | None = None, high: float | None = None, *, low_open: bool = False) -> float:
    """`value` as a finite float in [low, high] (or (low, high] with low_open)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise SwiftlabError(f"{name} must be a number, got {_show(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise SwiftlabError(f"{name} must be a finite number, got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        left = "(" if low_open else "["
        raise SwiftlabError(f"{name} must be in {left}{_fmt(low, '-inf')}, {_fmt(high, 'inf')}], got {value}")
    return value


def token_ids(value) -> list[int]:
    """A prompt's token ids: a flat sequence (list, tuple, 1-D or [1, n] array or tensor) of integers."""
    import torch

    if isinstance(value, (str, bytes)):
        raise SwiftlabError("input_ids must be token ids, got a string: encode the prompt with the tokenizer first")
    if isinstance(value, torch.Tensor) or hasattr(value, "__array__"):
        tensor = torch.as_tensor(value)
        if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
            raise SwiftlabError(f"input_ids must be integer token ids, got a {tensor.dtype} array")
        return _rows_to_ids(tensor.tolist())
    try:
        items = list(value)
    except TypeError:
        raise SwiftlabError(f"input_ids must be a list of token ids, got {_show(value)}") from None
    return _rows_to_ids(items)


def _rows_to_ids(items: list) -> list[int]:
    if items and all(isinstance(row, (list, tuple)) for row in items):  # a batch: one row is fine
        if len(items) != 1:
            lengths = sorted({len(row) for row in items})
            ragged = f" (ragged rows of lengths {', '.join(map(str, lengths))})" if len(lengths) > 1 else ""
            raise SwiftlabError(f"batch size {len(items)}{ragged} is not supported: swiftlab decodes one sequence "
                                "at a time (batch size 1); loop over your prompts")
        items = list(items[0])
    bad = [x for x in items if not is_integer(x)]
    if bad:
        bad = bad[0]
        raise SwiftlabError(f"input_ids must be integer token ids, got {_show(bad)}")
    return [int(x) for x in items]


def device(name) -> str | None:
    """A torch device string that exists here, or None."""
    if name is None:
        return None
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise SwiftlabError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SwiftlabError(f"device {name!r}: CUDA is not available on this machine (torch "
                                f"{torch.__version__}, {'no CUDA build' if torch.version.cuda is None else 'no GPU'})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SwiftlabError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise SwiftlabError(f"device {name!r}: MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise SwiftlabError(f"device {name!r}: swiftlab runs on cpu, cuda or mps")
    return str(name)


def _show(value) -> str:
    text = repr(value)
    return f"{text[:60]}..." if len(text) > 60 else f"{text} ({type(value).__name__})"


def _fmt(bound, unbounded: str) -> str:
    return unbounded if bound is None else f"{bound:g}"


_SIMPLE_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict}


def field_type_errors(record) -> list[str]:
    """Top-level fields of a dataclass record read from JSON whose value is not of the declared simple
    type (str, int, float, bool, list[...], dict): a record that parsed but would break its reader later."""
    from dataclasses import fields

    problems = []
    for f in fields(record):
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        wanted = _SIMPLE_TYPES.get(annotation.split("[")[0].strip())
        value = getattr(record, f.name)
        if wanted is None or (value is None and "None" in annotation):
            continue
        if not isinstance(value, wanted) or (wanted is not bool and isinstance(value, bool)):
            problems.append(f"{f.name} should be {annotation}, got {_show(value)}")
    return problems
