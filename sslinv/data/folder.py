"""Image pools: any folder of images (ImageFolder ``class/*.jpg`` or flat), or the demo pool.

A pool is indexed once (sorted relative paths) and fingerprinted by every file's relative
path, size and modification time, so cached statistics computed on it are recomputed
when a file changes. Loaders never write into the data folder.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sslinv.errors import BadImageError, DataNotFoundError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImagePool:
    """A sorted, fingerprinted list of image files under ``root``."""

    name: str
    root: Path
    files: tuple[str, ...]
    fingerprint: str

    def __len__(self) -> int:
        return len(self.files)

    def path(self, i: int) -> Path:
        return self.root / self.files[i]

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "root": str(self.root),
            "num_images": len(self.files),
            "fingerprint": self.fingerprint,
        }


def _walk_images(root: Path) -> list[str]:
    """Relative paths of the image files under ``root``, each real file once.

    Links are followed (a pool assembled from symlinks is common), but a folder already
    visited (a symlink loop, or two links to one folder) is not entered again, and a file
    reached twice is kept under its first path in sorted order.
    """
    found = []
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen_dirs:  # reached again through a link
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and f.lower().endswith(IMG_EXTENSIONS):
                path = os.path.join(dirpath, f)
                try:
                    fst = os.stat(path)
                except OSError:  # a dangling link
                    continue
                if (fst.st_dev, fst.st_ino) in seen_files:
                    continue
                seen_files.add((fst.st_dev, fst.st_ino))
                found.append(os.path.relpath(path, root))
    return sorted(found)


def scan_pool(root: Path, name: str | None = None, hint: str = "") -> ImagePool:
    """Index the images under ``root`` (recursively; hidden files and folders skipped).

    ``hint`` is appended to the not-found message (what to do instead).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"Image folder not found: {root}.{(' ' + hint) if hint else ''}")
    files = _walk_images(root)
    if not files:
        raise DataNotFoundError(
            f"No images under {root} (looked for {', '.join(IMG_EXTENSIONS)} files, "
            f"in class sub-folders or directly inside).{(' ' + hint) if hint else ''}"
        )
    h = hashlib.sha256()
    for rel in files:
        st = os.stat(root / rel)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return ImagePool(
        name=name or str(root.resolve()),
        root=root.resolve(),
        files=tuple(files),
        fingerprint=h.hexdigest()[:16],
    )


def to_rgb8(im):
    """A PIL image of any mode as 8-bit RGB, keeping the full range of deep images.

    PIL's ``convert("RGB")`` clips 16-bit greyscale (``I;16*``, and ``I`` as older PIL
    opens 16-bit PNGs) at 255, which turns a normal 16-bit picture nearly white; here it
    is scaled (``round(v / 257)``: 0 -> 0, 65535 -> 255). Float images (``F``) in [0, 1]
    are scaled by 255, other float ranges clipped to [0, 255]. Everything else (L, P, LA,
    RGBA, CMYK, 1) converts as PIL does.
    """
    from PIL import Image

    if im.mode.startswith("I") or im.mode == "F":
        import numpy as np

        arr = np.asarray(im)
        if im.mode == "F":
            arr = arr.astype(np.float64)
            scale = 255.0 if arr.size and np.nanmax(arr) <= 1.0 else 1.0
            grey = np.clip(np.nan_to_num(arr) * scale, 0, 255)
        else:
            grey = np.clip(arr.astype(np.float64), 0, 65535) / 257.0
        grey = np.rint(grey).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if im.mode == "RGB":  # already: decoded as it is (convert would copy every pixel)
        im.load()
        return im
    return im.convert("RGB")


def load_rgb_or_none(path: Path, skip_bad: bool):
    """``load_rgb(path)``, or None for an unreadable file when ``skip_bad`` (the loaders'
    ``--skip-bad``: the caller counts it); otherwise the ``BadImageError``."""
    try:
        return load_rgb(path)
    except BadImageError:
        if skip_bad:
            return None
        raise


def load_rgb(path: Path):
    """Decode an image file as 8-bit RGB PIL image (deep images scaled, see ``to_rgb8``);
    a corrupt file raises BadImageError naming it. Every loader decodes through this."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return to_rgb8(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # PIL's decode errors
        raise BadImageError(
            f"Cannot read image {path}: {exc}. Remove or replace it, or pass --skip-bad "
            "to skip unreadable images (they are counted in the result)."
        ) from None
