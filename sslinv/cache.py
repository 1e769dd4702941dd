"""The only writer into the cache: temp file + atomic rename, file locks, JSON sidecars.

Adapted from the way huggingface_hub manages its cache: a file appears under its final
name only when complete, and a lock is taken only to avoid computing the same entry
twice (two batch jobs asking for the same statistics: the second waits, then reuses).
Each entry's name is a hash of the inputs it was computed from, and a JSON sidecar
records those inputs, so a changed input is a miss and a stale entry is never trusted.

Files and folders renamed into place get the mode a plain ``open(..., "w")`` or
``mkdir`` would give them (0666 / 0777 less the umask), so a cache shared by a lab stays
readable to the group. An entry that cannot be read back (a truncated or garbage file) is
a miss: it is moved aside to ``<name>.corrupt``, a warning names it, and it is computed
again. Temporary files and folders left by a killed writer are removed the next time the
same entry is written (under its lock, so never one that is still being written).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: True inside ``refreshing()``: every ``cached`` entry is recomputed and overwritten.
_REFRESH: contextvars.ContextVar[bool] = contextvars.ContextVar("sslinv_cache_refresh", default=False)


class CacheWarning(UserWarning):
    """A cache entry that could not be read and is being recomputed."""


@contextlib.contextmanager
def refreshing(on: bool = True) -> Iterator[None]:
    """Within this block ``cached`` ignores what is stored and computes every entry again
    (``--refresh-cache``: statistics and features are recomputed with the results)."""
    token = _REFRESH.set(bool(on))
    try:
        yield
    finally:
        _REFRESH.reset(token)


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, folder: bool = False) -> None:
    """Give a temp file (0600 from mkstemp) or folder (0700 from mkdtemp) the mode a
    normal write would have given it, before it is renamed into place."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _temp_name(final: Path) -> re.Pattern[str]:
    # mkstemp / mkdtemp names: ".<name>.<8 random characters>.tmp"
    return re.compile(rf"\.{re.escape(final.name)}\.[A-Za-z0-9_]{{8}}\.tmp")


