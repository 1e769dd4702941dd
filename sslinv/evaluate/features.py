"""Feature extraction, shared by the four evaluations: the model call, datasets, cache.

Images are decoded and transformed in DataLoader workers into uint8 tensors; the
main process moves each batch to the device and runs the model (which normalises its
own input with its own mean and std, ``models/preprocess.py``) in eval mode under ``torch.inference_mode`` (optionally autocast to bf16/fp16). Features
come back to the CPU as float32.

Features of a fixed image dataset (``causal3dident``, ``downstream``) are extracted once
and cached: keyed by the model identity (checkpoint hash included), the feature layer,
the dataset identity and split, and the image pipeline, so a rerun, a second probe or
another target costs no forward pass. Extraction is sharded across torchrun ranks and
rows are assembled by index, so the result does not depend on the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from sslinv import cache, distributed, paths
from sslinv.data.folder import ImagePool, load_rgb
from sslinv.distributed import World
from sslinv.errors import BadImageError, NonFiniteError, UsageError
from sslinv.models.fusion import Member
from sslinv.runtime import autocast_dtype, compute_mode, image_batch_bytes, make_loader

FEATURES_FORMAT = 1


class Extractor:
    """Runs ``model`` on uint8 image batches and returns float32 CPU features."""

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str = "fp32",
                 name: str = "The model"):
        self.model = model.to(device).eval()
        self.name = name
        self.device = device
        self.dtype = autocast_dtype(precision)
        if self.dtype is torch.float16 and device.type == "cpu":
            raise UsageError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU.")

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, on_device: bool = False, *,
                 files: Callable[[], Sequence[Any]] | None = None) -> torch.Tensor:
        """Features of a uint8 batch: float32, on the CPU (or left on the device).

        Features holding NaN or Inf stop the run (``NonFiniteError``), so they never
        reach a cache; ``files()`` names the batch's images in that message.
        """
        # 0..255 floats; the model normalises with its own mean/std (models/preprocess.py).
        x = images.to(self.device, non_blocking=True).float()
        if self.dtype is None:
            out = self.model(x)
        else:
            with torch.autocast(self.device.type, dtype=self.dtype):
                out = self.model(x)
        out = out.float()
        if not bool(torch.isfinite(out).all()):  # one check (and sync) per batch
            raise self._non_finite(out, files)
        return out if on_device else out.cpu()

    def _non_finite(self, out: torch.Tensor, files: Callable[[], Sequence[Any]] | None) -> NonFiniteError:
        bad = (~torch.isfinite(out).all(dim=1)).nonzero().flatten().tolist()
        first = f", the first {files()[bad[0]]}" if files is not None else ""
        fix = ("rerun with --precision fp32" if self.dtype is not None else
               "the weights are finite but the activations overflow float32; check that the checkpoint is "
               "a trained model of its architecture")
        return NonFiniteError(
            f"{self.name} gave non-finite features (NaN or Inf) for {len(bad)} of {len(out)} images of a "
            f"batch{first}; nothing was cached. {fix[0].upper()}{fix[1:]}."
        )


# ---------------------------------------------------------------------------- data


class CleanImages(Dataset):
    """Item ``j`` is ``(j, clean uint8 view)`` of ``files[j]``, or ``(j, None)`` for an
    unreadable image when ``skip_bad``."""

    def __init__(self, files: Sequence[Path], resize: int, crop: int, skip_bad: bool):
        self.files = list(files)
        self.resize, self.crop, self.skip_bad = resize, crop, skip_bad

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, j: int):
        from sslinv.transforms import clean_view

        try:
            img = load_rgb(self.files[j])
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


class FamilyView:
    """``render(img, p, seed)``: view ``p`` of a family's grid (a picklable callable, so
    ``ViewChunks`` reaches workers under any start method)."""

    def __init__(self, family, params: Sequence[dict[str, Any]], resize: int, crop: int):
        self.family, self.params, self.resize, self.crop = family, list(params), resize, crop

    def __call__(self, img, p: int, seed: int) -> torch.Tensor:
        return self.family.view(img, self.params[p], self.resize, self.crop, seed)


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


# ---------------------------------------------------------------- feature cache


def _collate(items):
    idx = torch.tensor([j for j, _ in items], dtype=torch.long)
    return idx, torch.stack([x for _, x in items])


def extract(
    extractor: Extractor,
    dataset: Dataset,
    *,
    batch_size: int,
    workers: int,
    world: World,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Features (n x d, float32, CPU) of every item of ``dataset`` (items ``(j, uint8)``),
    in item order, on every rank."""
    n = len(dataset)
    mine = list(distributed.shard(n, world))
    subset = torch.utils.data.Subset(dataset, mine)
    crop = getattr(dataset, "crop", None)  # CleanImages, SplitImages: square uint8 views
    loader = make_loader(subset, workers, batch_size, _collate, device=extractor.device,
                         batch_bytes=image_batch_bytes(batch_size, crop) if crop else None)
    idx_parts, feat_parts = [], []
    files = _files(dataset)
    for idx, views in loader:
        idx_parts.append(idx)
        feat_parts.append(extractor(views, files=None if files is None else
                                    lambda idx=idx: [files[j] for j in idx.tolist()]))
        if progress:
            progress(len(idx))
    local = (
        torch.cat(idx_parts) if idx_parts else torch.empty(0, dtype=torch.long),
        torch.cat(feat_parts) if feat_parts else None,
    )
    out: torch.Tensor | None = None
    for idx, feats in distributed.all_gather_objects(world, local):
        if feats is None:
            continue
        if out is None:
            out = torch.empty(n, feats.shape[1], dtype=torch.float32)
        out[idx] = feats
    if out is None:
        raise ValueError("no features were extracted (empty dataset)")
    return out


