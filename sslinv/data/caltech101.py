"""Caltech-101, laid out as torchvision's ``Caltech101(root, download=True)`` leaves it
(the layout the reference reads).

Expected tree under ``<data-root>/Caltech101``::

    Caltech101/
      caltech101/
        101_ObjectCategories/
          BACKGROUND_Google/image_0001.jpg ...
          Faces/image_0001.jpg ...
          ...                                  102 class folders, 9,144 images
          yin_yang/image_0060.jpg
      train.txt, test.txt                      optional: published split files

Classes are the 102 folders in sorted order (``BACKGROUND_Google`` = 0, ... ``yin_yang``
= 101), as ``ImageFolder`` numbers them and as the published split files label them;
``BACKGROUND_Google`` counts as a class, as in the reference (102 classes).

Split (protocol section 5: 30 training images per class, the rest test):

- default: the split files ``<root>/train.txt`` / ``test.txt`` when both are present,
  as the reference reads them (``sslinv fetch-data Caltech101`` installs the files of
  linusericsson/ssl-transfer that the reference's authors used there). ``split_dir``
  names another folder holding them. One ``<class>/<file> <label>`` per line, paths
  relative to ``101_ObjectCategories``; LF or CRLF. Lines are used as they are,
  duplicates included (the 2021 version of that ``train.txt`` drew with replacement:
  3,060 lines, 2,416 distinct images).
- fallback, without split files: derived in memory from ``seed``: per class, in folder
  order, 30 *distinct* images drawn with ``numpy.random.RandomState(seed)`` (``choice``
  without replacement, sorted); every other image is test. A warning says so, and the
  result file records the split's ``source``. Nothing is written into the data folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from sslinv.errors import DataNotFoundError, UsageError

NAME = "caltech101"
DIRNAME = "Caltech101"
IMAGES = Path("caltech101") / "101_ObjectCategories"
NUM_CLASSES = 102
TRAIN_PER_CLASS = 30
EXPECTED = {"images": 9144, "classes": 102}
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

__all__ = ["DIRNAME", "EXPECTED", "load", "read_split_files", "scan", "seeded_split", "verify"]


def _missing(root: Path, what: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"Dataset Caltech101 not found under {root} ({what}; expected "
        f"{root / IMAGES}/<class>/image_NNNN.jpg for the 102 class folders). "
        "Run: sslinv fetch-data Caltech101"
    )


def scan(root: Path) -> tuple[list[str], list[str], np.ndarray]:
    """``(classes, relative paths, labels)`` in ``ImageFolder`` order (classes sorted,
    files sorted within a class; paths relative to ``101_ObjectCategories``)."""
    root = Path(root)
    folder = root / IMAGES
    if not folder.is_dir():
        raise _missing(root, f"no folder {IMAGES}")
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    if len(classes) != NUM_CLASSES:
        raise _missing(root, f"found {len(classes)} of the {NUM_CLASSES} class folders")
    files: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        names = sorted(
            e.name for e in os.scandir(folder / cls)
            if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(IMG_EXTENSIONS)
        )
        if not names:
            raise _missing(root, f"class folder {cls} has no images")
        files += [f"{cls}/{n}" for n in names]
        labels += [label] * len(names)
    return classes, files, np.asarray(labels, dtype=np.int64)


def seeded_split(labels: np.ndarray, seed: int = 0, per_class: int = TRAIN_PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``: ``per_class`` distinct images per class (seeded), the rest."""
    rng = np.random.RandomState(seed)
    train = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) <= per_class:
            raise UsageError(
                f"Caltech101 class {int(c)} has only {len(idx)} images; the protocol's split "
                f"takes {per_class} per class for training and needs at least one more for "
                "testing. Check the dataset folder, or pass --split-dir with split files."
            )
        train.append(np.sort(rng.choice(idx, per_class, replace=False)))
    train_idx = np.concatenate(train)
    test_mask = np.ones(len(labels), dtype=bool)
    test_mask[train_idx] = False
    return train_idx, np.flatnonzero(test_mask)


def read_split_files(split_dir: Path, root: Path, split: str) -> tuple[list[str], np.ndarray]:
    """``(relative paths, labels)`` listed in ``<split_dir>/<split>.txt`` (``train``/``test``)."""
    path = Path(split_dir) / f"{split}.txt"
    if not path.is_file():
        raise DataNotFoundError(
            f"Split file {path} not found. --split-dir must hold train.txt and test.txt "
            "(one '<class>/<file> <label>' per line), e.g. caltech101-splits/ of "
            "linusericsson/ssl-transfer."
        )
    files, labels = [], []
    for num, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(" ", 1)
        try:
            files.append(parts[0].strip())
            labels.append(int(parts[1]))
        except (IndexError, ValueError):
            raise DataNotFoundError(
                f"{path}, line {num}: expected '<class>/<file> <label>', got {line!r}."
            ) from None
    if not files:
        raise DataNotFoundError(f"Split file {path} is empty.")
    folder = Path(root) / IMAGES
    missing = [f for f in dict.fromkeys(files) if not (folder / f).is_file()]
    if missing:
        raise DataNotFoundError(
            f"{len(missing)} image(s) listed in {path} are not under {folder} (first: "
            f"{missing[0]}). Run: sslinv fetch-data Caltech101"
        )
    return files, np.asarray(labels, dtype=np.int64)


def _fingerprint(folder: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for rel in files:
        st = os.stat(folder / rel)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load(root: Path, split: str, seed: int = 0, split_dir: Path | None = None):
    """The downstream split ``trainval`` (30 per class) or ``test`` (the rest)."""
    from sslinv.data.downstream import Split

    if split not in ("trainval", "test"):
        raise ValueError(f"split must be 'trainval' or 'test', not {split!r}")
    root = Path(root)
    folder = root / IMAGES
    if split_dir is None and all((root / f"{name}.txt").is_file() for name in ("train", "test")):
        split_dir = root  # the reference's split files, where fetch-data installs them
    if split_dir is not None:
        if not folder.is_dir():
            raise _missing(root, f"no folder {IMAGES}")
        files, labels = read_split_files(split_dir, root, "train" if split == "trainval" else "test")
        source = f"split files {Path(split_dir).resolve()}"
    else:
        _classes, all_files, all_labels = scan(root)
        train, test = seeded_split(all_labels, seed)
        idx = train if split == "trainval" else test
        files, labels = [all_files[i] for i in idx], all_labels[idx]
        source = f"seeded split (seed {seed}, {TRAIN_PER_CLASS} per class)"
        if split == "trainval":
            import warnings

            warnings.warn(
                f"Caltech101: no train.txt / test.txt in {root}, so the split is sslinv's seeded draw "
                f"(seed {seed}, {TRAIN_PER_CLASS} per class), not the reference's split files. "
                "Run: sslinv fetch-data Caltech101 to install them (or pass --split-dir).",
                stacklevel=2,
            )
    return Split(
        dataset=NAME, split=split, targets=labels, files=tuple(folder / f for f in files),
        fingerprint=_fingerprint(folder, files), source=source,
    )


def verify(root: Path) -> dict[str, int]:
    """Counts of images and classes; raises DataNotFoundError naming the path and fix."""
    root = Path(root)
    if not root.is_dir():
        raise _missing(root, "no such folder")
    classes, files, _ = scan(root)
    return {"images": len(files), "classes": len(classes)}
