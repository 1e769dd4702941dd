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
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if not f.startswith(".") and f.lower().endswith(IMG_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(dirpath, f), root))
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


def load_rgb(path: Path):
    """Decode an image file as RGB PIL image; a corrupt file raises BadImageError naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's decode errors
        raise BadImageError(
            f"Cannot read image {path}: {exc}. Remove or replace it, or pass --skip-bad "
            "to skip unreadable images (they are counted in the result)."
        ) from None
