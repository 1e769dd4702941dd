"""Which folder of images a command's ``--data`` means: the image pool.

``resolve_pool`` is the data side of the statistics pool (protocol section 1) and of the
pretraining data: ImageNet val under the data root, the built-in demo pool, or any image
folder; ``resolve_stats_pool`` the same for ``realworld --stats-data``. The pool is indexed and fingerprinted by ``sslinv.data.folder.scan_pool``; its
cached feature statistics are the evaluations' job (``sslinv.evaluate.stats``).
"""

from __future__ import annotations

from pathlib import Path

from sslinv import distributed, paths
from sslinv.data.folder import ImagePool, scan_pool
from sslinv.distributed import World

__all__ = ["ImagePool", "resolve_pool", "resolve_stats_pool", "scan_pool"]


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


def resolve_stats_pool(stats_data: str | None, cache_dir: Path, data_root: Path, world, reporter) -> ImagePool:
    """The statistics pool: ImageNet val under the data root (default), the demo pool,
    or an image folder (an ImageNet-style root holding ``val/`` means its ``val/``)."""
    from sslinv.data import demo

    if stats_data == demo.DEMO_NAME:
        return resolve_pool(stats_data, cache_dir, data_root, world, reporter)
    if stats_data is None:
        root = paths.imagenet_val(data_root)
        hint = (
            f"The statistics pool is the ILSVRC2012 validation set ({root}/<wnid>/"
            "ILSVRC2012_val_<8 digits>.JPEG; set the data root with --data-root or "
            "SSLINV_DATA_ROOT), or pass --stats-data PATH for any image folder, or "
            "--stats-data demo for the built-in demo pool."
        )
        return scan_pool(root, name="imagenet-val", hint=hint)
    root = Path(stats_data).expanduser()
    if (root / "val").is_dir():
        reporter.info(f"Statistics pool: using {root / 'val'} (the val/ split of {root}).")
        root = root / "val"
    return scan_pool(root, hint="Pass --stats-data PATH with an image folder, or --stats-data demo.")
