"""Pretraining data: the image pool, two augmented views per image, the run's batches.

Nothing here draws from the global RNGs, so a resumed run sees the batches of an
uninterrupted one: epoch ``e`` visits the images in the order ``randperm(n)`` seeded by
``(seed, e)``, and each image's two views are seeded by ``(seed, e, index)``
(``augment.view_seed``), whatever the number of workers or processes.

One DataLoader serves the whole run (:class:`RunLoader`), so its workers and prefetching
stay alive across epoch boundaries; :meth:`RunLoader.epoch` hands the training loop one
epoch's batches at a time.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sslinv import paths
from sslinv.data.folder import ImagePool, load_rgb
from sslinv.distributed import World
from sslinv.errors import BadImageError
from sslinv.pretrain import augment
from sslinv.runtime import default_workers, opencv_fork_safe


def resolve_training_pool(data: str | None, cache_root: Path, data_root: Path, world: World, reporter) -> ImagePool:
    """``None``: ImageNet train under the data root; ``demo``: the built-in pool; else a folder."""
    from sslinv.data.folder import scan_pool
    from sslinv.data.pool import resolve_pool

    if data is None:
        root = paths.imagenet_train(Path(data_root))
        hint = (
            f"Expected the ILSVRC2012 training images there ({root}/<wnid>/<wnid>_N.JPEG; "
            "ImageNet needs registration at image-net.org; set the data root with --data-root "
            "or SSLINV_DATA_ROOT), or pass --data PATH for any image folder, or --data demo "
            "for the built-in demo pool."
        )
        return scan_pool(root, name="imagenet-train", hint=hint)
    return resolve_pool(data, cache_root, data_root, world, reporter)


class TwoViews(Dataset):
    """Item ``(epoch, i)`` is ``(query view, key view, None)`` of pool image ``i``, uint8,
    seeded by ``(seed, epoch, i)``; ``(None, None, message)`` for an unreadable image
    (raised in the main process, so the error stays one line). With ``skip_bad`` the next
    readable image stands in."""

    def __init__(self, pool: ImagePool, pipeline, seed: int, skip_bad: bool) -> None:
        self.pool, self.pipeline, self.seed, self.skip_bad = pool, pipeline, seed, skip_bad

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        tries = len(self.pool) if self.skip_bad else 1
        for offset in range(tries):
            i = (index + offset) % len(self.pool)
            try:
                img = load_rgb(self.pool.path(i))
            except BadImageError as exc:
                if not self.skip_bad:
                    return None, None, str(exc)
                warnings.warn(f"skipped unreadable image {self.pool.path(i)} (--skip-bad)", stacklevel=1)
                continue
            q, k = augment.two_views(self.pipeline, img, augment.view_seed(self.seed, epoch, index))
            return q, k, None
        return None, None, f"No readable image in {self.pool.root}."


def collate_views(items):
    errors = [msg for _, _, msg in items if msg is not None]
    if errors:
        return None, None, errors[0]
    return torch.stack([q for q, _, _ in items]), torch.stack([k for _, k, _ in items]), None


class RunBatches(Sampler):
    """This rank's batches for every remaining step of the run, as lists of ``(epoch, i)``.

    Epoch ``e`` visits the images in the order ``randperm(n)`` seeded by ``(seed, e)``;
    global batch ``s`` is positions ``s*B .. (s+1)*B`` of it (incomplete batch dropped);
    rank ``r`` takes the ``r``-th of ``world_size`` equal slices. One sampler for the whole
    run keeps the DataLoader's workers and prefetching alive across epoch boundaries.
    """

    def __init__(self, n: int, global_batch: int, world: World, seed: int,
                 start_epoch: int, start_step: int, epochs: int) -> None:
        self.n, self.global_batch, self.world, self.seed = n, global_batch, world, seed
        self.start_epoch, self.start_step, self.epochs = start_epoch, start_step, epochs
        self.steps_per_epoch = n // global_batch
        self.per_rank = global_batch // world.world_size

    def __len__(self) -> int:
        return max(0, (self.epochs - self.start_epoch) * self.steps_per_epoch - self.start_step)

    def first_step(self, epoch: int) -> int:
        """The first step of ``epoch`` this run trains (past the resume point, else 0)."""
        return self.start_step if epoch == self.start_epoch else 0

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        lo, hi = self.world.rank * self.per_rank, (self.world.rank + 1) * self.per_rank
        for epoch in range(self.start_epoch, self.epochs):
            perm = self.order(epoch)
            for s in range(self.first_step(epoch), self.steps_per_epoch):
                batch = perm[s * self.global_batch : (s + 1) * self.global_batch][lo:hi]
                yield [(epoch, int(i)) for i in batch]


class RunLoader:
    """The run's batches ``(query views, key views)``, one epoch at a time.

    One DataLoader iterates over :class:`RunBatches` for the whole run; ``epoch(e)``
    yields the next ``steps_per_epoch - first_step(e)`` of its batches, which are exactly
    epoch ``e``'s (the epochs must be asked for in order). An unreadable image raises
    :class:`BadImageError` here, in the main process.
    """

    def __init__(self, loader: DataLoader, batches: RunBatches, device: torch.device) -> None:
        self.batches, self.device = batches, device
        self.steps_per_epoch = batches.steps_per_epoch
        self._it = iter(loader)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for im_q, im_k, error in itertools.islice(self._it, self.steps_per_epoch - self.batches.first_step(epoch)):
            if error is not None:
                raise BadImageError(error)
            yield im_q.to(self.device, non_blocking=True), im_k.to(self.device, non_blocking=True)


def train_workers(device: torch.device) -> int:
    """Default decoding workers per process. On GPUs MoCo's data pipeline (two augmented
    views per image) is the usual bottleneck, so each process gets its share of the
    usable CPUs (affinity and cgroup quota) divided among torchrun's LOCAL_WORLD_SIZE
    processes per node, less one for the main process, up to 16."""
    if device.type != "cuda":
        return default_workers(device)
    from sslinv.cpus import loader_workers

    return min(16, loader_workers(device.type))


def _init_worker(_: int) -> None:
    # One thread per decoding worker, so workers do not fight the model for the cores.
    torch.set_num_threads(1)


def make_train_loader(dataset: Dataset, batches: RunBatches, workers: int, device: torch.device) -> RunLoader:
    if workers > 0:
        opencv_fork_safe()
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate_views,
        pin_memory=device.type == "cuda",
        worker_init_fn=_init_worker if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
    )
    return RunLoader(loader, batches, device)
