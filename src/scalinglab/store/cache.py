"""The cache shared by every sweep on this machine ($SCALINGLAB_CACHE, default ~/.cache/scalinglab):
tokenized corpora, corpus fingerprints, compiled kernels, measured CPU peaks. Entries are built
once, under a lock, and published whole. No JAX."""

from __future__ import annotations

import functools
import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path

from .files import locked, replacing
from .targets import folder


def cache_dir() -> Path:
    """Checked on each use (a few stats), so a cache that is a file or not writable is one line
    before the work that needs it, not a traceback inside it."""
    given = os.environ.get("SCALINGLAB_CACHE")
    path = Path(given or Path.home() / ".cache" / "scalinglab")
    return folder(path, f"SCALINGLAB_CACHE={given}" if given else f"the cache {path} (set SCALINGLAB_CACHE to move it)")


def build_once(done: Path, build: Callable[[Path], None]) -> Path:
    """`done`, a file or folder in the cache, built first if absent: build(tmp) writes tmp, which
    then becomes done (files.replacing), so the entry is complete or absent. Concurrent callers
    (parallel jobs) take a lock: one builds, the rest wait and then use its result; the builder
    removes what a builder killed mid-build left."""
    if not done.exists():
        done.parent.mkdir(parents=True, exist_ok=True)
        with locked(done.with_name(f"{done.name}.lock")):
            if not done.exists():
                for stale in done.parent.glob(f".{done.name}.*"):  # left by a builder that died
                    shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
                with replacing(done) as tmp:
                    build(tmp)
    return done


@functools.cache
def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first CPU's fields in /proc/cpuinfo ('model name', 'flags', ...); on a system without
    it, the model name platform reports. Cache entries built for this CPU are keyed by these."""
    fields: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break  # the end of the first CPU's block
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    fields.setdefault("model name", platform.processor())
    return fields
