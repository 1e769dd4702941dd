"""Safe extraction of zip and tar archives, the type detected from the bytes, not the name.

- **Type by content** (:func:`sniff`): ``PK`` = zip; gzip / bzip2 / xz magic = a
  compressed tar; ``ustar`` at offset 257 (or a valid old-style header) = a plain tar.
  So Oxford's ``102flowers.tgz``, which is an uncompressed tar despite its name, and a
  ``.zip`` that is really a tar both unpack. RAR and 7z are recognised and refused with
  advice (they need tools sslinv does not depend on).
- **Nothing lands outside the target folder.** Every member name is checked before it
  is written: absolute paths (``/x``, ``C:\\x``), ``..`` components and backslash
  tricks raise :class:`UnsafeArchiveError` naming the member. Tar members then go
  through the standard library's ``data`` extraction filter (PEP 706: no links leaving
  the folder, no device files, no set-uid bits); zip symlinks are resolved and must stay
  inside; no file is written through a directory that resolves outside.
- **Selective**: a ``mapper`` turns each member's clean relative path into the path to
  write (or None to skip it), so the layout steps strip top folders and pick the files a
  loader reads while extracting, without a second pass.

The caller extracts into a temporary folder and renames it into place only after the
loader check passes, so an interrupted or rejected extraction leaves nothing under the
dataset's final name.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from sslinv.errors import FetchError, UnsafeArchiveError
from sslinv.reporting import NullReporter, Reporter

__all__ = ["ARCHIVE_TYPES", "Mapper", "copy_tree", "extract", "safe_relpath", "sniff"]

ARCHIVE_TYPES = ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz")
CHUNK = 1 << 20

#: ``clean relative member path -> relative output path`` (None: skip the member).
Mapper = Callable[[str], "str | None"]

_UNSUPPORTED = {
    b"Rar!\x1a\x07": "a RAR archive",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
}


def sniff(path: Path) -> str:
    """The archive type of ``path`` from its first bytes: one of :data:`ARCHIVE_TYPES`."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:3] == b"BZh":
        return "tar.bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "tar.xz"
    if head[257:262] == b"ustar":
        return "tar"
    for magic, what in _UNSUPPORTED.items():
        if head.startswith(magic):
            raise FetchError(
                f"{path} is {what}, which sslinv cannot unpack (it would need an extra tool). "
                "Unpack it yourself and pass the folder with --from."
            )
    if len(head) >= 512 and _old_tar_header(head):
        return "tar"
    looks = " (it looks like an HTML page: the link probably needs a browser)" if (
        head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))
    ) else ""
    raise FetchError(
        f"{path} is not a zip or tar archive{looks}; it starts with {head[:16]!r}. "
        "Delete it and download it again, or pass the right file with --from."
    )


def _old_tar_header(block: bytes) -> bool:
    """A pre-POSIX tar header: the checksum field matches the header's bytes."""
    try:
        stored = int(block[148:156].replace(b"\x00", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    return stored == computed and block[0] != 0


def safe_relpath(name: str, archive: Path | str = "archive") -> str:
    """A member name as a clean relative POSIX path ('' for the root), or raise.

    Rejects absolute paths (POSIX, Windows drive or UNC) and any ``..`` component, with
    ``\\`` treated as a separator too (Windows-made zips use it).
    """
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UnsafeArchiveError(
            f"{archive} contains the absolute path {name!r}; refusing to extract it (it would "
            "write outside the target folder). Nothing was kept. Get the archive from a trusted source."
        )
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(
            f"{archive} contains the member {name!r} with a '..' component; refusing to extract "
            "it (it would write outside the target folder). Nothing was kept. Get the archive "
            "from a trusted source."
        )
    return "/".join(parts)


def _inside(root: Path, path: Path | str) -> bool:
    root_real = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real + os.sep)


def extract(
    archive: Path,
    dest: Path,
    mapper: Mapper | None = None,
    reporter: Reporter | None = None,
    description: str | None = None,
) -> int:
    """Extract ``archive`` (zip or tar, any compression) into ``dest``; return files written.

    ``mapper`` maps each member's clean path to the path to write under ``dest``, or
    None to skip it. Raises :class:`UnsafeArchiveError` for a member that would land
    outside ``dest`` (the caller removes ``dest``: extract into a temporary folder).
    """
    archive, dest = Path(archive), Path(dest)
    kind = sniff(archive)
    dest.mkdir(parents=True, exist_ok=True)
    reporter = reporter or NullReporter()
    bar = reporter.bar(description or f"unpacking {archive.name}", archive.stat().st_size, "bytes")
    try:
        if kind == "zip":
            return _extract_zip(archive, dest, mapper, bar)
        return _extract_tar(archive, dest, mapper, bar)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise FetchError(
            f"{archive} is damaged or truncated ({type(e).__name__}: {e}). Delete it and "
            "download it again."
        ) from e
    finally:
        bar.close()


def _map(mapper: Mapper | None, rel: str, archive: Path) -> str | None:
    if not rel:
        return None
    out = mapper(rel) if mapper else rel
    if out is None:
        return None
    out = safe_relpath(out, archive)
    return out or None


# -------------------------------------------------------------------------------- tar

_HAS_FILTERS = hasattr(tarfile, "data_filter")


def _extract_tar(archive: Path, dest: Path, mapper: Mapper | None, bar) -> int:
    written = 0
    done = 0
    # Open the file ourselves: its position is the progress through the compressed bytes.
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
        for member in tar:
            rel = safe_relpath(member.name, archive)
            out = _map(mapper, rel, archive)
            if out is None:
                continue
            changes: dict[str, str] = {"name": out}
            if member.issym():
                target = member.linkname
                if target.startswith("/") or re.match(r"^[A-Za-z]:", target) or not _link_inside(out, target):
                    raise UnsafeArchiveError(
                        f"{archive} contains the link {member.name!r} -> {target!r}, which points "
                        "outside the target folder; refusing to extract it. Nothing was kept."
                    )
            elif member.islnk():
                target = _map(mapper, safe_relpath(member.linkname, archive), archive)
                if target is None:
                    raise FetchError(
                        f"{archive}: the hard link {member.name!r} points to {member.linkname!r}, "
                        "which is not part of the extracted files."
                    )
                changes["linkname"] = target
            elif not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"{archive} contains {member.name!r}, a device or special file; refusing to "
                    "extract it. Nothing was kept."
                )
            if _HAS_FILTERS:
                renamed = member.replace(**changes, deep=False)
                try:
                    tar.extract(renamed, dest, set_attrs=True, filter="data")
                except tarfile.FilterError as e:
                    raise UnsafeArchiveError(
                        f"{archive}: member {member.name!r} rejected ({e}); nothing was kept."
                    ) from None
            else:  # Python without PEP 706 filters: the checks above are the guard
                import copy

                renamed = copy.copy(member)
                for key, value in changes.items():
                    setattr(renamed, key, value)
                renamed.mode &= 0o755 if renamed.isdir() else 0o644
                tar.extract(renamed, dest, set_attrs=False)
            if member.isfile():
                written += 1
            pos = _position(raw)
            if pos is not None and pos > done:
                bar.advance(pos - done)
                done = pos
    return written


