"""ILSVRC2012 validation set: the statistics pool of ``synthetic`` and ``realworld``.

Expected tree (``root`` = ``<data-root>/imagenet``)::

    imagenet/
      val/
        n01440764/ILSVRC2012_val_00000293.JPEG
        n01440764/...
        ...                      1,000 class folders (WordNet ids), 50,000 images in all
      train/                     optional: only ``sslinv pretrain`` reads it
      ILSVRC2012_img_val.tar     optional: the archives may stay here (harmless)

Read with ``ImageFolder`` semantics (class index = sorted folder name), as the reference
does; the invariance measures do not use the labels. ImageNet needs a registered
account: ``sslinv fetch-data imagenet`` prints what to download, and
``sslinv fetch-data imagenet --from DIR`` verifies the archives and sorts val into the
class folders. This module never writes into the data folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from sslinv.data.folder import IMG_EXTENSIONS
from sslinv.errors import DataNotFoundError

__all__ = ["DIRNAME", "EXPECTED", "val_dir", "verify"]

DIRNAME = "imagenet"
#: Counts of the full validation set; ``verify`` reports what is there.
EXPECTED = {"images": 50_000, "classes": 1_000}

_HINT = (
    "ImageNet needs a manual download: run `sslinv fetch-data imagenet` for what to "
    "download, then `sslinv fetch-data imagenet --from DIR` to verify and sort it"
)


def val_dir(root: Path) -> Path:
    """``<root>/val``: the ImageFolder tree of the validation images."""
    return Path(root) / "val"


def verify(root: Path) -> dict[str, int]:
    """Check ``<root>/val/<class>/*.JPEG``; return ``{"images": n, "classes": c}``.

    Raises DataNotFoundError (naming the path and ``sslinv fetch-data imagenet``) when
    val/ is missing or empty, still holds unsorted images directly inside, or has an
    empty class folder.
    """
    val = val_dir(root)
    if not val.is_dir():
        raise DataNotFoundError(
            f"ImageNet validation set not found under {val} (expected "
            f"val/<wnid>/ILSVRC2012_val_NNNNNNNN.JPEG). {_HINT}."
        )
    images = classes = 0
    loose = []
    empty = []
    with os.scandir(val) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                with os.scandir(entry.path) as files:
                    n = sum(
                        1 for f in files
                        if not f.name.startswith(".") and f.name.lower().endswith(IMG_EXTENSIONS)
                    )
                if n == 0:
                    empty.append(entry.name)
                images += n
                classes += 1
            elif entry.name.lower().endswith(IMG_EXTENSIONS):
                loose.append(entry.name)
    if loose:
        raise DataNotFoundError(
            f"{val} holds {len(loose)} unsorted image(s) directly inside (e.g. {loose[0]}): the "
            "validation images must sit in one folder per class. Sort them with: "
            f"sslinv fetch-data imagenet --from {val} --from <devkit> --force"
        )
    if classes == 0:
        raise DataNotFoundError(f"No class folders under {val}. {_HINT}.")
    if empty:
        raise DataNotFoundError(
            f"{len(empty)} class folder(s) under {val} hold no images (e.g. {empty[0]}): the "
            f"set is incomplete. {_HINT}."
        )
    return {"images": images, "classes": classes}
