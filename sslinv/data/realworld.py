"""The eleven real-world group datasets of protocol section 3, as one registry.

A real-world dataset is a list of *groups*: the images of one object or scene under a
real change of viewpoint, light or blur. ``REALWORLD`` maps the name a user types after
``sslinv realworld --dataset`` to the loader module (one per dataset folder, see
``sslinv/data/<module>.py`` for each expected on-disk tree) and its mode:

==================  ==================  =====================================  =====
name                module (DIRNAME)     group                                  views
==================  ==================  =====================================  =====
COIL100             coil100 (COIL100)    object                                 72
ALOI-viewpoint      aloi (ALOI)          object                                 72
ALOI-illumination   aloi (ALOI)          object x camera                        8
ALOI-temperature    aloi (ALOI)          object                                 12
ALOT-viewpoint      alot (ALOT)          texture x light                        16
ALOT-illumination   alot (ALOT)          texture x camera x rotation            6
ALOT-temperature    alot (ALOT)          texture x camera                       2
ExposureErrors      exposure_errors      scene (ground truth + exposures)       6
DaLI                dali (DaLI)          scene                                  32
Flickr1024          flickr1024           stereo pair                            2
RealBlur            realblur (RealBlur)  scene pair (sharp, blurred)            2
==================  ==================  =====================================  =====

Every loader indexes its folder once (one directory walk, then a dict from group key to
files), so building the groups is linear in the number of files; the reference scans
the whole file list again for every group, which is quadratic. Loaders only read.

This module imports neither torch nor the loaders at import time, so shell completion
can list ``NAMES`` at once.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sslinv.cache import stat_fingerprint
from sslinv.errors import DataNotFoundError
from sslinv.registry import Registry


@dataclass(frozen=True)
class Group:
    """One object or scene: ``files`` are paths relative to the dataset root."""

    name: str
    files: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class GroupedImages:
    """The groups of one real-world dataset, as found on disk."""

    name: str  # registry name, e.g. "ALOI-illumination"
    root: Path  # <data-root>/<DIRNAME>, resolved
    layout: str  # which accepted on-disk layout was found
    groups: tuple[Group, ...]
    expected_views: int  # views per group in the full dataset (the reference's k)

    @property
    def num_images(self) -> int:
        return sum(len(g) for g in self.groups)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def identity(self) -> dict[str, Any]:
        """Name, root, layout, counts and a fingerprint of every file (path, size, mtime):
        a changed or added file changes the identity, so results are recomputed."""
        return {
            "name": self.name,
            "root": str(self.root),
            "layout": self.layout,
            "num_groups": len(self.groups),
            "num_images": self.num_images,
            "fingerprint": fingerprint(self.root, (f for g in self.groups for f in g.files)),
        }


@dataclass(frozen=True)
class RealWorldDataset:
    """A registry entry: which loader module reads it, in which mode."""

    name: str
    module: str  # sslinv.data.<module>
    mode: str | None
    k: int  # views per group in the full dataset (the reference's k)
    group: str  # what one group is (for --help and tables)
    builtin: bool = False  # painted into <cache>/demo on first use (see DEMO_NAMES)

    def loader(self) -> ModuleType:
        return importlib.import_module(f"sslinv.data.{self.module}")

    @property
    def dirname(self) -> str:
        return self.loader().DIRNAME

    def root(self, data_root: Path) -> Path:
        return Path(data_root) / self.dirname

    def load(self, data_root: Path, accept_root_itself: bool = False) -> GroupedImages:
        """Index the dataset under ``<data_root>/<DIRNAME>``; raises DataNotFoundError naming
        the fix. With ``accept_root_itself``, a ``data_root`` that is itself the dataset
        folder (``--data-root ~/data/COIL100``) is accepted when ``<data_root>/<DIRNAME>``
        does not exist."""
        root = self.root(data_root)
        try:
            return self._load_from(root)
        except DataNotFoundError:
            if not accept_root_itself or root.exists():
                raise
            try:
                return self._load_from(Path(data_root))
            except DataNotFoundError:
                pass
            raise

    def _load_from(self, root: Path) -> GroupedImages:
        mod = self.loader()
        layout, groups = mod.load_groups(root, self.mode) if self.mode else mod.load_groups(root)
        return GroupedImages(self.name, root.resolve(), layout, tuple(groups), self.k)


REALWORLD: Registry[RealWorldDataset] = Registry("real-world dataset")

for _entry in (
    RealWorldDataset("COIL100", "coil100", None, 72, "object"),
    RealWorldDataset("ALOI-viewpoint", "aloi", "viewpoint", 72, "object"),
    RealWorldDataset("ALOI-illumination", "aloi", "illumination", 8, "object x camera"),
    RealWorldDataset("ALOI-temperature", "aloi", "temperature", 12, "object"),
    RealWorldDataset("ALOT-viewpoint", "alot", "viewpoint", 16, "texture x light"),
    RealWorldDataset("ALOT-illumination", "alot", "illumination", 6, "texture x camera x rotation"),
    RealWorldDataset("ALOT-temperature", "alot", "temperature", 2, "texture x camera"),
    RealWorldDataset("ExposureErrors", "exposure_errors", None, 6, "scene"),
    RealWorldDataset("DaLI", "dali", None, 32, "scene"),
    RealWorldDataset("Flickr1024", "flickr1024", None, 2, "stereo pair"),
    RealWorldDataset("RealBlur", "realblur", None, 2, "scene pair"),
    RealWorldDataset("demo-viewpoint", "demo_tasks", "viewpoint", 8, "demo scene", builtin=True),
    RealWorldDataset("demo-lighting", "demo_tasks", "lighting", 8, "demo scene", builtin=True),
):
    REALWORLD.register(_entry.name, _entry)

#: Every name in protocol-table order (torch-free: used by shell completion).
NAMES = tuple(name for name, entry in REALWORLD.items() if not entry.builtin)
#: Built-in stand-ins painted into the cache (``sslinv.data.demo_tasks``), used by
#: ``sslinv demo``; not part of ``--dataset all``. Their data root is ``<cache>/demo``.
DEMO_NAMES = tuple(name for name, entry in REALWORLD.items() if entry.builtin)


def get(name: str) -> RealWorldDataset:
    """The entry for ``name`` in any case (did-you-mean on a typo)."""
    return REALWORLD.lookup(name)


def load(name: str, data_root: Path) -> GroupedImages:
    return get(name).load(data_root)


# ------------------------------------------------------------- helpers for the loaders


def fingerprint(root: Path, rel_paths: Iterable[str]) -> str:
    """Name, size and mtime of ``rel_paths`` under ``root`` (:func:`sslinv.cache.stat_fingerprint`)."""
    return stat_fingerprint(rel_paths, root=root)


def not_found(dirname: str, root: Path, expected: str, detail: str = "") -> DataNotFoundError:
    """The one error a loader raises for a missing or incomplete dataset."""
    what = detail or f"Dataset {dirname!r} not found under {root}"
    return DataNotFoundError(
        f"{what} (expected {expected}). Run: sslinv fetch-data {dirname} "
        "(or point --data-root / SSLINV_DATA_ROOT at the folder that holds it)."
    )


def require_dir(dirname: str, root: Path, expected: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise not_found(dirname, root, expected)
    return root


def subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder``, sorted by name (empty if it is not a folder)."""
    try:
        with os.scandir(folder) as it:
            return sorted(
                (Path(e.path) for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=True)),
                key=lambda p: p.name,
            )
    except (FileNotFoundError, NotADirectoryError):
        return []


def files_matching(folder: Path, pattern: re.Pattern[str]) -> list[tuple[str, re.Match[str]]]:
    """``(name, match)`` of the visible files directly in ``folder`` whose name matches."""
    out = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                m = pattern.match(e.name)
                if m and e.is_file(follow_symlinks=True):
                    out.append((e.name, m))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(out, key=lambda t: t[0])


def rel(root: Path, path: Path) -> str:
    return os.path.relpath(path, root)


def natural_key(s: str) -> tuple:
    """Sort key treating digit runs as numbers: 'obj2' < 'obj10'."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def by_count(groups: Sequence[Group]) -> dict[int, int]:
    """Histogram of group sizes: {views: number of groups}."""
    hist: dict[int, int] = {}
    for g in groups:
        hist[len(g)] = hist.get(len(g), 0) + 1
    return dict(sorted(hist.items()))
