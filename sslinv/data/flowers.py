"""Oxford 102 Flowers, laid out as the reference reads it (files directly under the
dataset folder, not torchvision's ``flowers-102/`` subfolder).

Expected tree under ``<data-root>/Flowers``::

    Flowers/
      jpg/image_00001.jpg ... image_08189.jpg   (5-digit, 1-based)
      imagelabels.mat                           labels: 1 x 8189, values 1..102
      setid.mat                                 trnid, valid, tstid: 1-based image ids

Splits: train 1,020, val 1,020, test 6,149. Downstream protocol: trainval = ``trnid`` +
``valid`` (in that order), test = ``tstid``; 102 classes (label - 1); mean per-class
accuracy.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sslinv.cache import stat_fingerprint
from sslinv.errors import DataNotFoundError

NAME = "flowers"
DIRNAME = "Flowers"
NUM_CLASSES = 102
EXPECTED = {"images": 8189, "train": 1020, "val": 1020, "test": 6149}
SPLIT_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}

__all__ = ["DIRNAME", "EXPECTED", "image_name", "load", "read_meta", "verify"]


def _missing(root: Path, what: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"Dataset Flowers not found under {root} ({what}; expected {root}/jpg/image_00001.jpg "
        f"..., {root}/imagelabels.mat and {root}/setid.mat). Run: sslinv fetch-data Flowers"
    )


def image_name(image_id: int) -> str:
    return f"image_{int(image_id):05d}.jpg"


def read_meta(root: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``labels`` (0-based, indexed by image id - 1) and the 1-based ids per split."""
    from scipy.io import loadmat

    root = Path(root)
    if not root.is_dir():
        raise _missing(root, "no such folder")
    out = {}
    for name in ("imagelabels.mat", "setid.mat"):
        path = root / name
        if not path.is_file():
            raise _missing(root, f"{name} is missing")
        try:
            out[name] = loadmat(str(path))
        except (OSError, ValueError, TypeError) as exc:
            raise DataNotFoundError(
                f"Cannot read {path} ({exc}). Delete it and run: sslinv fetch-data Flowers"
            ) from None
    try:
        labels = np.asarray(out["imagelabels.mat"]["labels"]).reshape(-1).astype(np.int64) - 1
        ids = {s: np.asarray(out["setid.mat"][k]).reshape(-1).astype(np.int64) for s, k in SPLIT_KEYS.items()}
    except KeyError as exc:
        raise DataNotFoundError(
            f"{root} has a .mat file without the key {exc} (expected 'labels' in "
            "imagelabels.mat and 'trnid', 'valid', 'tstid' in setid.mat). Run: sslinv fetch-data Flowers"
        ) from None
    for s, v in ids.items():
        if len(v) and (v.min() < 1 or v.max() > len(labels)):
            raise DataNotFoundError(f"setid.mat under {root} lists {s} image ids outside 1..{len(labels)}.")
    return labels, ids


def _check_images(root: Path, ids: np.ndarray) -> None:
    folder = root / "jpg"
    if not folder.is_dir():
        raise _missing(root, "no folder jpg")
    present = {e.name for e in os.scandir(folder)}
    missing = [image_name(i) for i in ids if image_name(i) not in present]
    if missing:
        raise _missing(root, f"{len(missing)} image(s) listed in setid.mat are missing, e.g. jpg/{missing[0]}")


def load(root: Path, split: str):
    """The downstream split ``trainval`` (train + val) or ``test``."""
    from sslinv.data.downstream import Split

    root = Path(root)
    labels, ids = read_meta(root)
    if split == "trainval":
        chosen = np.concatenate([ids["train"], ids["val"]])
    elif split == "test":
        chosen = ids["test"]
    else:
        raise ValueError(f"split must be 'trainval' or 'test', not {split!r}")
    _check_images(root, chosen)
    files = tuple(root / "jpg" / image_name(i) for i in chosen)
    return Split(dataset=NAME, split=split, targets=labels[chosen - 1], files=files,
                 fingerprint=stat_fingerprint([p.name for p in files], root=root / "jpg"), source="setid.mat")


def verify(root: Path) -> dict[str, int]:
    """Counts of images and of each split; raises DataNotFoundError naming the path and fix."""
    root = Path(root)
    labels, ids = read_meta(root)
    _check_images(root, np.concatenate(list(ids.values())))
    return {"images": int(len(labels)), **{s: int(len(v)) for s, v in ids.items()}}
