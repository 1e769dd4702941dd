"""Shared fixtures: an isolated cache, a small image folder, tiny checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Two CPU cores: keep torch from oversubscribing them in tests (and in spawned workers).
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A fresh cache root, also exported as SSLINV_CACHE_DIR; no data root set."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SSLINV_CACHE_DIR", str(root))
    monkeypatch.delenv("SSLINV_DATA_ROOT", raising=False)
    return root


def write_image_folder(root: Path, n_classes: int = 3, per_class: int = 8, seed: int = 0) -> Path:
    """A small ImageFolder (``class/img.jpg``) of varied, textured, non-square images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(n_classes):
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = int(rng.integers(64, 96)), int(rng.integers(64, 96))
            yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
            base = rng.uniform(0, 1, size=3)
            freq = rng.uniform(2, 12, size=2)
            img = np.stack(
                [
                    base[ch] + 0.4 * np.sin(2 * np.pi * (freq[0] * xx + freq[1] * yy + ch / 3))
                    for ch in range(3)
                ],
                axis=-1,
            )
            x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
            img[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.uniform(0, 1, size=3)
            img += rng.normal(0, 0.05, size=img.shape)
            arr = (np.clip(img, 0, 1) * 255).astype(np.uint8)
            Image.fromarray(arr).save(d / f"img_{i:03d}.jpg", quality=95)
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return write_image_folder(tmp_path / "pool")
