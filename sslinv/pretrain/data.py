"""Pretraining data: the image pool, two augmented views per image, the run's batches.

Nothing here draws from the global RNGs, so a resumed run sees the batches of an
uninterrupted one: epoch ``e`` visits the images in the order ``randperm(n)`` seeded by
``(seed, e)``, and each image's two views are seeded by ``(seed, e, index)``
(``augment.view_seed``), whatever the number of workers or processes.

One DataLoader serves the whole run (:class:`RunLoader`), so its workers and prefetching
stay alive across epoch boundaries; :meth:`RunLoader.epoch` hands the training loop one
epoch's batches at a time.

Where the views are made (``--augment-on``, ``config.AUGMENT_ON``):

- ``workers``: :class:`TwoViews` runs the PIL pipeline in the workers, which hand over
  two uint8 ``S x S`` views per image;
- ``device``: :class:`Decoded` only decodes; :func:`collate_decoded` packs the batch's
  images (sizes differ) into one flat uint8 buffer, so a batch is one shared-memory
  segment, one pinned buffer and one host-to-device copy (not one per image: hundreds
  of tensors per batch in flight also exhaust file descriptors); :class:`DeviceViews`
  unpacks it on the device and makes both views of the whole batch there
  (``gpu_augment.GPUAugment``) from the generator ``batch_generator(rank_seed(seed,
  rank), epoch, step)``: the same views after a resume, other views on each rank.
  Unlike the per-image seeds of the PIL path, these depend on the per-process batch,
  so on the world size.

Before the workers start, the batches they will hold in ``/dev/shm`` (workers x
prefetch x one batch) are compared with its free space (``sslinv.cpus.check_shm``).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sslinv import paths
from sslinv.data.folder import ImagePool, load_rgb
from sslinv.distributed import World
from sslinv.errors import BadImageError
from sslinv.pretrain import augment
from sslinv.runtime import PREFETCH, _worker_context, image_batch_bytes, opencv_fork_safe


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


def _readable(pool: ImagePool, index: int, skip_bad: bool):
    """``(PIL image, None)`` of pool image ``index`` or, with ``skip_bad``, of the next
    readable one; ``(None, message)`` when there is none (raised in the main process, so
    the error stays one line)."""
    tries = len(pool) if skip_bad else 1
    for offset in range(tries):
        i = (index + offset) % len(pool)
        try:
            return load_rgb(pool.path(i)), None
        except BadImageError as exc:
            if not skip_bad:
                return None, str(exc)
            warnings.warn(f"skipped unreadable image {pool.path(i)} (--skip-bad)", stacklevel=2)
    return None, f"No readable image in {pool.root}."


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
        img, error = _readable(self.pool, index, self.skip_bad)
        if error is not None:
            return None, None, error
        q, k = augment.two_views(self.pipeline, img, augment.view_seed(self.seed, epoch, index))
        return q, k, None


def collate_views(items):
    errors = [msg for _, _, msg in items if msg is not None]
    if errors:
        return None, None, errors[0]
    return torch.stack([q for q, _, _ in items]), torch.stack([k for _, k, _ in items]), None


class Decoded(Dataset):
    """``--augment-on device``: item ``(epoch, i)`` is ``(pixels, None)``, pool image
    ``i`` decoded to a uint8 ``(H, W, 3)`` tensor at its full size (the crop is drawn on
    the device, on the whole image, as ``RandomResizedCrop`` draws it); ``(None,
    message)`` for an unreadable image; ``skip_bad`` as :class:`TwoViews`."""

    def __init__(self, pool: ImagePool, skip_bad: bool) -> None:
        self.pool, self.skip_bad = pool, skip_bad

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, key: tuple[int, int]):
        _, index = key
        img, error = _readable(self.pool, index, self.skip_bad)
        if error is not None:
            return None, error
        return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)), None


def collate_decoded(items):
    """``(flat, sizes, None)``: the batch's ``(H, W, 3)`` images one after another in one
    flat uint8 buffer, and their ``(H, W)`` as an int64 ``(B, 2)`` tensor; ``(None,
    None, message)`` when an image was unreadable."""
    errors = [msg for _, msg in items if msg is not None]
    if errors:
        return None, None, errors[0]
    imgs = [img for img, _ in items]
    sizes = torch.tensor([list(img.shape[:2]) for img in imgs], dtype=torch.int64)
    return torch.cat([img.reshape(-1) for img in imgs]), sizes, None


def unpack_decoded(flat: torch.Tensor, sizes: torch.Tensor) -> list[torch.Tensor]:
    """The contiguous ``(3, H, W)`` uint8 images (on ``flat``'s device) of a batch packed
    by :func:`collate_decoded`."""
    hw = sizes.tolist()
    parts = flat.split([3 * h * w for h, w in hw])
    return [part.view(h, w, 3).permute(2, 0, 1).contiguous() for part, (h, w) in zip(parts, hw)]


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s device views: ``seed`` on rank 0 (a one-process run
    draws what rank 0 of a larger one would for the same batch), distinct per rank."""
    return seed + rank * 2**32


class DeviceViews:
    """Both views of a decoded batch, made on the batch's device by ``GPUAugment``.

    Batch ``step`` (0-based, within ``epoch``) of rank ``rank`` draws from
    ``batch_generator(rank_seed(seed, rank), epoch, step)``: the same views whatever the
    worker count and after a resume, other views on every rank.
    """

    def __init__(self, names: Sequence[str], size: int, seed: int, rank: int) -> None:
        from sslinv.pretrain.gpu_augment import GPUAugment

        self.augment = GPUAugment(names, size)
        self.seed = rank_seed(seed, rank)

    def __call__(self, flat: torch.Tensor, sizes: torch.Tensor, epoch: int, step: int):
        from sslinv.pretrain.gpu_augment import batch_generator

        return self.augment.two_views(unpack_decoded(flat, sizes), batch_generator(self.seed, epoch, step))


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
    """The run's batches ``(query views, key views)`` on the device, one epoch at a time.

    One DataLoader iterates over :class:`RunBatches` for the whole run; ``epoch(e)``
    yields the next ``steps_per_epoch - first_step(e)`` of its batches, which are exactly
    epoch ``e``'s (the epochs must be asked for in order). With ``views`` (device
    augmentation) the loader's batches are decoded images, moved to the device and made
    into views there. An unreadable image raises :class:`BadImageError` here, in the
    main process.
    """

    def __init__(self, loader: DataLoader, batches: RunBatches, device: torch.device,
                 views: DeviceViews | None = None) -> None:
        self.batches, self.device, self.views = batches, device, views
        self.steps_per_epoch = batches.steps_per_epoch
        self._it = iter(loader)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        first = self.batches.first_step(epoch)
        for step, (a, b, error) in enumerate(itertools.islice(self._it, self.steps_per_epoch - first), start=first):
            if error is not None:
                raise BadImageError(error)
            a = a.to(self.device, non_blocking=True)
            if self.views is None:
                yield a, b.to(self.device, non_blocking=True)
            else:  # a: the packed images, b: their sizes (read on the host)
                yield self.views(a, b, epoch, step)


def train_workers(device: torch.device) -> int:
    """Default decoding workers per process. On GPUs MoCo's data pipeline (two augmented
    views per image) is the usual bottleneck, so each process gets its share of the
    usable CPUs (affinity and cgroup quota) divided among torchrun's LOCAL_WORLD_SIZE
    processes per node, less one for the main process, up to 16. Elsewhere one worker
    overlaps the augmentation with the training step (none on a single core)."""
    from sslinv.cpus import cpus_per_rank, loader_workers

    if device.type != "cuda":
        return 1 if cpus_per_rank() > 1 else 0

    return min(16, loader_workers(device.type))


def _init_worker(_: int) -> None:
    # One thread per decoding worker, so workers do not fight the model for the cores.
    torch.set_num_threads(1)


def decoded_image_bytes(pool: ImagePool, sample: int = 64) -> int:
    """Mean bytes of one of ``pool``'s images decoded to RGB, from the headers (no
    decoding) of up to ``sample`` images spread over the pool; 0 if none is readable."""
    from PIL import Image

    n = len(pool)
    picks = sorted({i * n // min(n, sample) for i in range(min(n, sample))}) if n else []
    sizes = []
    for i in picks:
        try:
            with Image.open(pool.path(i)) as im:
                w, h = im.size
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # unreadable: the loader reports it
            continue
        sizes.append(3 * w * h)
    return int(sum(sizes) / len(sizes)) if sizes else 0


def train_batch_bytes(pool: ImagePool, per_rank: int, image_size: int, augment_on: str) -> int:
    """Bytes of one loader batch of this rank: two ``S x S`` views per image, or (device
    augmentation) the decoded images, about ``per_rank`` x their mean size."""
    if augment_on == "device":
        return per_rank * decoded_image_bytes(pool)
    return image_batch_bytes(2 * per_rank, image_size)


def prefetch_factor(augment_on: str) -> int:
    """Batches each worker keeps ready: ``runtime.PREFETCH`` for PIL views; 2 for decoded
    images, which are larger (ImageNet's average image, about 470 x 390 px, holds 1.8
    times the bytes of two 224 px views; at 64 px many times) and quicker to make."""
    return 2 if augment_on == "device" else PREFETCH


def make_train_loader(dataset: Dataset, batches: RunBatches, workers: int, device: torch.device,
                      batch_bytes: int = 0, views: DeviceViews | None = None) -> RunLoader:
    """The run's loader: ``collate_views`` batches, or ``collate_decoded`` ones turned
    into views on the device by ``views``. Workers hold at most ``workers x prefetch``
    batches of ``batch_bytes`` in ``/dev/shm``: more than it has free is a one-line
    ``UsageError`` naming ``--workers`` and ``--ipc=host``/``--shm-size`` before any
    worker starts (instead of a bus error later)."""
    prefetch = prefetch_factor("device" if views is not None else "workers")
    context = None
    if workers > 0:
        from sslinv.cpus import check_shm

        check_shm(workers, prefetch, batch_bytes)
        opencv_fork_safe()
        context = _worker_context(dataset)
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate_decoded if views is not None else collate_views,
        pin_memory=device.type == "cuda",
        worker_init_fn=_init_worker if workers > 0 else None,
        prefetch_factor=prefetch if workers > 0 else None,
        multiprocessing_context=context,
    )
    return RunLoader(loader, batches, device, views)
