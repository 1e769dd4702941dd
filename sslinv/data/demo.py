"""The built-in demo image pool: deterministic procedural scenes, made on first use.

A fresh install has no images, yet ``sslinv synthetic --data demo`` must run. So sslinv
paints its own pool: 8 scene classes, textured and colourful, sizes varying a little
like ImageNet photos, written in ImageFolder layout into the cache::

    <cache>/demo/v1-n512-s0/
        checkers/checkers_0000.jpg   checkers/checkers_0008.jpg ...
        gratings/gratings_0001.jpg   ...
        ...
        stone/stone_0007.jpg         ...

Image ``i`` belongs to class ``CLASSES[i % 8]`` and its file carries the pool-wide index
``i``, so ``render_image(i, seed)`` reproduces any file. Each image draws from its own
random stream, ``SeedSequence(seed).spawn(...)[i]`` (built directly with
``spawn_key=(i,)``), never from a global generator: the same (version, n, seed) gives
bit-identical files on the same numpy and Pillow versions.

The scenes themselves (what they are for, how they are painted) are in
``sslinv.data.demo_painter``; this module names the classes, seeds each image's stream
and writes the pool.

Bump ``DEMO_VERSION`` whenever the output changes: it is part of the cache folder name,
so an old pool is never mistaken for a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sslinv.data.demo_painter import PAINTERS, SIZE_RANGE, render

if TYPE_CHECKING:
    from PIL import Image

DEMO_VERSION = "v1"
DEMO_NAME = "demo"
DEFAULT_N = 512
JPEG_QUALITY = 95
# Sorted, as ImageFolder sorts them: label i is CLASSES[i].
CLASSES = ("checkers", "gratings", "landscape", "marble", "mosaic", "night", "pastel", "stone")

Progress = Callable[[int, int], None]
__all__ = ["CLASSES", "DEFAULT_N", "DEMO_NAME", "DEMO_VERSION", "JPEG_QUALITY", "PAINTERS", "SIZE_RANGE",
           "class_of", "ensure_demo_pool", "ensure_scaled_pool", "generate", "pool_name", "progress_bar",
           "relative_path", "render_image"]


# --------------------------------------------------------------------------- public API


def class_of(index: int) -> str:
    """The scene class of pool image ``index``: classes take turns, so any prefix is balanced."""
    return CLASSES[index % len(CLASSES)]


def relative_path(index: int) -> Path:
    """Where image ``index`` lives inside the pool: ``<class>/<class>_<index:04d>.jpg``."""
    name = class_of(index)
    return Path(name) / f"{name}_{index:04d}.jpg"


def pool_name(n: int = DEFAULT_N, seed: int = 0) -> str:
    """The cache folder name of a pool, which records every input it depends on."""
    return f"{DEMO_VERSION}-n{n}-s{seed}"


def render_image(index: int, seed: int = 0) -> Image.Image:
    """Paint pool image ``index`` for ``seed`` as an RGB ``PIL.Image.Image``; deterministic."""
    from PIL import Image

    _check_args(index=index, seed=seed)
    # Equal to SeedSequence(seed).spawn(index + 1)[index]: one independent stream per image.
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))
    return Image.fromarray(render(class_of(index), rng), mode="RGB")


def generate(
    dest: Path, n: int = DEFAULT_N, seed: int = 0, progress: Progress | None = None
) -> None:
    """Write the ``n``-image pool for ``seed`` into ``dest`` (which must be empty).

    ``progress(done, n)`` is called after each image. Only classes that receive an image
    get a folder, since ImageFolder refuses an empty class folder (matters for n < 8).
    """
    from sslinv.errors import UsageError

    _check_args(n=n, seed=seed)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise UsageError(
            f"Refusing to write the demo pool into non-empty folder {dest}. Pass an empty folder."
        )
    for name in CLASSES[: min(n, len(CLASSES))]:
        (dest / name).mkdir()
    for index in range(n):
        image = render_image(index, seed)
        image.save(dest / relative_path(index), format="JPEG", quality=JPEG_QUALITY)
        if progress is not None:
            progress(index + 1, n)


def progress_bar(reporter, description: str, total: int) -> Progress:
    """A ``progress(done, total)`` for ``ensure_demo_pool`` / ``ensure_scaled_pool`` that
    draws a bar through ``reporter`` (``sslinv.reporting.Reporter``). They call it only
    while painting, so the bar appears only on first use."""
    from sslinv.reporting import lazy_task

    advance = lazy_task(reporter, description, total)
    return lambda done, total: advance(1)


def ensure_demo_pool(
    cache: Path, n: int = DEFAULT_N, seed: int = 0, *, progress: Progress | None = None
) -> Path:
    """The demo pool folder ``<cache>/demo/v1-n<n>-s<seed>``, generated on first use.

    Made by ``sslinv.cache.build_dir``: painted into a temp folder and renamed into place
    only when complete, so its existence means it is whole. ``progress`` is passed to
    ``generate`` (called only when the pool is generated).
    """
    from sslinv import cache as cache_mod
    from sslinv import paths

    _check_args(n=n, seed=seed)
    final = paths.demo_dir(Path(cache), pool_name(n, seed))
    return cache_mod.build_dir(final, lambda tmp: generate(tmp, n=n, seed=seed, progress=progress))


def ensure_scaled_pool(
    cache: Path, side: int, n: int = DEFAULT_N, seed: int = 0, *, progress: Progress | None = None
) -> Path:
    """A copy of the pool whose images are scaled so their shorter side is ``side``
    (``<cache>/demo/v1-n<n>-s<seed>-side<side>``), made on first use, atomically.

    For pretraining at a small image size: MoCo's augmentations (colour jitter, blur) cost
    per pixel of the *source* image, so on full-size demo images they, not the model,
    would bound a CPU run. Scaling once keeps the views the same up to resampling.
    """
    from PIL import Image

    from sslinv import cache as cache_mod
    from sslinv import paths

    _check_args(n=n, seed=seed)
    if side < 8:
        raise ValueError(f"side must be at least 8, not {side}")
    source = ensure_demo_pool(cache, n=n, seed=seed)

    def build(tmp: Path) -> None:
        for index in range(n):
            rel = relative_path(index)
            with Image.open(source / rel) as im:
                w, h = im.size
                scale = side / min(w, h)
                size = (max(side, round(w * scale)), max(side, round(h * scale)))
                small = im.convert("RGB").resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            small.save(tmp / rel, format="JPEG", quality=JPEG_QUALITY)
            if progress is not None:
                progress(index + 1, n)

    return cache_mod.build_dir(paths.demo_dir(Path(cache), f"{pool_name(n, seed)}-side{side}"), build)


def _check_args(index: int = 0, n: int = 1, seed: int = 0) -> None:
    from sslinv.errors import UsageError

    if not _is_int(index) or index < 0:
        raise UsageError(f"Demo image index must be a non-negative integer, got {index!r}.")
    if not _is_int(n) or n < 1:
        raise UsageError(
            f"Demo pool size must be a positive integer, got {n!r}. "
            f"Pass n >= 1 (default {DEFAULT_N})."
        )
    if not _is_int(seed) or seed < 0:
        raise UsageError(
            f"Demo pool seed must be a non-negative integer, got {seed!r}. "
            "Pass a seed >= 0 (default 0)."
        )


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)
