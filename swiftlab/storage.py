"""Atomic JSON files: a crash mid-write never leaves a half-written config or result behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import SwiftlabError


def atomic_write_json(path: str | os.PathLike, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike, what: str = "file"):
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SwiftlabError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise SwiftlabError(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SwiftlabError(f"corrupt {what} {path}: invalid JSON at line {e.lineno} ({e.msg})") from None
