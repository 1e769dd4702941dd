"""The six downstream datasets of protocol section 5, as a registry, and the ``Split``
record their loaders return.

| name | module | trainval / test | target | metric |
|---|---|---|---|---|
| cifar10 | cifar10 | train / test | 10 classes | accuracy |
| caltech101 | caltech101 | 30 per class (seeded, or split files) / the rest | 102 classes | mean per-class accuracy |
| flowers | flowers | trnid + valid / tstid | 102 classes | mean per-class accuracy |
| 300w | w300 | seeded 30/30/40: train + valid / test | 68 landmarks (136) | R^2 |
| celeba | celeba | official train + valid / test | 5 landmarks (10) | R^2 |
| leeds_sports_pose | lsp | seeded 60/40: train / test | 14 joints (28) | R^2 |

Two built-in stand-ins serve ``sslinv demo`` (not part of ``--dataset all``; painted into
``<cache>/demo`` on first use, see ``sslinv.data.demo_tasks``): ``demo-classes`` (8
classes, accuracy) and ``demo-landmarks`` (3 markers, R^2).

Each loader module (``sslinv.data.<module>``) follows the shared contract: a docstring
with the expected tree, ``DIRNAME`` (the folder under the data root), ``verify(root)``
and ``load(root, split, ...)`` returning a :class:`Split`. Importing this module is cheap
(no torch); the loader modules are imported on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from sslinv.cache import stat_fingerprint  # noqa: F401  (the loaders' fingerprint)
from sslinv.errors import UsageError
from sslinv.registry import Registry

__all__ = ["DATASETS", "DownstreamDataset", "Split", "dataset_names", "get_dataset"]


@dataclass(frozen=True)
class Split:
    """One split of a downstream dataset: images (files or in-memory arrays) and targets.

    ``boxes`` (n, 4) are ``(left, top, right, bottom)`` crop boxes applied to each image
    before the clean pipeline (PIL ``Image.crop`` semantics: rounded to whole pixels,
    zero-padded outside the image), or None. ``targets`` are int64 class indices, or
    float64 (n, 2 * points) landmark coordinates ``x0, y0, x1, y1, ...`` in the pixels of
    the image *after* its box crop, whose size ``(w, h)`` per image is ``sizes``;
    :meth:`view_targets` maps them into the final resize/centre-crop view. With
    ``sizes_from_files`` the sizes are read from the image headers only when
    :meth:`view_targets` needs them (CelebA: 202,599 headers a rerun with every result
    cached does not read).
    """

    dataset: str
    split: str
    targets: np.ndarray
    files: tuple[Path, ...] = ()
    arrays: np.ndarray | None = None
    boxes: np.ndarray | None = None
    sizes: np.ndarray | None = None
    sizes_from_files: bool = False
    fingerprint: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.targets)

    def view_targets(self, resize: int, crop: int) -> np.ndarray:
        """Class labels as they are; landmarks as pixel coordinates in the final view."""
        sizes = image_sizes(self.files) if self.sizes is None and self.sizes_from_files else self.sizes
        if sizes is None:
            return self.targets
        return landmarks_in_view(self.targets, sizes, resize, crop)

    def identity(self) -> dict[str, Any]:
        """What the features of this split depend on (feature-cache key part)."""
        return {  # the loaders with boxes (300W, LSP) put their bytes in the fingerprint
            "name": self.dataset,
            "split": self.split,
            "num_images": len(self),
            "source": self.source,
            "fingerprint": self.fingerprint,
        }


def landmarks_in_view(points: np.ndarray, sizes: np.ndarray, resize: int, crop: int) -> np.ndarray:
    """Map ``x, y`` pixel coordinates of a ``w x h`` image into its clean view (resize
    the shorter side ``m`` to ``resize``, centre crop ``crop``):
    ``x' = (x - (w - m) / 2) * resize / m - (resize - crop) / 2`` (same for y with h).

    With ``resize == crop`` (the protocol's 224/224) this is the reference's
    ``((x - (w - m) / 2) / m) * crop`` exactly. ``points`` (n, 2k), ``sizes`` (n, 2).
    """
    points = np.asarray(points, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    n = len(points)
    xy = points.reshape(n, -1, 2)
    m = sizes.min(1)
    offset = (sizes - m[:, None]) / 2  # (n, 2): the centre-square offset before scaling
    scale = (resize / m)[:, None, None]
    out = (xy - offset[:, None, :]) * scale - (resize - crop) / 2
    return out.reshape(n, -1)


def image_sizes(files: list[Path] | tuple[Path, ...], workers: int = 8) -> np.ndarray:
    """``(width, height)`` of each image, from its header only (threads overlap the I/O)."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from sslinv.errors import BadImageError

    def size(path: Path) -> tuple[int, int]:
        try:
            with Image.open(path) as im:
                return im.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise BadImageError(f"Cannot read image {path}: {exc}. Remove or replace it.") from None

    if len(files) < 64:
        return np.asarray([size(p) for p in files], dtype=np.int64).reshape(-1, 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.asarray(list(pool.map(size, files, chunksize=256)), dtype=np.int64).reshape(-1, 2)


@dataclass(frozen=True)
class DownstreamDataset:
    """A registry entry: what the user types after ``--dataset`` and how to evaluate it."""

    name: str
    module: str
    task: str  # "classification" | "regression"
    metric: str  # "accuracy" | "mean_per_class_accuracy" | "r2"
    outputs: int  # classes, or regression outputs
    description: str
    seeded_split: bool = False  # the protocol derives the split from a seed
    split_files: bool = False  # accepts --split-dir train.txt/test.txt
    mode: str | None = None  # passed to the loader's load(..., mode=) when one module serves several
    builtin: bool = False  # painted into <cache>/demo on first use (sslinv.data.demo_tasks)

    def loader(self) -> ModuleType:
        return importlib.import_module(f"sslinv.data.{self.module}")

    @property
    def dirname(self) -> str:
        return self.loader().DIRNAME

    def root(self, data_root: Path) -> Path:
        return Path(data_root) / self.dirname

    def load(self, data_root: Path, split: str, *, split_seed: int = 0, split_dir: Path | None = None) -> Split:
        kwargs: dict[str, Any] = {}
        if self.seeded_split:
            kwargs["seed"] = split_seed
        if self.split_files:
            kwargs["split_dir"] = split_dir
        if self.mode is not None:
            kwargs["mode"] = self.mode
        return self.loader().load(self.root(data_root), split, **kwargs)

    def verify(self, data_root: Path) -> dict[str, int]:
        return self.loader().verify(self.root(data_root))


DATASETS: Registry[DownstreamDataset] = Registry("downstream dataset")

#: Other names a user may type besides any spelling of the name itself (``CIFAR-10``,
#: ``LeedsSportsPose``: case, ``-`` and ``_`` are ignored): the reference's folder names,
#: the loader modules', and ``lsp``.
_ALIASES = {
    "flowers": ("flowers102", "oxford_flowers102"),
    "300w": ("w300",),
    "leeds_sports_pose": ("lsp",),
}

for _record in (
    DownstreamDataset("cifar10", "cifar10", "classification", "accuracy", 10,
                      "CIFAR-10: 50,000 train / 10,000 test images, 10 classes"),
    DownstreamDataset("caltech101", "caltech101", "classification", "mean_per_class_accuracy", 102,
                      "Caltech-101: 30 training images per class, the rest test, 102 classes",
                      seeded_split=True, split_files=True),
    DownstreamDataset("flowers", "flowers", "classification", "mean_per_class_accuracy", 102,
                      "Oxford 102 Flowers: train + val / test (setid.mat)"),
    DownstreamDataset("300w", "w300", "regression", "r2", 136,
                      "300W indoor + outdoor: 68 facial landmarks, seeded 30/30/40 split",
                      seeded_split=True),
    DownstreamDataset("celeba", "celeba", "regression", "r2", 10,
                      "CelebA aligned: 5 facial landmarks, official partition"),
    DownstreamDataset("leeds_sports_pose", "lsp", "regression", "r2", 28,
                      "Leeds Sports Pose: 14 body joints, seeded 60/40 split", seeded_split=True),
    DownstreamDataset("demo-classes", "demo_tasks", "classification", "accuracy", 8,
                      "built in: new scenes of the 8 demo classes, 288 train / 96 test",
                      mode="classes", builtin=True),
    DownstreamDataset("demo-landmarks", "demo_tasks", "regression", "r2", 6,
                      "built in: 3 coloured markers per scene (6 coordinates), 288 train / 96 test",
                      mode="landmarks", builtin=True),
):
    DATASETS.register(_record.name, _record, aliases=_ALIASES.get(_record.name, ()))


def dataset_names() -> list[str]:
    return DATASETS.names()


def get_dataset(name: str) -> DownstreamDataset:
    """``CIFAR10`` -> ``cifar10``, ``LeedsSportsPose`` -> ``leeds_sports_pose``; a typo
    gets a did-you-mean."""
    return DATASETS.lookup(name)


def check_split_dir(names: list[str], split_dir: Path | None) -> None:
    if split_dir is None:
        return
    users = [n for n in names if DATASETS.get(n).split_files]
    if not users:
        raise UsageError(
            "--split-dir applies to caltech101 only (published train.txt / test.txt); "
            f"it was given with {', '.join(names)}."
        )
