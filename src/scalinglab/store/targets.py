"""Where a command will write, checked before it does any work, so a bad path costs nothing and
leaves nothing behind: a file's folder exists and is writable and the file is not a folder (nor a
FIFO or device), an existing file is replaced only when the user asked (--force); a folder is a
folder, or can be created under a writable one. No JAX."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .files import kind


class Unwritable(ValueError):
    """A path the user gave (or the environment names) that the command cannot write; the message
    is one line naming it and what to do."""


def _nearest(path: Path) -> Path:
    """path, or its nearest ancestor that exists (lstat: a dangling symlink exists)."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _writable_folder(folder: Path, name: str, fix: str = "give another path") -> None:
    if not folder.is_dir():
        raise Unwritable(f"{name}: {folder} is not a folder; {fix}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Unwritable(f"{name}: cannot write in {folder}; give a folder you may write to")


def new_file(path: str | os.PathLike[str], name: str, force: bool = False, fix: str = "give another name") -> Path:
    """A file the command will write. name: what the user wrote, e.g. '--csv out.csv'; fix: what
    to do when the path cannot be written."""
    path = Path(path)
    parent = Path(os.path.abspath(path)).parent
    if not os.path.lexists(parent):
        raise Unwritable(f"{name}: no folder {parent}; create it first")
    _writable_folder(parent, name, fix)
    if not os.path.lexists(path):
        return path
    mode = os.stat(path).st_mode if path.exists() else os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise Unwritable(f"{name}: {kind(mode)}, where a file goes; {fix}")
    if not force:
        raise Unwritable(f"{name}: exists; add --force to replace it, or give another name")
    return path


def folder(path: str | os.PathLike[str], name: str, fix: str = "give another path") -> Path:
    """A folder the command will write in, created (with its parents) if absent. fix: what to do
    when it cannot be (a path scalinglab chose itself cannot be given another)."""
    path = Path(path)
    _writable_folder(_nearest(path), name, fix)
    return path
