"""Resolve the statistics pool and compute its cached feature statistics (protocol 1).

The cache key holds everything the statistics depend on: model identity (incl. the
checkpoint hash), feature layer, pool identity (files, sizes, mtimes), resize, crop,
precision and the number of images. The reference keys only by model and layer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sslinv import cache, distributed, paths
from sslinv.data.folder import ImagePool, scan_pool
from sslinv.distributed import World
from sslinv.features import CleanImages, Extractor, collate_clean
from sslinv.runtime import make_loader
from sslinv.invariance.stats import RunningStats

STATS_FORMAT = 1

Progress = Callable[[int], None]


def resolve_pool(
    data: str | None, cache_root: Path, data_root: Path, world: World, reporter=None
) -> ImagePool:
    """``None``: ImageNet val under the data root; ``demo``: the built-in pool; else a path.

    The demo pool is generated on first use (rank 0; the others wait).
    """
    from sslinv.data import demo

    if data == demo.DEMO_NAME:
        if world.is_main:
            progress = None
            if reporter is not None:
                progress = demo.progress_bar(reporter, "generating the demo image pool (first use)", demo.DEFAULT_N)
            demo.ensure_demo_pool(cache_root, progress=progress)
        distributed.barrier(world)
        root = demo.ensure_demo_pool(cache_root)  # exists now: returns at once
        return scan_pool(root, name=f"demo-{demo.DEMO_VERSION}")
    if data is None:
        root = paths.imagenet_val(data_root)
        hint = (
            f"Expected the ILSVRC2012 validation images there ({root}/<wnid>/"
            "ILSVRC2012_val_<8 digits>.JPEG). Run: sslinv fetch-data imagenet --from DIR "
            "(DIR holding ILSVRC2012_img_val.tar and the devkit), or set the data root with "
            "--data-root / SSLINV_DATA_ROOT, or pass --data PATH for any image folder, or "
            "--data demo for the built-in demo pool."
        )
        return scan_pool(root, name="imagenet-val", hint=hint)
    return scan_pool(Path(data), hint="Pass --data PATH with an image folder, or --data demo.")


def stats_key(model_identity: dict, pool: ImagePool, resize: int, crop: int, precision: str, skip_bad: bool) -> dict[str, Any]:
    return {
        "format": STATS_FORMAT,
        "model": model_identity,
        "pool": pool.identity(),
        "resize": resize,
        "crop": crop,
        "precision": precision,
        "skip_bad": skip_bad,
    }


def pool_statistics(
    extractor: Extractor,
    model_identity: dict,
    pool: ImagePool,
    *,
    resize: int,
    crop: int,
    precision: str,
    skip_bad: bool,
    batch_size: int,
    workers: int,
    cache_root: Path,
    world: World,
    progress: Progress | None = None,
) -> tuple[RunningStats, dict[str, Any]]:
    """Mean and covariance of the model's features over every pool image, cached.

    Returns the statistics and a record for the result file (cache path, hit or miss,
    images used and skipped). All ranks return the same statistics.
    """
    key = stats_key(model_identity, pool, resize, crop, precision, skip_bad)
    path = paths.stats_dir(cache_root, model_identity["spec"]) / f"{cache.key_hash(key)}.pt"

    def compute() -> tuple[RunningStats, list[str]]:
        return _compute(extractor, pool, resize, crop, skip_bad, batch_size, workers, world, progress)

    def save(value: tuple[RunningStats, list[str]], p: Path) -> None:
        stats, skipped = value
        torch.save({**stats.state(), "skipped": skipped}, p)

    def load(p: Path) -> tuple[RunningStats, list[str]]:
        state = torch.load(p, map_location="cpu", weights_only=True)
        return RunningStats.from_state(state), list(state.get("skipped", []))

    (stats, skipped), hit = cache.cached(
        path, key, compute, save, load,
        extra=lambda v: {"num_images": v[0].n, "skipped": v[1]},
        world=world,
    )
    return stats, {"path": str(path), "cached": hit, "num_images": stats.n, "skipped": skipped}


def _compute(extractor, pool, resize, crop, skip_bad, batch_size, workers, world, progress):
    mine = list(distributed.shard(len(pool), world))
    if progress:
        progress(0)  # the bar appears now (cached statistics show none)
    dataset = CleanImages(pool, mine, resize, crop, skip_bad)
    loader = make_loader(dataset, workers, batch_size, collate_clean)
    local: RunningStats | None = None
    bad: list[int] = []
    for _idx, views, bad_j in loader:
        bad += [mine[j] for j in bad_j]
        if views is not None:
            feats = extractor(views)
            if local is None:
                local = RunningStats(feats.shape[1])
            local.update(feats)
        if progress:
            progress(len(_idx) + len(bad_j))
    parts = distributed.all_gather_objects(world, (local.state() if local else None, bad))
    total: RunningStats | None = None
    skipped: list[int] = []
    for state, b in parts:  # merged in rank order: identical on every rank
        skipped += b
        if state is None:
            continue
        if total is None:
            total = RunningStats.from_state(state)
        else:
            total.merge(RunningStats.from_state(state))
    if total is None or total.n < 2:
        from sslinv.errors import DataNotFoundError

        raise DataNotFoundError(
            f"Fewer than two readable images in the statistics pool {pool.root}; "
            "the covariance needs at least two."
        )
    return total, sorted(pool.files[i] for i in skipped)
