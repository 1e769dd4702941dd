"""DaLI (Simo-Serra et al., "DaLI: Deformation and Light Invariant Descriptor", IJCV
2015): 12 real objects, each photographed deformed and lit in 32 ways.

Expected on-disk tree (the reference's)::

    <data-root>/DaLI/input/png/<scene>/*.png      scene 1..12, 32 images each (384)

The dataset page's archive is not documented in a form sslinv could check; when it
unpacks with one top folder above ``input/`` (``<data-root>/DaLI/<top>/input/png/``),
or without the ``input/`` level (``<data-root>/DaLI/png/<scene>/``), that is accepted too.
One group per scene (numbered folders), views sorted by file name.
"""

from __future__ import annotations

import re
from pathlib import Path

from sslinv.data.realworld import Group, files_matching, natural_key, not_found, rel, require_dir, subdirs

DIRNAME = "DaLI"
VIEWS = 32
EXPECTED = {"images": 384, "groups": 12}
_FILE = re.compile(r"^.+\.png$", re.IGNORECASE)
_EXPECT = "input/png/<scene>/*.png with scene folders 1..12"


def _png_dir(root: Path) -> tuple[str, Path] | None:
    candidates = [("reference (input/png/<scene>/)", root / "input" / "png"), ("png/<scene>/", root / "png")]
    candidates += [(f"archive folder {d.name}/input/png/", d / "input" / "png") for d in subdirs(root)]
    for layout, folder in candidates:
        if any(d.name.isdigit() for d in subdirs(folder)):
            return layout, folder
    return None


def load_groups(root: Path) -> tuple[str, list[Group]]:
    """``(layout, groups)``: one group per numbered scene folder, in numeric order."""
    root = require_dir(DIRNAME, root, _EXPECT)
    found = _png_dir(root)
    if found is None:
        raise not_found(DIRNAME, root, _EXPECT, detail=f"No DaLI scene folders (input/png/<n>/) under {root}")
    layout, folder = found
    groups = []
    for d in sorted((d for d in subdirs(folder) if d.name.isdigit()), key=lambda d: int(d.name)):
        views = sorted((n for n, _ in files_matching(d, _FILE)), key=natural_key)
        if views:
            groups.append(Group(f"scene{int(d.name)}", tuple(rel(root, d / n) for n in views)))
    if not groups:
        raise not_found(DIRNAME, root, _EXPECT, detail=f"The DaLI scene folders under {folder} hold no .png images")
    return layout, groups


def verify(root: Path) -> dict[str, int]:
    """``{"images": n, "groups": scenes}``; raises DataNotFoundError if nothing is there."""
    _, groups = load_groups(Path(root))
    return {"images": sum(len(g) for g in groups), "groups": len(groups)}
