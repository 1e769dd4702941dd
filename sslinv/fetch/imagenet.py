"""ImageNet validation set: the manual path (``sslinv fetch-data imagenet --from ...``).

ImageNet needs a registered account, so sslinv cannot download it. The user downloads
``ILSVRC2012_img_val.tar`` and ``ILSVRC2012_devkit_t12.tar.gz`` (checksums in
:mod:`sslinv.fetch.records`), and this module verifies them and sorts the 50,000 flat
validation images into one folder per class, the layout ``ImageFolder`` and the
reference read::

    imagenet/val/<wnid>/ILSVRC2012_val_NNNNNNNN.JPEG

Facts as in torchvision's ``imagenet.py``: the devkit's ``data/meta.mat`` holds the
``synsets`` struct; the 1,000 leaf classes are the entries with ``num_children == 0``,
each with its ``ILSVRC2012_ID`` and ``WNID``; ``data/ILSVRC2012_validation_ground_truth.txt``
holds one ``ILSVRC2012_ID`` per validation image, in image order. torchvision assigns the
i-th label to the i-th sorted file name; sslinv assigns line ``k`` to image number ``k``
(the 8-digit number in the name), which is the same for the full set and also right for
a subset. The images are sorted while the tar is read (one pass, no flat copy).

Accepted inputs (``--from``, repeatable; else the downloads folder, else the archives
placed in ``<data-root>/imagenet/`` as torchvision expects): the val tar or a folder of
the flat JPEGs; the devkit tar.gz or its unpacked folder.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from sslinv.errors import FetchError
from sslinv.fetch.extract import copy_tree, extract, safe_relpath, sniff
from sslinv.reporting import Reporter

__all__ = [
    "DEVKIT", "VAL_TAR", "Devkit", "find_devkit_dir", "install", "is_val_folder", "parse_devkit", "read_devkit",
]

VAL_TAR = "ILSVRC2012_img_val.tar"
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
META = "data/meta.mat"
GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$")


@dataclass(frozen=True)
class Devkit:
    """The devkit facts sslinv needs: WNID and words per class, WNID per val image."""

    wnid_words: dict[str, str]  # 1,000 leaf classes
    val_wnids: tuple[str, ...]  # val_wnids[k - 1] is the class of ILSVRC2012_val_{k:08d}


def parse_devkit(meta_mat: bytes, ground_truth: str, where: str = "the devkit") -> Devkit:
    """Parse ``meta.mat`` (bytes) and the ground-truth text into a :class:`Devkit`."""
    import numpy as np
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        synsets = scipy.io.loadmat(io.BytesIO(meta_mat), squeeze_me=True)["synsets"]
        ids = np.atleast_1d(synsets["ILSVRC2012_ID"])
        wnids = np.atleast_1d(synsets["WNID"])
        words = np.atleast_1d(synsets["words"])
        children = np.atleast_1d(synsets["num_children"])
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError, MatReadError, OSError) as e:
        raise FetchError(
            f"{where}: data/meta.mat has no readable 'synsets' struct ({type(e).__name__}: {e}). "
            f"Is it the ILSVRC2012 devkit ({DEVKIT})?"
        ) from None
    leaf = {int(i): (str(w), str(s)) for i, w, s, c in zip(ids, wnids, words, children) if int(c) == 0}
    if not leaf:
        raise FetchError(f"{where}: data/meta.mat lists no leaf classes (num_children == 0).")
    lines = [line.strip() for line in ground_truth.splitlines() if line.strip()]
    try:
        val = tuple(leaf[int(line)][0] for line in lines)
    except (KeyError, ValueError) as e:
        raise FetchError(
            f"{where}: the validation ground truth holds {e}, which is not a leaf class id of "
            "data/meta.mat. Is the devkit complete?"
        ) from None
    return Devkit({w: s for w, s in leaf.values()}, val)


def find_devkit_dir(folder: Path) -> Path | None:
    """The folder that holds ``data/meta.mat`` and the ground truth (the folder itself,
    or its ``ILSVRC2012_devkit_t12`` child)."""
    for cand in (folder, folder / "ILSVRC2012_devkit_t12"):
        if (cand / META).is_file() and (cand / GROUND_TRUTH).is_file():
            return cand
    return None


def read_devkit(source: Path) -> Devkit:
    """Read the devkit from its tar.gz or from its unpacked folder."""
    source = Path(source)
    if source.is_dir():
        found = find_devkit_dir(source)
        if found is None:
            raise FetchError(
                f"{source} is not an unpacked devkit: expected {META} and {GROUND_TRUTH} in it "
                "(or in its ILSVRC2012_devkit_t12 folder)."
            )
        return parse_devkit((found / META).read_bytes(), (found / GROUND_TRUTH).read_text(), str(source))
    sniff(source)  # a clear error for a file that is no archive at all
    meta = truth = None
    try:
        with tarfile.open(source, "r:*") as tar:
            for member in tar:
                rel = safe_relpath(member.name, source)
                if not member.isfile():
                    continue
                if rel.endswith(META) and meta is None:
                    meta = tar.extractfile(member).read()  # type: ignore[union-attr]
                elif rel.endswith(GROUND_TRUTH) and truth is None:
                    truth = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    except (tarfile.TarError, EOFError, OSError) as e:
        raise FetchError(f"{source} is damaged ({type(e).__name__}: {e}); download it again.") from e
    if meta is None or truth is None:
        raise FetchError(
            f"{source} lacks {META if meta is None else GROUND_TRUTH}: it is not the ILSVRC2012 "
            f"devkit ({DEVKIT}, from https://image-net.org/)."
        )
    return parse_devkit(meta, truth, str(source))


def _val_mapper(devkit: Devkit, skipped: list[str]):
    n = len(devkit.val_wnids)

    def mapper(rel: str) -> str | None:
        name = rel.rsplit("/", 1)[-1]
        m = VAL_NAME.match(name)
        if not m:
            skipped.append(rel)
            return None
        k = int(m.group(1))
        if not 1 <= k <= n:
            raise FetchError(
                f"{name} has no label: the devkit's ground truth lists {n} validation images. "
                "Are the val archive and the devkit from the same release (ILSVRC2012)?"
            )
        return f"val/{devkit.val_wnids[k - 1]}/{name}"

    return mapper


def install(val_source: Path, devkit_source: Path, staging: Path, reporter: Reporter) -> dict[str, int]:
    """Sort the validation images into ``staging/val/<wnid>/``; return counts."""
    devkit = read_devkit(devkit_source)
    skipped: list[str] = []
    mapper = _val_mapper(devkit, skipped)
    val_source = Path(val_source)
    if val_source.is_dir():
        n = copy_tree(val_source, staging, mapper, reporter, "sorting ImageNet val into class folders")
    else:
        n = extract(val_source, staging, mapper, reporter, "unpacking and sorting ImageNet val")
    if n == 0:
        raise FetchError(
            f"{val_source} holds no ILSVRC2012_val_NNNNNNNN.JPEG images. Give {VAL_TAR} or the "
            "folder of its unpacked images."
        )
    if skipped:
        reporter.warn(f"ignored {len(skipped)} file(s) that are not validation images, e.g. {skipped[0]}")
    if n < len(devkit.val_wnids):
        reporter.warn(
            f"{val_source} holds {n:,} of the {len(devkit.val_wnids):,} validation images; "
            "installing them (the statistics pool will be smaller than the paper's)."
        )
    classes = sum(1 for e in os.scandir(staging / "val") if e.is_dir())
    return {"images": n, "classes": classes}


def is_val_folder(folder: Path) -> bool:
    """True when ``folder`` directly holds ILSVRC2012 validation JPEGs (unsorted)."""
    try:
        with os.scandir(folder) as it:
            return any(VAL_NAME.match(e.name) for e in it)
    except OSError:
        return False