def _position(fileobj) -> int | None:
    try:
        return int(fileobj.tell())
    except (AttributeError, OSError, ValueError):
        return None


def _link_inside(link_path: str, target: str) -> bool:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link_path), target.replace("\\", "/")))
    return not (resolved == ".." or resolved.startswith("../") or resolved.startswith("/"))


# -------------------------------------------------------------------------------- zip


def _extract_zip(archive: Path, dest: Path, mapper: Mapper | None, bar) -> int:
    written = 0
    # Resolving every parent folder (realpath) is only needed once a link exists below
    # dest: until then, clean relative paths cannot leave it. This keeps extraction of
    # archives of many small files (COIL-100, CelebA) close to zipfile's own speed.
    careful = _has_links(dest)
    made: set[Path] = set()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = safe_relpath(info.filename, archive)
            out = _map(mapper, rel, archive)
            if out is None:
                bar.advance(info.compress_size)
                continue
            path = dest / out
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", "replace")
                _make_parent(dest, path, archive, info.filename)
                if target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", target) or not (
                    _link_inside(out, target) and _inside(dest, path.parent / target)
                ):
                    raise UnsafeArchiveError(
                        f"{archive} contains the link {info.filename!r} -> {target!r}, which points "
                        "outside the target folder; refusing to extract it. Nothing was kept."
                    )
                if path.is_symlink() or path.exists():
                    path.unlink()
                os.symlink(target, path)
                careful = True
            elif info.is_dir():
                _make_parent(dest, path / "_", archive, info.filename)
            else:
                if careful:
                    _make_parent(dest, path, archive, info.filename)
                    if path.is_symlink():
                        path.unlink()  # never write through a link
                elif path.parent not in made:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    made.add(path.parent)
                with zf.open(info) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                written += 1
            bar.advance(info.compress_size)
    return written


def _has_links(folder: Path) -> bool:
    if not folder.exists():
        return False
    for dirpath, dirnames, filenames in os.walk(folder):
        if any(os.path.islink(os.path.join(dirpath, n)) for n in (*dirnames, *filenames)):
            return True
    return False


def _make_parent(dest: Path, path: Path, archive: Path, member: str) -> None:
    """Create ``path``'s parent folders, after checking that the part that already exists
    does not resolve outside ``dest`` (a link planted by an earlier member)."""
    existing = path.parent
    while not existing.exists() and existing != dest:
        existing = existing.parent
    if not _inside(dest, existing):
        raise UnsafeArchiveError(
            f"{archive}: member {member!r} would be written through a link that leaves the "
            "target folder; refusing. Nothing was kept."
        )
    path.parent.mkdir(parents=True, exist_ok=True)


# ------------------------------------------------------------------- folder as archive


def copy_tree(
    src: Path,
    dest: Path,
    mapper: Mapper | None = None,
    reporter: Reporter | None = None,
    description: str | None = None,
) -> int:
    """Copy the files of folder ``src`` into ``dest`` as if it were an unpacked archive.

    Files are hard-linked when ``src`` and ``dest`` share a file system (instant, no extra
    space; datasets are read-only), else copied. Symlinks inside ``src`` are followed.
    """
    src, dest = Path(src), Path(dest)
    files = []
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            files.append((full, full.relative_to(src).as_posix()))
    bar = (reporter or NullReporter()).bar(description or f"copying {src.name}", len(files), "files")
    written = 0
    try:
        for full, rel in files:
            out = _map(mapper, rel, src)
            if out is not None:
                target = dest / out
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(full, target)
                except OSError:
                    shutil.copy2(full, target)
                written += 1
            bar.advance(1)
    finally:
        bar.close()
    return written