def _files(dataset: Dataset) -> Sequence[Any] | None:
    """The image files of a dataset of ``(j, uint8)`` items, for messages (None if unknown)."""
    files = getattr(dataset, "files", None)
    if files is None and getattr(dataset, "split", None) is not None:
        files = getattr(dataset.split, "files", None)
    return files


def features_key(model_identity: dict[str, Any], dataset: dict[str, Any], pipeline: dict[str, Any]) -> dict[str, Any]:
    return {"format": FEATURES_FORMAT, "model": model_identity, "dataset": dataset, "pipeline": pipeline}


def features_path(cache_root: Path, key: dict[str, Any]) -> Path:
    return paths.features_dir(cache_root, key["model"].get("spec", "model")) / f"{cache.key_hash(key)}.pt"


def cached_features(
    cache_root: Path,
    key: dict[str, Any],
    compute: Callable[[], torch.Tensor],
    world: World,
) -> tuple[torch.Tensor, bool]:
    """Load the features recorded under ``key`` or compute them (all ranks) and store them
    (rank 0). Returns ``(features, hit)``; identical on every rank."""
    return cache.cached(
        features_path(cache_root, key), key, compute,
        save=lambda feats, p: torch.save(feats.contiguous(), p),
        load=lambda p: torch.load(p, map_location="cpu", weights_only=True),
        extra=lambda feats: {"shape": list(feats.shape)},
        world=world,
    )


def member_features(
    members: Sequence[Member],
    dataset: Dataset,
    dataset_identity: dict[str, Any],
    pipeline: dict[str, Any],
    *,
    cache_root: Path,
    precision: str,
    batch_size: int,
    device: torch.device,
    workers: int,
    world: World,
    reporter,
    label: str,
) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """The features of ``dataset`` (items ``(j, uint8)``) for each member of a fused
    model, each cached under the member's own identity, so any fusion containing it (or
    the member alone) reuses them; fuse with ``sslinv.models.fusion.fuse``. Also returns,
    per member, ``{"spec", "dim", "cached", "path"}``."""
    parts, info = [], []
    for m in members:
        # The device kind and precision are part of the key: CPU and GPU features never mix.
        key = features_key(m.identity, dataset_identity, {**pipeline, **compute_mode(device, precision)})

        def compute(m: Member = m) -> torch.Tensor:
            mine = len(distributed.shard(len(dataset), world))
            progress = reporter.task(f"{label}: features of {m.spec}", mine)
            return extract(Extractor(m.model, device, precision, name=m.spec), dataset,
                           batch_size=batch_size, workers=workers, world=world, progress=progress)

        feats, hit = cached_features(cache_root, key, compute, world)
        parts.append(feats)
        info.append({"spec": m.spec, "dim": int(m.identity["dim"]), "cached": hit,
                     "path": str(features_path(cache_root, key))})
    return parts, info
