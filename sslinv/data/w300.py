"""300W (iBUG 300 Faces In-the-Wild, the 01_Indoor / 02_Outdoor release): 68 facial
landmarks per face.

Expected tree under ``<data-root>/300W`` (the iBUG ``300w.zip`` parts, or the
``300W/`` folder of the Oxford DVE mirror)::

    300W/
      01_Indoor/indoor_001.png, indoor_001.pts ... indoor_300.png, indoor_300.pts
      02_Outdoor/outdoor_001.png, outdoor_001.pts ... outdoor_300.png, outdoor_300.pts

A ``.pts`` file is ``version: 1`` / ``n_points: 68`` / ``{`` / 68 lines ``x y`` / ``}``.
Images and landmark files are paired by name (the reference pairs two sorted lists by
position, which silently misaligns if one file is missing; a missing partner is an
error here).

Protocol (mode ``indoor+outdoor``, 600 faces): the reference writes a seeded split into
the data folder on first use (``np.random.seed(0); np.random.shuffle(arange(600))``,
then 30 / 30 / 40 %: 180 train, 180 valid, 240 test); the same permutation is computed
here in memory and nothing is written. trainval = train + valid, test = test.

Landmark geometry (as the reference): crop the square box whose top-left corner is the
smallest landmark x and y and whose side is ``max(ceil(x_max - x_min), ceil(y_max -
y_min))`` (PIL rounds the box to whole pixels and pads outside the image with black);
landmarks are shifted by the (unrounded) corner; then the clean pipeline
(resize 224, centre crop 224) maps them into the view: targets are 136 numbers
``x0, y0, ..., x67, y67`` in pixels of the 224 x 224 view. Coordinates keep the
annotation's 1-based convention, as in the reference (R^2 does not depend on it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sslinv.errors import DataNotFoundError

NAME = "300w"
DIRNAME = "300W"
SUBSETS = ("01_Indoor", "02_Outdoor")
NUM_POINTS = 68
SPLIT_SIZES = (0.3, 0.3, 0.4)
EXPECTED = {"images": 600, "01_Indoor": 300, "02_Outdoor": 300}

__all__ = ["DIRNAME", "EXPECTED", "box_crop", "load", "read_pts", "scan", "seeded_split", "verify"]


def _missing(root: Path, what: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"Dataset 300W not found under {root} ({what}; expected {root}/01_Indoor/indoor_001.png "
        f"+ indoor_001.pts ... and {root}/02_Outdoor/outdoor_001.png + .pts ...). "
        "Run: sslinv fetch-data 300W"
    )


def read_pts(path: Path) -> np.ndarray:
    """The ``(n_points, 2)`` landmarks of a ``.pts`` file (the lines between ``{`` and ``}``)."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
    try:
        start, end = lines.index("{"), lines.index("}")
        points = np.array([[float(v) for v in ln.split()] for ln in lines[start + 1 : end] if ln], dtype=np.float64)
    except ValueError:
        raise DataNotFoundError(f"{path} is not a .pts landmark file (version / n_points / {{ x y ... }}).") from None
    declared = [ln for ln in lines[:start] if ln.lower().startswith("n_points")]
    if points.ndim != 2 or points.shape[1] != 2 or (declared and int(declared[0].split(":")[1]) != len(points)):
        raise DataNotFoundError(f"{path} does not hold the x y pairs its header declares.")
    return points


def scan(root: Path) -> tuple[list[Path], list[Path]]:
    """Sorted images (``01_Indoor`` first) and their ``.pts`` files, paired by name."""
    root = Path(root)
    if not root.is_dir():
        raise _missing(root, "no such folder")
    images: list[Path] = []
    for sub in SUBSETS:
        folder = root / sub
        if not folder.is_dir():
            raise _missing(root, f"no folder {sub}")
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
        if not found:
            raise _missing(root, f"no .png images in {sub}")
        images += found
    pts = [p.with_suffix(".pts") for p in images]
    lonely = [p for p in pts if not p.is_file()]
    if lonely:
        raise _missing(root, f"{len(lonely)} image(s) without a landmark file, e.g. {lonely[0].relative_to(root)}")
    return images, pts


def seeded_split(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The reference's ``indoor+outdoor_{train,valid,test}.npy`` indices, in memory."""
    idx = np.arange(n)
    np.random.RandomState(seed).shuffle(idx)
    a = int(n * SPLIT_SIZES[0])
    b = int(n * sum(SPLIT_SIZES[:2]))
    return {"train": idx[:a], "valid": idx[a:b], "test": idx[b:]}


def box_crop(points: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray, tuple[int, int]]:
    """The landmark box of one face: PIL crop box, landmarks relative to its corner, and
    the size ``(w, h)`` of the cropped image (PIL rounds the box corners)."""
    x1, y1 = points.min(0)
    x2, y2 = points.max(0)
    side = max(math.ceil(x2 - x1), math.ceil(y2 - y1))
    box = (float(x1), float(y1), float(x1 + side), float(y1 + side))
    size = (int(round(box[2])) - int(round(box[0])), int(round(box[3])) - int(round(box[1])))
    return box, points - np.array([x1, y1]), size


def load(root: Path, split: str, seed: int = 0):
    """The downstream split ``trainval`` (train + valid) or ``test``."""
    from sslinv.data.downstream import Split, stat_fingerprint

    images, pts = scan(root)
    parts = seeded_split(len(images), seed)
    if split == "trainval":
        idx = np.concatenate([parts["train"], parts["valid"]])
    elif split == "test":
        idx = parts["test"]
    else:
        raise ValueError(f"split must be 'trainval' or 'test', not {split!r}")
    boxes, targets, sizes = [], [], []
    for i in idx:
        points = read_pts(pts[i])
        if len(points) != NUM_POINTS:
            raise DataNotFoundError(f"{pts[i]} has {len(points)} landmarks, not {NUM_POINTS}.")
        box, rel, size = box_crop(points)
        boxes.append(box)
        targets.append(rel.reshape(-1))
        sizes.append(size)
    files = tuple(images[i] for i in idx)
    boxes_arr = np.asarray(boxes, dtype=np.float64)
    return Split(
        dataset=NAME, split=split, targets=np.asarray(targets, dtype=np.float64), files=files,
        boxes=boxes_arr, sizes=np.asarray(sizes, dtype=np.int64),
        fingerprint=stat_fingerprint(files + tuple(pts[i] for i in idx), boxes_arr.tobytes()),
        source=f"seeded split (seed {seed}, 30/30/40, indoor+outdoor)",
    )


def verify(root: Path) -> dict[str, int]:
    """Counts of faces (total and per folder); raises DataNotFoundError naming the path and fix."""
    images, _ = scan(root)
    counts = {"images": len(images)}
    for sub in SUBSETS:
        counts[sub] = sum(1 for p in images if p.parent.name == sub)
    return counts
