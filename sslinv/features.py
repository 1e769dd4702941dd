"""Batched feature extraction: devices, precision, data loading and the model call.

Images are decoded and transformed in DataLoader workers into uint8 tensors; the
main process moves each batch to the device, normalises it there and runs the model in
eval mode under ``torch.inference_mode`` (optionally autocast to bf16/fp16). Features
come back to the CPU as float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from sslinv.data.folder import ImagePool, load_rgb
from sslinv.errors import BadImageError, UsageError
from sslinv.runtime import autocast_dtype

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Extractor:
    """Runs ``model`` on uint8 image batches and returns float32 CPU features."""

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str = "fp32"):
        self.model = model.to(device).eval()
        self.device = device
        self.dtype = autocast_dtype(precision)
        if self.dtype is torch.float16 and device.type == "cpu":
            raise UsageError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU.")
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, on_device: bool = False) -> torch.Tensor:
        """Features of a uint8 batch: float32, on the CPU (or left on the device)."""
        x = images.to(self.device, non_blocking=True).float()
        # (x / 255 - mean) / std, as ToTensor + Normalize, folded into one step.
        x = (x - self.mean) / self.std
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
