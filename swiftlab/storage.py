"""Files that are never left half-written, never lose a concurrent writer's entry, and keep what
they were: atomic replaces (same mode, through symlinks), locked read-modify-writes, appends that
start on a fresh line, and destinations checked before the work that fills them."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from pathlib import Path

from .errors import SwiftlabError


def atomic_write_json(path: str | os.PathLike, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file in the target's folder, fsync, then rename over the target.

    A symlink is written through (its target is replaced, the link stays), and an existing file
    keeps its mode; a new file gets the mode a plain open() would give it (0666 less the umask),
    not mkstemp's 0600."""
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise SwiftlabError(f"cannot write {path}: it is a folder")
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def locked(path: str | os.PathLike):
    """Hold an exclusive lock on `<path>.lock` (beside the real file, through symlinks) for a
    read-modify-write, so concurrent processes take turns instead of losing each other's changes.
    The lock file is left in place: removing it would let two writers lock different files."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(target.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise SwiftlabError(f"cannot lock {target}: {e.strerror} ({lock_path})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line; if the file ends mid-line (an earlier writer was killed), start a fresh line
    so the new record is not glued onto the broken one."""
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        prefix = b""
        if f.tell():
            f.seek(-1, os.SEEK_END)
            prefix = b"" if f.read(1) == b"\n" else b"\n"
        f.write(prefix + line.rstrip("\n").encode("utf-8") + b"\n")
        f.flush()


def check_writable(path: str | os.PathLike, what: str = "output file", must_exist_folder: bool = True) -> Path:
    """Fail now, with a reason, if `path` cannot be written as a file: before the work that fills it.
    It tries for real (os.access says yes to root even on files nobody can write), changing nothing."""
    path = Path(os.path.realpath(path))
    if path.is_dir():
        raise SwiftlabError(f"{what} {path} is a folder; give a file name")
    folder = path.parent
    if not folder.exists():
        if must_exist_folder:
            raise SwiftlabError(f"{what} {path}: folder {folder} does not exist")
        folder = next(p for p in folder.parents if p.exists())  # it will be created: check the nearest ancestor
    if not folder.is_dir():
        raise SwiftlabError(f"{what} {path}: {folder} is not a folder")
    try:
        if path.exists():
            open(path, "ab").close()  # appends nothing, truncates nothing
        else:
            tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        where = path if path.exists() else f"folder {folder}"
        raise SwiftlabError(f"{what} {path}: cannot write {where} ({e.strerror})") from None
    return path


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """A file's UTF-8 text, or a one-line error that says what is wrong with it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SwiftlabError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise SwiftlabError(f"{what} {path} is a folder, not a file") from None
    except UnicodeDecodeError as e:
        raise SwiftlabError(f"{what} {path} is not UTF-8 text (byte {e.start}); is it the right file?") from None
    except OSError as e:
        raise SwiftlabError(f"cannot read {what} {path}: {e.strerror}") from None


def read_json(path: str | os.PathLike, what: str = "file"):
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SwiftlabError(f"corrupt {what} {path}: invalid JSON at line {e.lineno} ({e.msg})") from None
