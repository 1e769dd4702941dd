"""ALOT (Amsterdam Library of Textures): 250 rough textures under camera, turntable and
light changes.

Expected on-disk tree, the reference's::

    <data-root>/ALOT/<mat>/<mat>_c<C>l<L>.png           camera C 1..4, light L 1..5, 8
    <data-root>/ALOT/<mat>/<mat>_c<C>l<L>r<A>.png       turntable A 60, 120, 180 degrees
    <data-root>/ALOT/<mat>/<mat>_c<C>i.png              reddish illumination

(``mat`` 1..250; 100 images each, 25,000 in all), or the official ``alot_png4.tar``
unpacked as it is, one top folder above the material folders
(``<data-root>/ALOT/<top>/<mat>/...``).

Groups (protocol section 3; views ordered by camera, turntable angle, light):

- viewpoint: one per (texture, light), light in 1, 2, 3, 4, 5, 8; the 16 views are the
  4 cameras x 4 turntable angles. The reference means these 1,500 groups but computes
  the light from the texture index (``class_idx % 250`` happens first), so it evaluates
  only 250 distinct groups, six times each; sslinv evaluates the 1,500 distinct ones.
- illumination: one per (texture, camera, angle), 6 views (lights 1..5 and 8).
- temperature: one per (texture, camera), 2 views: all lights on (``l8``, unrotated)
  and the reddish light (``i``).
"""

from __future__ import annotations

import re
from pathlib import Path

from sslinv.data.realworld import Group, files_matching, not_found, rel, require_dir, subdirs

DIRNAME = "ALOT"
MODES = ("viewpoint", "illumination", "temperature")
VIEWS = {"viewpoint": 16, "illumination": 6, "temperature": 2}
EXPECTED = {"images": 25000, "textures": 250}
LIGHTS = (1, 2, 3, 4, 5, 8)
ARCHIVE = "alot_png4.tar"
_FILE = re.compile(r"^\d+_c(?P<c>\d)(?:l(?P<l>\d)(?:r(?P<r>\d+))?|(?P<i>i))\.png$", re.IGNORECASE)
_EXPECT = "<mat>/<mat>_c<C>l<L>[r<A>].png and <mat>/<mat>_c<C>i.png, or <top>/<mat>/ from alot_png4.tar"


def _index(root: Path) -> tuple[str, list[tuple[int, int, int | None, int, str]]]:
    """``(layout, [(mat, camera, light or None for 'i', angle, relpath)])``."""
    candidates = [("reference (ALOT/<mat>/)", root)]
    candidates += [(f"official archive (ALOT/{d.name}/<mat>/)", d) for d in subdirs(root) if not d.name.isdigit()]
    for layout, top in candidates:
        entries = []
        for d in subdirs(top):
            if not d.name.isdigit():
                continue
            mat = int(d.name)
            for name, m in files_matching(d, _FILE):
                light = None if m.group("i") else int(m.group("l"))
                angle = int(m.group("r") or 0)
                entries.append((mat, int(m.group("c")), light, angle, rel(root, d / name)))
        if entries:
            return layout, entries
    raise not_found(DIRNAME, root, _EXPECT, detail=f"No ALOT images under {root}")


def load_groups(root: Path, mode: str) -> tuple[str, list[Group]]:
    """``(layout, groups)`` for ``viewpoint``, ``illumination`` or ``temperature``."""
    if mode not in MODES:
        raise ValueError(f"ALOT mode must be one of {MODES}, not {mode!r}")
    root = require_dir(DIRNAME, root, _EXPECT)
    layout, entries = _index(root)
    buckets: dict[tuple, list[tuple[tuple, str]]] = {}
    for mat, cam, light, angle, path in entries:
        if mode == "viewpoint" and light is not None:
            key, order = (light, mat), (cam, angle)
        elif mode == "illumination" and light is not None:
            key, order = (angle, cam, mat), (light,)
        elif mode == "temperature" and angle == 0 and light in (8, None):
            key, order = (cam, mat), (0 if light is None else 1,)
        else:
            continue
        buckets.setdefault(key, []).append((order, path))
    if not buckets:
        raise not_found(DIRNAME, root, _EXPECT, detail=f"No ALOT {mode} views under {root}")
    groups = []
    for key in sorted(buckets):
        if mode == "viewpoint":
            name = f"mat{key[1]}/l{key[0]}"
        elif mode == "illumination":
            name = f"mat{key[2]}/c{key[1]}/r{key[0]}"
        else:
            name = f"mat{key[1]}/c{key[0]}"
        groups.append(Group(name, tuple(p for _, p in sorted(buckets[key]))))
    return layout, groups


def verify(root: Path) -> dict[str, int]:
    """``{"images": n, "textures": m}``; raises DataNotFoundError if nothing is there."""
    root = require_dir(DIRNAME, Path(root), _EXPECT)
    _, entries = _index(root)
    return {"images": len(entries), "textures": len({e[0] for e in entries})}
