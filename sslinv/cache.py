"""The only writer into the cache: temp file + atomic rename, file locks, JSON sidecars.

Adapted from the way huggingface_hub manages its cache: a file appears under its final
name only when complete, and a lock is taken only to avoid computing the same entry
twice (two batch jobs asking for the same statistics: the second waits, then reuses).
Each entry's name is a hash of the inputs it was computed from, and a JSON sidecar
records those inputs, so a changed input is a miss and a stale entry is never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def key_hash(key: dict[str, Any], length: int = 16) -> str:
    """A short stable hash of a JSON-able dict of inputs."""
    return hashlib.sha256(canonical_json(key).encode()).hexdigest()[:length]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stat_fingerprint(files: Iterable[str | Path], extra: bytes = b"", root: Path | None = None) -> str:
    """A short hash of each file's name, size and modification time (+ ``extra``): what a
    dataset's cached features depend on, without reading the files.

    With ``root``, ``files`` are paths relative to it and are named as given; without,
    each file is named ``<folder>/<name>`` (its parent folder and its name).
    """
    h = hashlib.sha256()
    for f in files:
        path = Path(root) / f if root is not None else Path(f)
        name = str(f) if root is not None else f"{path.parent.name}/{path.name}"
        st = os.stat(path)
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(extra)
    return h.hexdigest()[:16]


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path beside ``final``; rename it to ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temp folder beside ``final``; rename it to ``final`` only on success."""
    import shutil

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_dir(final: Path, build: Callable[[Path], None]) -> Path:
    """The folder ``final``, made on first use: ``build(tmp)`` fills a temp folder that is
    renamed into place only when complete, so its existence means it is whole. The lock
    only saves work: a second process asking at the same time waits, re-checks, and
    reuses the first one's folder (``build`` is not called then)."""
    final = Path(final)
    if final.is_dir():
        return final
    with lock(final):
        if not final.is_dir():
            with atomic_dir(final) as tmp:
                build(tmp)
    return final


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def lock(path: Path, timeout: float = -1):
    """A file lock guarding ``path`` (the lock file sits beside it)."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=timeout)


def sidecar(path: Path) -> Path:
    return Path(str(path) + ".json")


def is_fresh(path: Path, key: dict[str, Any]) -> bool:
    """True when ``path`` exists and its sidecar records exactly ``key``."""
    side = sidecar(path)
    if not (path.exists() and side.exists()):
        return False
    try:
        recorded = read_json(side).get("key")
    except (OSError, ValueError):
        return False
    return canonical_json(recorded) == canonical_json(key)


def cached(
    path: Path,
    key: dict[str, Any],
    compute: Callable[[], T],
    save: Callable[[T, Path], None],
    load: Callable[[Path], T],
    extra: Callable[[T], dict[str, Any]] | None = None,
    world=None,
) -> tuple[T, bool]:
    """Load the entry at ``path`` if its sidecar matches ``key``; else compute and store it.

    Returns ``(value, hit)``. The lock is held while computing, so a concurrent job
    with the same key waits and then loads instead of computing again. ``extra(value)``
    adds fields to the sidecar. Under torchrun (``world``: a ``sslinv.distributed.World``)
    every rank calls this: all ranks compute (each its shard, inside ``compute``), rank 0
    alone locks and writes, and all ranks agree on hit or miss.
    """
    from sslinv.distributed import World, broadcast_object

    world = world or World()

    def fresh() -> bool:
        return bool(broadcast_object(world, is_fresh(path, key) if world.is_main else False))

    if fresh():
        return load(path), True
    with lock(path) if world.is_main else contextlib.nullcontext():
        if fresh():  # another job finished it while we waited
            return load(path), True
        value = compute()
        if world.is_main:
            with atomic_path(path) as tmp:
                save(value, tmp)
            write_json(sidecar(path), {"key": key, **(extra(value) if extra else {})})
        return value, False
