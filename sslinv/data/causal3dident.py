"""Causal3DIdent (von Kuegelgen, Sharma et al., NeurIPS 2021): rendered 3D objects of 7
classes whose position, rotation, lighting and hues are known latent variables.

Expected on-disk tree (``trainset.tar.gz`` and ``testset.tar.gz`` from Zenodo record
4784282 unpacked as they are into ``<data-root>/Causal3DIdent/``)::

    <data-root>/Causal3DIdent/
        trainset/images_0/000000.png ...     one folder per class, images_0 .. images_6
        trainset/latents_0.npy ...           one row of 10 latents per image, in index order
        trainset/raw_latents_0.npy ...       (the official loader's name; either works)
        testset/images_0/ ... testset/latents_0.npy ...

250,000 training and 25,000 test images. ``latents_{i}.npy`` (what the reference
reads) is used when every class has it, else ``raw_latents_{i}.npy``; R^2 does not
change under a per-column affine rescaling of the targets, so either gives the same
number if one is a rescaling of the other. Image ``j`` of class ``i`` is the file whose
name is the number ``j`` (zero-padded or not), so row ``j`` of the latents is its target.

Latent columns (datasets.md section 17): 0-2 object position x, y, z; 3-5 object
rotation (alpha, beta, gamma); 6 spotlight position angle; 7 object hue; 8 spotlight hue;
9 background hue. The class is the ``images_<i>`` folder number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sslinv.data.realworld import files_matching, natural_key, not_found, rel, require_dir, subdirs

DIRNAME = "Causal3DIdent"
SPLITS = {"train": "trainset", "test": "testset"}
NUM_CLASSES = 7
EXPECTED = {"train": 250000, "test": 25000, "classes": 7}
LATENT_NAMES = (
    "pos_x", "pos_y", "pos_z", "rot_alpha", "rot_beta", "rot_gamma",
    "light", "obj_hue", "spot_hue", "bg_hue",
)
LATENT_FILES = ("latents", "raw_latents")
_CLASS_DIR = re.compile(r"^images_(\d+)$")
_IMAGE = re.compile(r"^.+\.png$", re.IGNORECASE)
_EXPECT = "trainset/ and testset/, each with images_0..images_6/ and latents_0..latents_6.npy"


@dataclass(frozen=True)
class Causal3DIdentSplit:
    """One split: image files (relative to ``root``), class labels and latent rows."""

    split: str
    root: Path
    files: tuple[str, ...]
    labels: np.ndarray  # (n,) int64, the images_<i> number
    latents: np.ndarray  # (n, 10) float64
    latents_file: str  # "latents" or "raw_latents"

    def __len__(self) -> int:
        return len(self.files)

    def path(self, i: int) -> Path:
        return self.root / self.files[i]


def load_split(root: Path, split: str) -> Causal3DIdentSplit:
    """Index ``trainset`` or ``testset`` (``split`` is ``train`` or ``test``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, not {split!r}")
    root = require_dir(DIRNAME, Path(root), _EXPECT)
    folder = root / SPLITS[split]
    if not folder.is_dir():
        raise not_found(DIRNAME, root, _EXPECT, detail=f"Causal3DIdent split folder {folder} not found")
    classes = sorted(
        (int(m.group(1)), d) for d in subdirs(folder) if (m := _CLASS_DIR.match(d.name))
    )
    if not classes:
        raise not_found(DIRNAME, root, _EXPECT, detail=f"No images_<i>/ class folders in {folder}")
    kind = next(
        (k for k in LATENT_FILES if all((folder / f"{k}_{i}.npy").is_file() for i, _ in classes)), None
    )
    if kind is None:
        missing = [f"latents_{i}.npy" for i, _ in classes if not (folder / f"latents_{i}.npy").is_file()]
        raise not_found(
            DIRNAME, root, _EXPECT,
            detail=f"Causal3DIdent under {folder} is incomplete: no latents file for every class "
            f"(missing e.g. {folder / missing[0]}, and no raw_latents_<i>.npy for all classes either)",
        )
    files: list[str] = []
    labels: list[np.ndarray] = []
    latents: list[np.ndarray] = []
    for i, d in classes:
        names = sorted((n for n, _ in files_matching(d, _IMAGE)), key=natural_key)
        latents_file = folder / f"{kind}_{i}.npy"
        try:
            arr = np.load(latents_file, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:  # truncated, or not a .npy file at all
            raise not_found(
                DIRNAME, root, _EXPECT,
                detail=f"Causal3DIdent under {folder} is damaged: {latents_file} cannot be read "
                f"({' '.join(str(e).split())[:160]}; truncated or not a .npy file)",
            ) from None
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] != len(names):
            raise not_found(
                DIRNAME, root, _EXPECT,
                detail=f"Causal3DIdent under {folder} is incomplete: {d.name}/ has {len(names)} "
                f"images but {kind}_{i}.npy has shape {tuple(arr.shape)} (one row per image expected)",
            )
        bad = ~np.isfinite(arr.astype(np.float64)).all(axis=1) if arr.dtype.kind in "fc" else None
        if bad is not None and bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise not_found(
                DIRNAME, root, _EXPECT,
                detail=f"Causal3DIdent under {folder} is damaged: {latents_file} holds NaN or Inf in "
                f"{int(bad.sum())} rows, the first row {row} ({names[row]})",
            )
        files += [rel(folder, d / n) for n in names]
        labels.append(np.full(len(names), i, dtype=np.int64))
        latents.append(arr.astype(np.float64))
    widths = {a.shape[1] for a in latents}
    if len(widths) != 1:
        raise not_found(
            DIRNAME, root, _EXPECT,
            detail=f"The {kind}_<i>.npy files under {folder} have different numbers of columns: {sorted(widths)}",
        )
    return Causal3DIdentSplit(
        split=split,
        root=folder.resolve(),
        files=tuple(files),
        labels=np.concatenate(labels),
        latents=np.concatenate(latents),
        latents_file=kind,
    )


def verify(root: Path) -> dict[str, int]:
    """``{"train": n, "test": m, "classes": c}``; raises DataNotFoundError when a split is
    missing or its images and latents disagree."""
    train, test = load_split(root, "train"), load_split(root, "test")
    return {"train": len(train), "test": len(test), "classes": len(set(train.labels.tolist()))}


def identity(split: Causal3DIdentSplit, rows: np.ndarray | None = None) -> dict[str, Any]:
    """What a feature cache entry depends on: the split, the rows used and a fingerprint of
    those files (path, size, mtime)."""
    from sslinv.data.realworld import fingerprint

    rows = np.arange(len(split)) if rows is None else np.asarray(rows)
    files = [split.files[i] for i in rows]
    return {
        "name": DIRNAME,
        "split": split.split,
        "root": str(split.root),
        "num_images": len(split),
        "rows": int(len(rows)),
        "rows_sha256": _rows_hash(rows),
        "fingerprint": fingerprint(split.root, files),
    }


def _rows_hash(rows: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]
