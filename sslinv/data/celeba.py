"""CelebA, aligned and cropped images with their 5 landmarks, laid out as torchvision's
``CelebA(root, download=True)`` leaves it (the layout the reference reads).

Expected tree under ``<data-root>/CelebA``::

    CelebA/
      celeba/
        img_align_celeba/000001.jpg ... 202599.jpg   (178 x 218)
        list_eval_partition.txt          "<image> <0|1|2>" (train / valid / test), no header
        list_landmarks_align_celeba.txt  line 1: count; line 2: the 10 column names;
                                         then "<image> lefteye_x lefteye_y ... rightmouth_y"
        (list_attr_celeba.txt, identity_CelebA.txt, list_bbox_celeba.txt: not needed here)

Splits: train 162,770 / valid 19,867 / test 19,962. Protocol: trainval = train + valid,
test = test; targets are the 5 aligned landmarks (10 numbers, ``x, y`` per point)
mapped by the clean pipeline (resize 224, centre crop 224) into the 224 x 224 view:
``x' = (x - (w - m) / 2) / m * 224`` with ``m = min(w, h)``, as the reference. The
reference then stores them in an integer tensor, truncating every coordinate to a whole
pixel; sslinv keeps them as floats.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sslinv.errors import DataNotFoundError

NAME = "celeba"
DIRNAME = "CelebA"
FOLDER = "celeba"
IMAGES = "img_align_celeba"
PARTITION = "list_eval_partition.txt"
LANDMARKS = "list_landmarks_align_celeba.txt"
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}
EXPECTED = {"train": 162_770, "valid": 19_867, "test": 19_962}

__all__ = ["DIRNAME", "EXPECTED", "load", "read_landmarks", "read_partition", "verify"]


def _missing(root: Path, what: str) -> DataNotFoundError:
    base = root / FOLDER
    return DataNotFoundError(
        f"Dataset CelebA not found under {root} ({what}; expected {base}/{IMAGES}/000001.jpg ..., "
        f"{base}/{PARTITION} and {base}/{LANDMARKS}). Run: sslinv fetch-data CelebA"
    )


def read_partition(root: Path) -> tuple[list[str], np.ndarray]:
    """Image names and their partition codes (0 train, 1 valid, 2 test), in file order."""
    path = Path(root) / FOLDER / PARTITION
    if not path.is_file():
        raise _missing(Path(root), f"{FOLDER}/{PARTITION} is missing")
    names, codes = [], []
    for num, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataNotFoundError(f"{path}, line {num}: expected '<image> <0|1|2>', got {line!r}.")
        names.append(parts[0])
        codes.append(int(parts[1]))
    return names, np.asarray(codes, dtype=np.int64)


def read_landmarks(root: Path) -> dict[str, np.ndarray]:
    """Image name -> the 10 aligned landmark coordinates."""
    path = Path(root) / FOLDER / LANDMARKS
    if not path.is_file():
        raise _missing(Path(root), f"{FOLDER}/{LANDMARKS} is missing")
    out: dict[str, np.ndarray] = {}
    for num, line in enumerate(path.read_text().splitlines()[2:], 3):  # 1: count, 2: header
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 11:
                raise ValueError
            out[parts[0]] = np.asarray(parts[1:], dtype=np.float64)
        except ValueError:
            raise DataNotFoundError(
                f"{path}, line {num}: expected an image name and 10 numbers, got {line!r}."
            ) from None
    return out


def load(root: Path, split: str):
    """The downstream split ``trainval`` (train + valid) or ``test``."""
    from sslinv.data.downstream import Split, stat_fingerprint

    root = Path(root)
    if not (root / FOLDER / IMAGES).is_dir():
        raise _missing(root, f"no folder {FOLDER}/{IMAGES}")
    names, codes = read_partition(root)
    if split == "trainval":
        # train first, then valid, as the reference's ConcatDataset([train, valid])
        order = np.concatenate([np.flatnonzero(codes == SPLIT_CODES["train"]),
                                np.flatnonzero(codes == SPLIT_CODES["valid"])])
    elif split == "test":
        order = np.flatnonzero(codes == SPLIT_CODES["test"])
    else:
        raise ValueError(f"split must be 'trainval' or 'test', not {split!r}")
    marks = read_landmarks(root)
    chosen = [names[i] for i in order]
    missing = [n for n in chosen if n not in marks]
    if missing:
        raise DataNotFoundError(f"{LANDMARKS} under {root / FOLDER} has no landmarks for {len(missing)} image(s), e.g. {missing[0]}.")
    _check_images(root, chosen)
    files = tuple(root / FOLDER / IMAGES / n for n in chosen)
    return Split(
        dataset=NAME, split=split, targets=np.stack([marks[n] for n in chosen]) if chosen else np.zeros((0, 10)),
        files=files, sizes_from_files=True, fingerprint=stat_fingerprint(files),
        source=PARTITION,
    )


def _check_images(root: Path, names: list[str]) -> None:
    present = {e.name for e in os.scandir(root / FOLDER / IMAGES)}
    missing = [n for n in names if n not in present]
    if missing:
        raise _missing(root, f"{len(missing)} image(s) listed in {PARTITION} are missing, e.g. {IMAGES}/{missing[0]}")


def verify(root: Path) -> dict[str, int]:
    """Images per partition; raises DataNotFoundError naming the path and fix."""
    root = Path(root)
    if not (root / FOLDER / IMAGES).is_dir():
        raise _missing(root, f"no folder {FOLDER}/{IMAGES}")
    names, codes = read_partition(root)
    read_landmarks(root)
    _check_images(root, names)
    return {s: int((codes == c).sum()) for s, c in SPLIT_CODES.items()}
