"""RealBlur (Rim et al., ECCV 2020), RealBlur-J: scenes photographed sharp and blurred
by camera shake at the same time.

Expected on-disk tree (the reference's)::

    <data-root>/RealBlur/RealBlur-J_ECC_IMCORR_centroid_itensity_ref/
        scene001/gt/gt_1.png    scene001/blur/blur_1.png ...
        ...
        scene244_reflect/gt/...

("itensity" is the real folder name.) ``RealBlur.tar.gz`` unpacked as it is gives this
under ``<data-root>/RealBlur/``; a copy one folder deeper (``RealBlur/<top>/RealBlur-J_...``)
is found too. The RealBlur-R folder and the list files are not used. One group per
(sharp, blurred) pair, matched by scene and number (``gt_7.png`` with ``blur_7.png``);
the reference pairs the two sorted lists by position, which is the same when every
image has its partner. An image without one is an incomplete dataset (error).
"""

from __future__ import annotations

import re
from pathlib import Path

from sslinv.data.realworld import Group, files_matching, natural_key, not_found, rel, require_dir, subdirs

DIRNAME = "RealBlur"
VIEWS = 2
JPEG_DIR = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"
_FILE = re.compile(r"^(?:gt|blur)?_?(?P<key>.+)\.png$", re.IGNORECASE)
_EXPECT = f"{JPEG_DIR}/scene<NNN>/gt/gt_<M>.png with blur/blur_<M>.png"


def _jpeg_dir(root: Path) -> Path | None:
    for folder in [root / JPEG_DIR, *(d / JPEG_DIR for d in subdirs(root))]:
        if folder.is_dir():
            return folder
    return None


def load_groups(root: Path) -> tuple[str, list[Group]]:
    """``(layout, groups)``: one (sharp, blurred) group per pair, by scene then number."""
    root = require_dir(DIRNAME, root, _EXPECT)
    folder = _jpeg_dir(root)
    if folder is None:
        raise not_found(DIRNAME, root, _EXPECT, detail=f"No {JPEG_DIR}/ under {root}")
    groups, unmatched = [], []
    for scene in subdirs(folder):
        sharp = {m.group("key"): n for n, m in files_matching(scene / "gt", _FILE)}
        blur = {m.group("key"): n for n, m in files_matching(scene / "blur", _FILE)}
        unmatched += [scene / "gt" / sharp[k] for k in sharp.keys() - blur.keys()]
        unmatched += [scene / "blur" / blur[k] for k in blur.keys() - sharp.keys()]
        for key in sorted(sharp.keys() & blur.keys(), key=natural_key):
            groups.append(Group(
                f"{scene.name}/{key}",
                (rel(root, scene / "gt" / sharp[key]), rel(root, scene / "blur" / blur[key])),
            ))
    if unmatched:
        raise not_found(
            DIRNAME, root, _EXPECT,
            detail=f"RealBlur under {root} is incomplete: {len(unmatched)} image(s) have no "
            f"sharp/blurred partner, e.g. {sorted(unmatched)[0]}",
        )
    if not groups:
        raise not_found(DIRNAME, root, _EXPECT, detail=f"No RealBlur-J pairs under {folder}")
    layout = "reference" if folder.parent == root else f"archive folder {folder.parent.name}/"
    return layout, groups


def verify(root: Path) -> dict[str, int]:
    """``{"pairs": n, "scenes": m}``; raises DataNotFoundError if missing or incomplete."""
    _, groups = load_groups(Path(root))
    return {"pairs": len(groups), "scenes": len({g.name.split("/")[0] for g in groups})}
