"""Apply a resource's layout step: unpack or place one file into the staging folder.

The steps are declared on :class:`sslinv.fetch.records.Resource` (``dest``, ``root``,
``include``); this module carries them out. Fixed roots (``""``, ``"coil-100"``,
``"*"``) are applied while extracting, so unwanted members are never written. A
``"find:PATTERN"`` root (an archive whose top folder is not documented) extracts the
members that can belong to the layout (a path some suffix of which matches an include
pattern), finds the shallowest folder holding ``PATTERN``, and moves the selected files
from there; the rest is deleted.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from sslinv.errors import ChecksumError, FetchError
from sslinv.fetch.extract import Mapper, copy_tree, extract
from sslinv.fetch.records import Resource
from sslinv.reporting import Reporter

__all__ = ["apply_resource", "find_root", "fixed_mapper", "unwrap"]


def _included(rel: str, include: tuple[str, ...]) -> bool:
    return not include or any(fnmatch.fnmatchcase(rel, p) for p in include)


def fixed_mapper(res: Resource) -> Mapper:
    """Member path -> output path for a resource whose ``root`` is fixed or ``*``."""
    if res.root == "*":
        strip: list[str] | None = None
    else:
        strip = [p for p in res.root.split("/") if p]

    def mapper(rel: str) -> str | None:
        parts = rel.split("/")
        if strip is None:  # drop the single top folder, whatever its name
            rest = parts[1:]
        elif parts[: len(strip)] == strip:
            rest = parts[len(strip):]
        else:
            return None
        if not rest:
            return None
        below = "/".join(rest)
        if not _included(below, res.include):
            return None
        return f"{res.dest}/{below}" if res.dest else below

    return mapper


def _suffix_mapper(include: tuple[str, ...]) -> Mapper:
    """Keep members that could lie below an undocumented root: some suffix of the path
    matches an include pattern (or, with no patterns, everything)."""

    def mapper(rel: str) -> str | None:
        if not include:
            return rel
        parts = rel.split("/")
        for i in range(len(parts)):
            if _included("/".join(parts[i:]), include):
                return rel
        return None

    return mapper


def find_root(tree: Path, pattern: str, what: str) -> Path:
    """The shallowest folder ``D`` under ``tree`` (``tree`` included) with ``D/pattern``."""
    level = [tree]
    while level:
        hits = [d for d in level if glob.glob(os.path.join(glob.escape(str(d)), pattern))]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            found = ", ".join(str(h.relative_to(tree)) or "." for h in hits)
            raise FetchError(
                f"{what} holds several folders with {pattern} at the same depth ({found}); "
                "cannot tell which one is the dataset. Pass the right folder with --from."
            )
        level = sorted(c for d in level for c in d.iterdir() if c.is_dir() and not c.is_symlink())
    raise FetchError(
        f"{what} holds no folder with {pattern}: it is not the archive sslinv expects for this "
        "dataset (or its layout changed). Check the file, or pass the unpacked folder with --from."
    )


def _move_selected(src: Path, dest: Path, include: tuple[str, ...]) -> int:
    """Move the files under ``src`` whose relative path matches ``include`` into ``dest``."""
    moved = 0
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for name in filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(src).as_posix()
            if _included(rel, include):
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(full, target)
                moved += 1
    return moved


def unwrap(res: Resource, source: Path, folder: Path, reporter: Reporter, what: str) -> Path:
    """The archive ``res.inner`` taken out of the wrapper ``source`` into ``folder`` and
    checked against its recorded hashes (the wrapper itself was checked by the caller).
    A file that already is the inner archive (not a zip) is checked and used as it is."""
    from sslinv.fetch.download import (
        essential,
        hash_file,
        mismatches,
        normalise_expected,
    )
    from sslinv.fetch.extract import sniff

    name = res.inner
    assert name is not None
    if sniff(source) == "zip":
        n = extract(source, folder, lambda rel: name if rel.rsplit("/", 1)[-1] == name else None,
                    reporter, f"taking {name} out of {source.name}")
        if n == 0:
            raise FetchError(
                f"{what} holds no {name}: it is not the archive sslinv expects (or its layout "
                "changed). Check the file, or pass the unpacked folder with --from."
            )
        inner = folder / name
    else:
        inner = source
    expected = essential(normalise_expected(res.inner_checksums))
    if expected:
        digests = hash_file(inner, ["sha256", *sorted(a for a in expected if a != "sha256")], reporter,
                            f"verifying {name}")
        bad = mismatches(digests, expected)
        if bad:
            raise ChecksumError(
                f"{name} inside {source.name} is not the recorded original ("
                + "; ".join(f"expected {a} {e}, got {g}" for a, e, g in bad)
                + f"), although {source.name} passed its own checksum: the host may have repackaged "
                "it. Nothing was installed. If you trust the file, unpack "
                f"{name} from it and pass the unpacked folder with --from."
            )
    return inner


def apply_resource(
    res: Resource, source: Path, staging: Path, reporter: Reporter, what: str
) -> int:
    """Put ``source`` (a downloaded file, or a folder given with --from) into ``staging``
    as the record says; return the number of files written."""
    source = Path(source)
    if not res.extract:
        target = staging / (res.dest or res.filename or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
        return 1

    if res.inner and source.is_file():
        inner_dir = Path(tempfile.mkdtemp(dir=staging, prefix=".inner-"))
        try:
            inner = unwrap(res, source, inner_dir, reporter, what)
            return apply_resource(replace(res, inner=None), inner, staging, reporter, what)
        finally:
            shutil.rmtree(inner_dir, ignore_errors=True)

    if not res.root.startswith("find:"):
        mapper = fixed_mapper(res)
        if source.is_dir():
            n = copy_tree(source, staging, mapper, reporter, f"copying {what}")
        else:
            n = extract(source, staging, mapper, reporter, f"unpacking {what}")
        if n == 0:
            raise FetchError(
                f"{what} holds no files under {res.root or 'its top'!r} matching "
                f"{', '.join(res.include) or '*'}: it is not the archive sslinv expects (or its "
                "layout changed). Check the file, or pass the unpacked folder with --from."
            )
        return n

    pattern = res.root[len("find:"):]
    dest = staging / res.dest if res.dest else staging
    if source.is_dir():
        root = find_root(source, pattern, what)
        return copy_tree(root, dest, lambda rel: rel if _included(rel, res.include) else None,
                         reporter, f"copying {what}")
    unpack = Path(tempfile.mkdtemp(dir=staging, prefix=".unpack-"))
    try:
        extract(source, unpack, _suffix_mapper(res.include), reporter, f"unpacking {what}")
        root = find_root(unpack, pattern, what)
        return _move_selected(root, dest, res.include)
    finally:
        shutil.rmtree(unpack, ignore_errors=True)
