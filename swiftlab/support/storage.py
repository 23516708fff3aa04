"""Files that are never left half-written, never lose a concurrent writer's entry, and keep what
they were: atomic replaces (same mode, through symlinks), locked read-modify-writes, appends that
start on a fresh line, and destinations checked before the work that fills them."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import SwiftlabError


def atomic_write_json(path: str | os.PathLike, data) -> None:
    """Write `data` as indented JSON with a final newline through `atomic_write_text`: the file is
    whole or unchanged."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def human_size(n: float) -> str:
    """A byte count in words for messages: "512 bytes", "1.5 KiB", and so on up to GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def free_space(path: str | os.PathLike) -> str:
    """The free space where `path` is (or would be) written, in words."""
    folder = Path(path)
    if not folder.is_dir():
        folder = folder.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return f"{human_size(shutil.disk_usage(folder).free)} free in {folder}"
    except OSError:
        return f"free space in {folder} unknown"


def write_failure(error: OSError, path: str | os.PathLike, what: str = "file") -> SwiftlabError:
    """One line for a write that failed: a full disk says how much room there was."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return SwiftlabError(f"cannot write {what} {path}: no space left on the device ({free_space(path)}); "
                             "what was there before is unchanged")
    return SwiftlabError(f"cannot write {what} {path}: {error.strerror or error}")


def make_folder(folder: str | os.PathLike, what: str = "folder") -> Path:
    """mkdir -p, or a one-line error saying which folder could not be made and why."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SwiftlabError(f"cannot create {what} {folder}: a file of that name is in the way") from None
    except OSError as e:
        raise SwiftlabError(f"cannot create {what} {folder}: {e.strerror or e}") from None
    return folder


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file in the target's folder, fsync, then rename over the target.

    A symlink is written through (its target is replaced, the link stays), and an existing file
    keeps its mode; a new file gets the mode a plain open() would give it (0666 less the umask),
    not mkstemp's 0600."""
    path = Path(os.path.realpath(path))
    make_folder(path.parent)
    if path.is_dir():
        raise SwiftlabError(f"cannot write {path}: it is a folder")
    mode = _mode_for(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_failure(e, path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # a full disk, mostly: the old file is untouched, the temporary one removed
        Path(tmp).unlink(missing_ok=True)
        raise write_failure(e, path) from None
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
    make_folder(target.parent)
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
    so the new record is not glued onto the broken one. A write that fails (a full disk) is cut back
    off, so the lines already there stay whole."""
    try:
        f = open(path, "a+b", buffering=0)  # unbuffered: a failed write leaves nothing pending for close()
    except OSError as e:
        raise write_failure(e, path) from None
    with f:
        f.seek(0, os.SEEK_END)
        size, prefix = f.tell(), b""
        if size:
            f.seek(-1, os.SEEK_END)
            prefix = b"" if f.read(1) == b"\n" else b"\n"
        data = prefix + line.rstrip("\n").encode("utf-8") + b"\n"
        try:
            while data:  # a raw write may take part of it
                data = data[f.write(data):]
        except OSError as e:
            with contextlib.suppress(OSError):
                f.truncate(size)
            raise write_failure(e, path) from None


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
    """A JSON file's parsed content, or a one-line SwiftlabError naming `what` for a file that is missing,
    unreadable or corrupt."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SwiftlabError(f"corrupt {what} {path}: invalid JSON at line {e.lineno} ({e.msg})") from None
    except RecursionError:  # e.g. 100k nested brackets: no file swiftlab writes nests more than a few levels
        raise SwiftlabError(f"corrupt {what} {path}: JSON nested too deeply to be one of swiftlab's files") from None
