"""ALOI (Amsterdam Library of Object Images): 1,000 objects under viewpoint, light
direction and light colour changes.

Expected on-disk tree, either the reference's (one folder per collection)::

    <data-root>/ALOI/
        viewpoint/<obj>/<obj>_r<angle>.png       obj 1..1000, angle 0, 5, ..., 355 (72)
        illumination/<obj>/<obj>_l<L>c<C>.png    light L 1..8, camera C 1..3      (24)
        temperature/<obj>/<obj>_i<T>.png         12 colour temperatures, e.g. i110 (12)

or the official tars (``aloi_red4_view.tar``, ``aloi_red4_ill.tar``,
``aloi_red4_col.tar``) unpacked as they are into ``<data-root>/ALOI/``: each has one
top folder (``png4/`` for the quarter-resolution set) holding ``<obj>/`` folders, so the
three collections may share ``png4/<obj>/``; the file names tell them apart. The top
folder may also be stripped (``ALOI/<obj>/...``). A collection's reference folder, when
present, is used alone.

Groups (protocol section 3): viewpoint, one per object (72 views); illumination, one per
(object, camera) (8 light directions; cameras first, as the reference's class index
``camera * 1000 + object - 1``); temperature, one per object (12 colours). The object
id is the folder name, as in the reference.
"""

from __future__ import annotations

import re
from pathlib import Path

from sslinv.data.realworld import Group, files_matching, not_found, rel, require_dir, subdirs

DIRNAME = "ALOI"
MODES = ("viewpoint", "illumination", "temperature")
VIEWS = {"viewpoint": 72, "illumination": 8, "temperature": 12}
EXPECTED = {"viewpoint": 72000, "illumination": 24000, "temperature": 12000, "objects": 1000}
ARCHIVES = {"viewpoint": "aloi_red4_view.tar", "illumination": "aloi_red4_ill.tar", "temperature": "aloi_red4_col.tar"}
_FILE = re.compile(r"^\d+_(?:r(?P<r>\d+)|l(?P<l>\d+)c(?P<c>\d+)|i(?P<i>\d+))\.png$", re.IGNORECASE)
_EXPECT = {
    "viewpoint": "viewpoint/<obj>/<obj>_r<angle>.png, or png4/<obj>/ from aloi_red4_view.tar",
    "illumination": "illumination/<obj>/<obj>_l<L>c<C>.png, or png4/<obj>/ from aloi_red4_ill.tar",
    "temperature": "temperature/<obj>/<obj>_i<T>.png, or png4/<obj>/ from aloi_red4_col.tar",
}


def _mode_of(m: re.Match[str]) -> str:
    if m.group("r") is not None:
        return "viewpoint"
    if m.group("l") is not None:
        return "illumination"
    return "temperature"


def _object_dirs(folder: Path) -> list[tuple[int, Path]]:
    return [(int(d.name), d) for d in subdirs(folder) if d.name.isdigit()]


def _scan(root: Path, modes: tuple[str, ...]) -> dict[str, tuple[str, dict]]:
    """For each mode found: ``(layout, {(obj, key...): relpath})``, one walk per folder."""
    out: dict[str, tuple[str, dict]] = {}
    archive_dirs = [root] + [d for d in subdirs(root) if d.name not in MODES and not d.name.isdigit()]
    archive_index: dict[str, dict] | None = None
    for mode in modes:
        ref = root / mode
        if ref.is_dir():
            index = _index_objects(root, _object_dirs(ref), only=mode)
            if index.get(mode):
                out[mode] = ("reference (ALOI/<collection>/<obj>/)", index[mode])
                continue
        if archive_index is None:  # the official tars' folders, scanned once for all modes
            archive_index = {}
            for top in archive_dirs:
                for mode_, entries in _index_objects(root, _object_dirs(top)).items():
                    bucket = archive_index.setdefault(mode_, {})
                    for key, path in entries.items():
                        bucket.setdefault(key, path)  # the first copy of a duplicate wins
        if archive_index.get(mode):
            out[mode] = ("official archive (ALOI/<top>/<obj>/)", archive_index[mode])
    return out


def _index_objects(root: Path, objects: list[tuple[int, Path]], only: str | None = None) -> dict[str, dict]:
    index: dict[str, dict] = {}
    for obj, folder in objects:
        for name, m in files_matching(folder, _FILE):
            mode = _mode_of(m)
            if only is not None and mode != only:
                continue
            if mode == "viewpoint":
                key = (obj, int(m.group("r")))
            elif mode == "illumination":
                key = (int(m.group("c")), obj, int(m.group("l")))
            else:
                key = (obj, int(m.group("i")))
            index.setdefault(mode, {})[key] = rel(root, folder / name)
    return index


def load_groups(root: Path, mode: str) -> tuple[str, list[Group]]:
    """``(layout, groups)`` of one collection (``viewpoint``, ``illumination``, ``temperature``)."""
    if mode not in MODES:
        raise ValueError(f"ALOI mode must be one of {MODES}, not {mode!r}")
    root = require_dir(DIRNAME, root, _EXPECT[mode])
    found = _scan(root, (mode,))
    if mode not in found:
        raise not_found(
            DIRNAME, root, _EXPECT[mode],
            detail=f"No ALOI {mode} images under {root} (from {ARCHIVES[mode]})",
        )
    layout, index = found[mode]
    buckets: dict[tuple, list[tuple[int, str]]] = {}
    for key, path in index.items():
        # The last key element orders views inside a group; the rest names the group.
        buckets.setdefault(key[:-1], []).append((key[-1], path))
    groups = []
    for gkey in sorted(buckets):
        views = tuple(p for _, p in sorted(buckets[gkey]))
        name = f"obj{gkey[1]}/c{gkey[0]}" if mode == "illumination" else f"obj{gkey[0]}"
        groups.append(Group(name, views))
    return layout, groups


def verify(root: Path) -> dict[str, int]:
    """Images per collection present and the number of objects; raises DataNotFoundError
    when no collection is there."""
    root = require_dir(DIRNAME, Path(root), "; ".join(_EXPECT.values()))
    found = _scan(root, MODES)
    if not found:
        raise not_found(DIRNAME, root, "; ".join(_EXPECT.values()), detail=f"No ALOI images under {root}")
    counts: dict[str, int] = {mode: len(index) for mode, (_, index) in found.items()}
    objects = {key[1] if mode == "illumination" else key[0] for mode, (_, index) in found.items() for key in index}
    counts["objects"] = len(objects)
    return counts
