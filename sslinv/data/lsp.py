"""Leeds Sports Pose (LSP, the 2,000-image release): 14 body joints per image.

Expected tree under ``<data-root>/LeedsSportsPose`` (the root of ``lsp_dataset.zip``)::

    LeedsSportsPose/
      images/im0001.jpg ... im2000.jpg
      joints.mat          joints: 3 x 14 x 2000 (x, y, visibility) per joint and image

Joint order: right ankle, right knee, right hip, left hip, left knee, left ankle, right
wrist, right elbow, right shoulder, left shoulder, left elbow, left wrist, neck, head
top. The visibility row is ignored (as in the reference). Image ``k`` of the sorted
``images/*.jpg`` goes with column ``k`` of ``joints``.

Protocol: the reference writes a seeded split into the data folder on first use
(``np.random.seed(0); np.random.shuffle(arange(2000))``, first 60 % train: 1,200 train,
800 test); the same permutation is computed here in memory and nothing is written.
trainval = train.

Landmark geometry (as the reference): crop the central square of side ``m = min(w, h)``
at ``(int((w - m) / 2), int((h - m) / 2))``, shift the joints by that corner, then the
clean pipeline (resize 224, centre crop 224) maps them into the view: 28 numbers
``x0, y0, ..., x13, y13`` in pixels of the 224 x 224 view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sslinv.errors import DataNotFoundError

NAME = "leeds_sports_pose"
DIRNAME = "LeedsSportsPose"
NUM_JOINTS = 14
TRAIN_FRACTION = 0.6
EXPECTED = {"images": 2000}

__all__ = ["DIRNAME", "EXPECTED", "central_square", "load", "read_joints", "scan", "seeded_split", "verify"]


def _missing(root: Path, what: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"Dataset leeds_sports_pose not found under {root} ({what}; expected "
        f"{root}/images/im0001.jpg ... and {root}/joints.mat, the contents of "
        "lsp_dataset.zip). Run: sslinv fetch-data leeds_sports_pose"
    )


def read_joints(root: Path) -> np.ndarray:
    """Joints as ``(images, 14, 2)`` x, y (the visibility row dropped)."""
    from scipy.io import loadmat

    path = Path(root) / "joints.mat"
    if not path.is_file():
        raise _missing(Path(root), "joints.mat is missing")
    try:
        joints = np.asarray(loadmat(str(path))["joints"], dtype=np.float64)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DataNotFoundError(
            f"Cannot read the 'joints' array of {path} ({exc}). Run: sslinv fetch-data leeds_sports_pose"
        ) from None
    if joints.ndim != 3 or joints.shape[:2] != (3, NUM_JOINTS):
        raise DataNotFoundError(
            f"{path} holds joints of shape {joints.shape}, not 3 x 14 x N (the 2,000-image "
            "LSP release; the 10,000-image 'extended' release is not this dataset)."
        )
    return joints[:2].transpose(2, 1, 0)


def scan(root: Path) -> tuple[list[Path], np.ndarray]:
    """Sorted images and their joints ``(n, 14, 2)``."""
    root = Path(root)
    if not root.is_dir():
        raise _missing(root, "no such folder")
    folder = root / "images"
    if not folder.is_dir():
        raise _missing(root, "no folder images")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg" and not p.name.startswith("."))
    joints = read_joints(root)
    if not images or len(images) != len(joints):
        raise _missing(root, f"{len(images)} images but joints.mat describes {len(joints)}")
    return images, joints


def seeded_split(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The reference's ``train.npy`` / ``test.npy`` indices, in memory."""
    idx = np.arange(n)
    np.random.RandomState(seed).shuffle(idx)
    a = int(n * TRAIN_FRACTION)
    return {"train": idx[:a], "test": idx[a:]}


def central_square(width: int, height: int) -> tuple[int, int, int]:
    """``(left, top, side)`` of the central square crop."""
    m = min(width, height)
    return int((width - m) / 2), int((height - m) / 2), m


def load(root: Path, split: str, seed: int = 0):
    """The downstream split ``trainval`` (= train) or ``test``."""
    from sslinv.data.downstream import Split, image_sizes, stat_fingerprint

    images, joints = scan(root)
    parts = seeded_split(len(images), seed)
    if split == "trainval":
        idx = parts["train"]
    elif split == "test":
        idx = parts["test"]
    else:
        raise ValueError(f"split must be 'trainval' or 'test', not {split!r}")
    files = tuple(images[i] for i in idx)
    sizes = image_sizes(files)
    squares = np.array([central_square(int(w), int(h)) for w, h in sizes], dtype=np.int64).reshape(-1, 3)
    left, top, side = squares[:, 0], squares[:, 1], squares[:, 2]
    boxes = np.stack([left, top, left + side, top + side], axis=1).astype(np.float64)
    targets = (joints[idx] - np.stack([left, top], axis=1)[:, None, :]).reshape(len(idx), -1)
    return Split(
        dataset=NAME, split=split, targets=targets, files=files, boxes=boxes,
        sizes=np.stack([side, side], axis=1),
        fingerprint=stat_fingerprint(files, boxes.tobytes()),
        source=f"seeded split (seed {seed}, 60/40)",
    )


def verify(root: Path) -> dict[str, int]:
    """The number of images; raises DataNotFoundError naming the path and fix."""
    images, _ = scan(root)
    return {"images": len(images)}
