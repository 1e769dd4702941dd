"""Flickr1024 (Wang et al., ICCVW 2019): 1,024 stereo image pairs.

Expected on-disk tree (the reference's: split folders holding the pairs)::

    <data-root>/Flickr1024/Train/0001_L.png  0001_R.png ... 0800_R.png
    <data-root>/Flickr1024/Validation/0001_L.png ...
    <data-root>/Flickr1024/Test/0001_L.png ...

Any sub-folder names work (every one is used, as in the reference). Pairs placed
directly in ``<data-root>/Flickr1024/`` (an archive without a top folder) are found too;
the reference would miss them. One group per pair: ``<stem>_L.png`` and
``<stem>_R.png``. A left image without its right one is an incomplete dataset (error).
"""

from __future__ import annotations

import re
from pathlib import Path

from sslinv.data.realworld import Group, files_matching, not_found, rel, require_dir, subdirs

DIRNAME = "Flickr1024"
VIEWS = 2
EXPECTED = {"pairs": 1024}
_LEFT = re.compile(r"^(?P<stem>.+)_L\.png$", re.IGNORECASE)
_RIGHT = re.compile(r"^(?P<stem>.+)_R\.png$", re.IGNORECASE)
_EXPECT = "<split>/NNNN_L.png with NNNN_R.png beside it, e.g. Train/0001_L.png"


def load_groups(root: Path) -> tuple[str, list[Group]]:
    """``(layout, groups)``: one (left, right) group per pair, by folder then name."""
    root = require_dir(DIRNAME, root, _EXPECT)
    groups, missing, layouts = [], [], []
    for folder in [root, *subdirs(root)]:
        rights = {m.group("stem"): name for name, m in files_matching(folder, _RIGHT)}
        lefts = files_matching(folder, _LEFT)
        if lefts:
            layouts.append("flat" if folder == root else folder.name)
        for name, m in lefts:
            right = rights.get(m.group("stem"))
            if right is None:
                missing.append(folder / name)
                continue
            prefix = "" if folder == root else f"{folder.name}/"
            groups.append(Group(prefix + m.group("stem"), (rel(root, folder / name), rel(root, folder / right))))
    if missing:
        raise not_found(
            DIRNAME, root, _EXPECT,
            detail=f"Flickr1024 under {root} is incomplete: {len(missing)} left image(s) have no "
            f"right image, e.g. {missing[0]}",
        )
    if not groups:
        raise not_found(DIRNAME, root, _EXPECT, detail=f"No Flickr1024 stereo pairs (*_L.png) under {root}")
    return "folders: " + ", ".join(layouts), groups


def verify(root: Path) -> dict[str, int]:
    """``{"pairs": n}``; raises DataNotFoundError if missing or a pair is incomplete."""
    _, groups = load_groups(Path(root))
    return {"pairs": len(groups)}