def remove_stale_temps(final: Path) -> list[Path]:
    """Remove the temp files/folders of ``final`` left by writers that died (SIGKILL, a
    node lost). Call it only while holding ``lock(final)``: a live writer of ``final``
    holds that lock, so every temp found then is stale. Returns what was removed."""
    final = Path(final)
    pattern = _temp_name(final)
    removed = []
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if pattern.fullmatch(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def key_hash(key: dict[str, Any], length: int = 16) -> str:
    """A short stable hash of a JSON-able dict of inputs."""
    return hashlib.sha256(canonical_json(key).encode()).hexdigest()[:length]


def sha256_arrays(*arrays: Any) -> str:
    """A short sha256 of arrays' dtypes, shapes and bytes (None entries count as such):
    the content part of a result key, e.g. a split's labels, whose file fingerprints say
    nothing about what a loader read from them."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


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
        _publish_mode(tmp_path)
        os.replace(tmp_path, final)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temp folder beside ``final``; rename it to ``final`` only on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        _publish_mode(tmp, folder=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def require_writable(folder: Path, option: str = "--cache-dir", what: str = "cache folder") -> Path:
    """Check, before any work starts, that ``folder`` is (or can be made) a folder this
    process can write in; raise ``NotWritableError`` naming the path and ``option``."""
    from sslinv.errors import NotWritableError

    folder = Path(folder).expanduser()
    fix = f"Pass {option} a writable folder."

    def fail(reason: str) -> NotWritableError:
        return NotWritableError(f"Cannot write to the {what} {folder}: {reason}. {fix}")

    for parent in (folder, *folder.parents):
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                where = "it is" if parent == folder else f"{parent} is"
                raise fail(f"{where} a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".sslinv-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise fail(e.strerror or str(e)) from None
    return folder


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
            remove_stale_temps(final)  # a partial folder of a killed run
            with atomic_dir(final) as tmp:
                build(tmp)
    return final


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (an infinite condition number, say) as None:
    JSON has no Infinity or NaN, and strict parsers (JavaScript's, Go's, Python's with
    ``parse_constant``) reject them."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """Valid JSON of ``obj`` (non-finite floats as null, other objects as ``str``)."""
    return json.dumps(json_safe(obj), allow_nan=False, default=str, **kwargs)


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(dumps(obj, indent=2) + "\n")


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
        recorded = read_json(side)
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or "key" not in recorded:
        return False
    return canonical_json(recorded["key"]) == canonical_json(key)


def quarantine(path: Path, reason: str) -> Path | None:
    """Move an unreadable entry (and its sidecar) aside to ``<name>.corrupt`` and warn.
    Returns where it went (None when it was already gone)."""
    path = Path(path)
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        aside = None
    except OSError:  # cannot move it (read-only folder): the rewrite will replace it
        aside = path
    sidecar(path).unlink(missing_ok=True)
    where = f"moved it to {aside}" if aside not in (None, path) else "it will be replaced"
    warnings.warn(f"Cache entry {path} cannot be read ({reason}); {where} and computing it again.",
                  CacheWarning, stacklevel=3)
    return aside


def _try_load(path: Path, load: Callable[[Path], T]) -> tuple[bool, T | None, str]:
    try:
        return True, load(path), ""
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - torch / json / numpy raise many types for a damaged file
        reason = (str(e).strip().splitlines() or [""])[0][:160]
        return False, None, f"{type(e).__name__}: {reason}" if reason else type(e).__name__


def cached(
    path: Path,
    key: dict[str, Any],
    compute: Callable[[], T],
    save: Callable[[T, Path], None],
    load: Callable[[Path], T],
    extra: Callable[[T], dict[str, Any]] | None = None,
    world=None,
    main_only: bool = False,
) -> tuple[T, bool]:
    """Load the entry at ``path`` if its sidecar matches ``key``; else compute and store it.

    Returns ``(value, hit)``. The lock is held while computing, so a concurrent job
    with the same key waits and then loads instead of computing again. ``extra(value)``
    adds fields to the sidecar. Under torchrun (``world``: a ``sslinv.distributed.World``)
    every rank calls this: all ranks compute (each its shard, inside ``compute``), rank 0
    alone locks and writes, and all ranks agree on hit or miss. On a hit, a rank that does
    not see the entry (a node without the shared cache) gets rank 0's value by broadcast.
    With ``main_only`` the value is needed on rank 0 alone: ``compute`` may return None
    on the other ranks, and on a hit only rank 0 loads the entry (the others get None).
    An entry that ``load`` cannot read on any rank is a miss (moved aside with a
    warning); inside ``refreshing()`` every entry is a miss.
    """
    from sslinv.distributed import World, all_gather_objects, broadcast_object

    world = world or World()
    refresh = _REFRESH.get()

    def fresh() -> bool:
        ok = False if refresh else (is_fresh(path, key) if world.is_main else False)
        return bool(broadcast_object(world, ok))

    def read() -> tuple[bool, T | None]:
        # Each rank that sees the entry loads it; without a shared cache (several nodes)
        # a rank that does not see rank 0's file receives rank 0's value instead.
        here = world.is_main or (not main_only and is_fresh(path, key))
        ok, value, reason = _try_load(path, load) if here else (True, None, "")
        gathered = all_gather_objects(world, (ok, reason, here))
        failures = [r for good, r, _ in gathered if not good]
        if failures:
            if world.is_main:
                quarantine(path, failures[0])
            return False, None
        if not main_only and not all(seen for _, _, seen in gathered):
            sent = broadcast_object(world, value if world.is_main else None)
            value = value if here else sent
        return True, value

    if fresh():
        ok, value = read()
        if ok:
            return value, True  # type: ignore[return-value]
    with lock(path) if world.is_main else contextlib.nullcontext():
        if fresh():  # another job finished it while we waited
            ok, value = read()
            if ok:
                return value, True  # type: ignore[return-value]
        if world.is_main:  # temp files of a killed writer
            remove_stale_temps(path)
            remove_stale_temps(sidecar(path))
        value = compute()
        if world.is_main:
            with atomic_path(path) as tmp:
                save(value, tmp)
            write_json(sidecar(path), {"key": key, **(extra(value) if extra else {})})
        return value, False
