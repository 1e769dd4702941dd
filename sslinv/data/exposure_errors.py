"""Exposure Errors (Afifi et al., CVPR 2021): MIT-Adobe FiveK scenes rendered at five
exposure values, with the expert-retouched ground truth.

Expected on-disk tree, either the reference's (one split's two folders directly)::

    <data-root>/ExposureErrors/
        GT_IMAGES/a0001-jmac_DSC1459.jpg ...
        INPUT_IMAGES/a0001-jmac_DSC1459_N1.5.JPG  ..._N1.JPG  ..._0.JPG  ..._P1.JPG  ..._P1.5.JPG

or the official split archives unpacked as they are::

    <data-root>/ExposureErrors/training/{GT_IMAGES,INPUT_IMAGES}/
    <data-root>/ExposureErrors/validation/{GT_IMAGES,INPUT_IMAGES}/
    <data-root>/ExposureErrors/testing/INPUT_IMAGES/     (no ground truth: not used)

Every split folder that has both ``GT_IMAGES`` and ``INPUT_IMAGES`` is used. Which split
the paper used is not stated; put only that split's folders under the root to match it.

One group per ground-truth image: the ground truth plus every input of the same FiveK
scene (the id before the first ``-``, e.g. ``a0001``, as the reference matches it), so 6
views. Extensions are matched case-insensitively (the reference's globs are
case-sensitive: ``*.jpg`` for ground truth, ``*.JPG`` for inputs). Scenes with no input
image are left out (a single view has no pairs).
"""

from __future__ import annotations

import re
from pathlib import Path

from sslinv.data.realworld import Group, files_matching, not_found, rel, require_dir, subdirs

DIRNAME = "ExposureErrors"
VIEWS = 6
GT, INPUT = "GT_IMAGES", "INPUT_IMAGES"
_FILE = re.compile(r"^(?P<stem>.+)\.(?:jpe?g|png|tiff?)$", re.IGNORECASE)
_EXPECT = "GT_IMAGES/ and INPUT_IMAGES/ directly in it, or training/ and validation/ holding them"


def _scene(stem: str, is_input: bool) -> str:
    if "-" in stem:
        return stem.split("-", 1)[0]
    # No FiveK id: an input is its ground truth's stem plus "_<EV>" (gtRead.m).
    return stem.rsplit("_", 1)[0] if is_input else stem


def _splits(root: Path) -> list[tuple[str, Path]]:
    if (root / GT).is_dir() and (root / INPUT).is_dir():
        return [("", root)]
    return [(d.name, d) for d in subdirs(root) if (d / GT).is_dir() and (d / INPUT).is_dir()]


def load_groups(root: Path) -> tuple[str, list[Group]]:
    """``(layout, groups)``: per scene, the ground truth first, then the inputs by name."""
    root = require_dir(DIRNAME, root, _EXPECT)
    splits = _splits(root)
    if not splits:
        raise not_found(DIRNAME, root, _EXPECT, detail=f"No {GT}/ with {INPUT}/ under {root}")
    groups = []
    for split, folder in splits:
        inputs: dict[str, list[str]] = {}
        for name, m in files_matching(folder / INPUT, _FILE):
            inputs.setdefault(_scene(m.group("stem"), True), []).append(rel(root, folder / INPUT / name))
        for name, m in files_matching(folder / GT, _FILE):
            scene = _scene(m.group("stem"), False)
            views = inputs.get(scene, [])
            if views:
                prefix = f"{split}/" if split else ""
                groups.append(Group(prefix + scene, (rel(root, folder / GT / name), *views)))
    if not groups:
        raise not_found(
            DIRNAME, root, _EXPECT,
            detail=f"No ground-truth image under {root} has input images of the same scene",
        )
    layout = "reference (GT_IMAGES/, INPUT_IMAGES/)" if splits[0][0] == "" else (
        "official archives (" + ", ".join(s for s, _ in splits) + ")"
    )
    return layout, groups


def verify(root: Path) -> dict[str, int]:
    """``{"images": n, "groups": scenes}``; raises DataNotFoundError if nothing is there."""
    _, groups = load_groups(Path(root))
    return {"images": sum(len(g) for g in groups), "groups": len(groups)}
