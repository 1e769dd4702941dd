"""COIL-100 (Columbia Object Image Library): 100 objects, each turned through 72 poses.

Expected on-disk tree (either of the two; the first that holds images wins)::

    <data-root>/COIL100/                    the reference's layout (flat)
        obj1__0.png  obj1__5.png ... obj1__355.png
        ...
        obj100__355.png
    <data-root>/COIL100/coil-100/           the official coil-100.zip unpacked as it is
        obj1__0.png ... obj100__355.png     (convertGroupppm2png.pl etc. are ignored)

File names are ``obj<object>__<angle>.png`` (double underscore, angle 0, 5, ..., 355),
128 x 128 RGB: 7,200 images. One group per object (views sorted by angle); the
reference's class index is ``object - 1``.
"""

from __future__ import annotations

import re
from pathlib import Path

from sslinv.data.realworld import Group, files_matching, not_found, rel, require_dir, subdirs

DIRNAME = "COIL100"
EXPECTED = {"images": 7200, "groups": 100}
VIEWS = 72
ARCHIVE_DIR = "coil-100"
_FILE = re.compile(r"^obj(\d+)__(\d+)\.png$", re.IGNORECASE)
_EXPECT = "obj1__0.png ... obj100__355.png directly in it, or in coil-100/ as unpacked from coil-100.zip"


def _image_dir(root: Path) -> tuple[str, Path, list]:
    candidates = [("reference (flat)", root), ("official archive (coil-100/)", root / ARCHIVE_DIR)]
    candidates += [(f"archive folder {d.name}/", d) for d in subdirs(root) if d.name != ARCHIVE_DIR]
    for layout, folder in candidates:
        found = files_matching(folder, _FILE)
        if found:
            return layout, folder, found
    raise not_found(DIRNAME, root, _EXPECT, detail=f"No COIL-100 images (obj<N>__<angle>.png) under {root}")


def load_groups(root: Path) -> tuple[str, list[Group]]:
    """``(layout, groups)``: one group per object, in object order, views by angle."""
    root = require_dir(DIRNAME, root, _EXPECT)
    layout, folder, found = _image_dir(root)
    by_obj: dict[int, list[tuple[int, str]]] = {}
    for name, m in found:
        by_obj.setdefault(int(m.group(1)), []).append((int(m.group(2)), rel(root, folder / name)))
    groups = [
        Group(f"obj{obj}", tuple(f for _, f in sorted(views)))
        for obj, views in sorted(by_obj.items())
    ]
    return layout, groups


def verify(root: Path) -> dict[str, int]:
    """``{"images": n, "groups": objects}``; raises DataNotFoundError if nothing is there."""
    _, groups = load_groups(Path(root))
    return {"images": sum(len(g) for g in groups), "groups": len(groups)}
