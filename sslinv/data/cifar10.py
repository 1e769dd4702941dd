"""CIFAR-10 (python version), as torchvision and the reference read it.

Expected tree under ``<data-root>/CIFAR10`` (what ``cifar-10-python.tar.gz`` unpacks to;
the archive itself may stay beside it)::

    CIFAR10/
      cifar-10-batches-py/
        data_batch_1 ... data_batch_5   train: 5 x 10,000 images
        test_batch                      test: 10,000 images
        batches.meta                    label_names

Each batch is a Python pickle of a dict with ``data`` (N x 3072 uint8: the red, green
and blue planes of a 32 x 32 image, row-major) and ``labels`` (N ints in 0..9). The
pickles are read with a restricted unpickler that only builds plain containers and
numpy arrays, so a tampered file cannot run code.

Downstream protocol: trainval = train (50,000), test = test (10,000), 10 classes,
accuracy.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from sslinv.cache import stat_fingerprint
from sslinv.errors import DataNotFoundError

NAME = "cifar10"
DIRNAME = "CIFAR10"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
EXPECTED = {"train": 50_000, "test": 10_000}
NUM_CLASSES = 10

__all__ = ["DIRNAME", "EXPECTED", "load", "load_arrays", "verify"]


def _missing(root: Path, what: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"Dataset CIFAR10 not found under {root} ({what}; expected "
        f"{root}/{FOLDER}/data_batch_1 ... data_batch_5 and test_batch, the contents of "
        "cifar-10-python.tar.gz). Run: sslinv fetch-data CIFAR10"
    )


def _files(split: str) -> tuple[str, ...]:
    if split == "train":
        return TRAIN_FILES
    if split == "test":
        return TEST_FILES
    raise ValueError(f"CIFAR-10 has splits 'train' and 'test', not {split!r}")


class _ArrayUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays; refuses anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # bytes in protocol-2 pickles written by Python 3
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch file")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"] if "labels" in batch else batch["fine_labels"], dtype=np.int64)
    except (OSError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as exc:
        raise DataNotFoundError(
            f"Cannot read the CIFAR-10 batch {path} ({type(exc).__name__}: {exc}). Delete "
            "the folder and run: sslinv fetch-data CIFAR10"
        ) from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataNotFoundError(
            f"{path} is not a CIFAR-10 batch (data {data.shape}, {len(labels)} labels). "
            "Delete the folder and run: sslinv fetch-data CIFAR10"
        )
    return data, labels


def load_arrays(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels (N,) int64 of ``train`` or ``test``."""
    root = Path(root)
    folder = root / FOLDER
    if not folder.is_dir():
        raise _missing(root, f"no folder {FOLDER}")
    parts = []
    for name in _files(split):
        path = folder / name
        if not path.is_file():
            raise _missing(root, f"{name} is missing")
        parts.append(_read_batch(path))
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load(root: Path, split: str):
    """The downstream split ``trainval`` (= train) or ``test`` as a ``Split``."""
    from sslinv.data.downstream import Split

    source = {"trainval": "train", "test": "test"}.get(split)
    if source is None:
        raise ValueError(f"split must be 'trainval' or 'test', not {split!r}")
    images, labels = load_arrays(root, source)
    return Split(
        dataset=NAME, split=split, targets=labels, arrays=images,
        fingerprint=stat_fingerprint(_files(source), root=Path(root) / FOLDER), source=f"{FOLDER}/{source}",
    )


def verify(root: Path) -> dict[str, int]:
    """Counts per split; raises DataNotFoundError naming the path and the fetch command."""
    root = Path(root)
    if not root.is_dir():
        raise _missing(root, "no such folder")
    counts = {}
    for split in ("train", "test"):
        counts[split] = int(len(load_arrays(root, split)[1]))
    return counts
