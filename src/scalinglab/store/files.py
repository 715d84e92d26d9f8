"""Files that several processes read and write: one atomic-replace scheme for files and folders,
flock locks, JSON records that may be damaged. No JAX."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, overload


class DamagedResults(UserWarning):
    """A results file that cannot be read as written. Readers report it and go on with the rest."""


def report_damage(path: Path, what: str) -> None:
    warnings.warn(f"{path}: {what}", DamagedResults, stacklevel=3)


def is_in_progress(name: str, of: str) -> bool:
    """Whether a file name is replacing() at work on the file `of` (or NFS's trace of a deleted file)."""
    return name.startswith((f".{of}.", ".nfs"))


@contextlib.contextmanager
def replacing(path: Path):
    """A temporary path beside `path` for the caller to write, a file or a folder; when the block
    ends without an error it is renamed to `path`, so readers see the old version or the new one,
    never a part of one; on an error it is removed. The name is unique to this host and process."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


class NotARegularFile(ValueError):
    """A results path that scalinglab does not open: a folder, FIFO, socket or device where a file
    belongs (a FIFO would block the reader forever), or a symlink out of the sweep's folder."""


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def kind(mode: int) -> str:
    """What a path that is not a regular file is, in words (from its stat mode)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def write_text(path: Path, text: str) -> None:
    """Replaces the file atomically, its contents on disk (fsync) before the rename. A folder, FIFO
    or device where the file belongs is left as it is: NotARegularFile, naming it."""
    with contextlib.suppress(FileNotFoundError):
        mode = os.lstat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):  # a symlink is replaced, never followed
            raise NotARegularFile(f"{path}: {kind(mode)} where scalinglab writes a file; move it away and run again")
    with replacing(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: Path, obj: dict) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_bytes(path: Path, within: Path) -> bytes | None:
    """A results file's bytes, None if there is none. Only a regular file is opened, and through
    symlinks only where they stay inside the folder `within` (the sweep's); anything else raises
    NotARegularFile. Opened non-blocking and checked again once open, so a FIFO put in its place
    meanwhile cannot block the read."""
    path = Path(path)
    try:
        os.lstat(path)  # a dangling symlink exists; no file at all is None
    except (FileNotFoundError, NotADirectoryError):
        return None
    # Any symlink on the way counts, the file's own or a folder's (figures/ -> /etc).
    if not path.resolve().is_relative_to(Path(within).resolve()):
        raise NotARegularFile(f"a symlink out of {within} (to {path.resolve()}); not read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotARegularFile("a symlink to nothing") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotARegularFile(f"{kind(mode)}, not a file")
    with os.fdopen(fd, "rb") as f:
        return f.read()


def read_record(path: Path, within: Path, check: Callable[[object], str | None]) -> tuple[dict | None, str | None]:
    """A JSON object file that `check` accepts (a records.Record's check): (the object, None),
    (None, None) if there is no such file, or (None, what is wrong with it)."""
    try:
        data = read_bytes(path, within)
        if data is None:
            return None, None
        obj = json.loads(data)
    except NotARegularFile as e:
        return None, str(e)
    except ValueError as e:  # not JSON, or not UTF-8
        return None, f"not JSON ({e})"
    problem = check(obj)
    return (obj, None) if problem is None and isinstance(obj, dict) else (None, problem or "not a JSON object")


@overload
def _flock(path: Path, wait: Literal[True]) -> int: ...
@overload
def _flock(path: Path, wait: Literal[False]) -> int | None: ...
def _flock(path: Path, wait: bool) -> int | None:
    """An exclusive flock on a folder or a lock file (created if absent): the descriptor that holds
    it, or None when it is taken and not `wait`. The kernel releases it when the descriptor is
    closed or its process dies, even by kill -9."""
    flags = os.O_RDONLY | os.O_DIRECTORY if Path(path).is_dir() else os.O_WRONLY | os.O_CREAT
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def try_lock(path: Path) -> int | None:
    """Takes the lock if it is free: the descriptor to close to release it, or None."""
    return _flock(path, wait=False)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Holds the lock for the block, waiting for any other holder."""
    fd = _flock(path, wait=True)
    try:
        yield
    finally:
        os.close(fd)
