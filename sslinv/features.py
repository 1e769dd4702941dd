"""Batched feature extraction: devices, precision, data loading and the model call.

Images are decoded and transformed in DataLoader workers into uint8 tensors; the
main process moves each batch to the device and runs the model (which normalises its
own input with its own mean and std) in
eval mode under ``torch.inference_mode`` (optionally autocast to bf16/fp16). Features
come back to the CPU as float32.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from sslinv.data.folder import ImagePool, load_rgb
from sslinv.distributed import World
from sslinv.errors import BadImageError, DeviceError, UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(requested: str | None, world: World) -> torch.device:
    """``None``/``auto``: cuda when present, else cpu. Under torchrun: cuda:LOCAL_RANK."""
    if requested in (None, "", "auto"):
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UsageError(f"Unknown device {requested!r}. Use cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {requested} asked for CUDA, but no CUDA GPU is available to this "
                "PyTorch build. Use --device cpu, or install a CUDA build of torch."
            )
        if device.index is None:
            device = torch.device("cuda", world.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UsageError(f"Unsupported device {requested!r}. Use cpu, cuda or cuda:N.")
    return device


def autocast_dtype(precision: str) -> torch.dtype | None:
    if precision not in PRECISIONS:
        raise UsageError(f"Unknown precision {precision!r}. Use one of: {', '.join(PRECISIONS)}.")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class Extractor:
    """Runs ``model`` on uint8 image batches and returns float32 CPU features."""

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str = "fp32"):
        self.model = model.to(device).eval()
        self.device = device
        self.dtype = autocast_dtype(precision)
        if self.dtype is torch.float16 and device.type == "cpu":
            raise UsageError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU.")

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, on_device: bool = False) -> torch.Tensor:
        """Features of a uint8 batch: float32, on the CPU (or left on the device)."""
        # 0..255 floats; the model normalises with its own mean/std (models/preprocess.py).
        x = images.to(self.device, non_blocking=True).float()
        if self.dtype is None:
            out = self.model(x)
        else:
            with torch.autocast(self.device.type, dtype=self.dtype):
                out = self.model(x)
        out = out.float()
        return out if on_device else out.cpu()


# ---------------------------------------------------------------------------- data


class CleanImages(Dataset):
    """Item ``j`` is ``(j, clean uint8 view)`` of pool image ``ids[j]``, or ``(j, None)``
    for an unreadable image when ``skip_bad``."""

    def __init__(self, pool: ImagePool, ids: Sequence[int], resize: int, crop: int, skip_bad: bool):
        self.pool, self.ids = pool, list(ids)
        self.resize, self.crop, self.skip_bad = resize, crop, skip_bad

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, j: int):
        from sslinv.transforms import clean_view

        try:
            img = load_rgb(self.pool.path(self.ids[j]))
        except BadImageError:
            if self.skip_bad:
                return j, None
            raise
        return j, clean_view(img, self.resize, self.crop)


def collate_clean(items):
    good = [(j, x) for j, x in items if x is not None]
    bad = [j for j, x in items if x is None]
    idx = torch.tensor([j for j, _ in good], dtype=torch.long)
    views = torch.stack([x for _, x in good]) if good else None
    return idx, views, bad


@dataclass(frozen=True)
class ViewTask:
    """One (row, parameter) pair: ``row`` indexes the sampled images."""

    row: int
    param: int


class ViewChunks(Dataset):
    """Item ``c`` is a chunk of consecutive (row, param) tasks, rendered as uint8 views.

    Each distinct image of a chunk is decoded once; chunks have at most ``chunk``
    views, so memory does not grow with the number of parameters ``k``.
    """

    def __init__(
        self,
        pool: ImagePool,
        image_ids: Sequence[int],
        tasks: Sequence[tuple[int, int]],
        render: Callable,
        chunk: int,
        seed: int,
    ):
        self.pool, self.image_ids = pool, list(image_ids)
        self.tasks = list(tasks)
        self.render, self.chunk, self.seed = render, chunk, seed

    def __len__(self) -> int:
        return (len(self.tasks) + self.chunk - 1) // self.chunk

    def __getitem__(self, c: int):
        part = self.tasks[c * self.chunk : (c + 1) * self.chunk]
        views, rows, params = [], [], []
        current, img = None, None
        for row, p in part:
            if row != current:
                current, img = row, load_rgb(self.pool.path(self.image_ids[row]))
            # Per-view seed from (image id, parameter): identical for any sharding.
            seed = (self.seed * 1_000_003 + self.image_ids[row]) * 4099 + p
            views.append(self.render(img, p, seed))
            rows.append(row)
            params.append(p)
        return torch.tensor(rows), torch.tensor(params), torch.stack(views)


def default_workers(device: torch.device) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if device.type == "cuda":
        return max(1, min(8, cpus - 1))
    # On the CPU the model needs the cores: one decoding worker overlaps I/O and PIL work.
    return 1 if cpus > 1 else 0


def _init_worker(_: int) -> None:
    # One thread per decoding worker: OpenCV (blur, deform) and torch would otherwise
    # each start a thread per core and fight the model for the CPUs.
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 comes with albumentations
        pass


def opencv_fork_safe() -> None:
    """Stop OpenCV's thread pool in this process before workers are forked from it.

    A pool started by earlier OpenCV calls here (painting the demo tasks, a transform
    run with ``--workers 0``) does not survive ``fork``: the child inherits its state
    without its threads, and hangs in its first OpenCV call (``_init_worker``). Pure
    OpenCV work in this process runs single-threaded afterwards; the workers do it.
    """
    import sys

    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)


def make_loader(dataset: Dataset, workers: int, batch_size: int | None, collate=None) -> DataLoader:
    if workers > 0:
        opencv_fork_safe()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_init_worker if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
    )

