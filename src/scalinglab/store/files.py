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
import warnings
from collections.abc import Iterator
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


def write_text(path: Path, text: str) -> None:
    """Replaces the file atomically, its contents on disk (fsync) before the rename."""
    with replacing(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_json(path: Path, obj: dict) -> None:
    write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_json(path: Path) -> dict | None:
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def read_record(path: Path, keys: set[str]) -> tuple[dict | None, str | None]:
    """A JSON object file that must hold `keys`: (the object, None), (None, None) if there is no
    such file, or (None, what is wrong with it)."""
    try:
        obj = read_json(path)
    except ValueError as e:  # not JSON, or not UTF-8
        return None, f"not JSON ({e})"
    if obj is None or (isinstance(obj, dict) and keys <= obj.keys()):
        return obj, None
    missing = sorted(keys - obj.keys()) if isinstance(obj, dict) else None
    return None, f"no {', '.join(missing)} in it" if missing else "not a JSON object"


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
