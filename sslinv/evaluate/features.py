"""Feature extraction, shared by the four evaluations: the model call, datasets, cache.

Images are decoded and transformed in DataLoader workers into uint8 tensors (pinned
when the model runs on a GPU); the main process copies each batch to the device without
waiting (``non_blocking``), in channels-last layout, and runs the model (which
normalises its own input with its own mean and std, ``models/preprocess.py``) in eval
mode under ``torch.inference_mode`` (optionally autocast to bf16/fp16).

No step waits for the GPU once per batch: features stay on the device, and NaN or Inf
in them is detected by one check every ``CHECK_EVERY`` batches and once more before any
feature leaves (``FiniteCheck``), so non-finite features are never returned or cached
and the error still names the first image that gave them.

Features of a fixed image dataset (``causal3dident``, ``downstream``) are extracted once
and cached: keyed by the model identity (checkpoint hash included), the feature layer,
the dataset identity and split, and the image pipeline (never the batch size), so a
rerun, a second probe or another target costs no forward pass. Extraction is sharded
across torchrun ranks; each rank copies its features to the CPU once, and rank 0
assembles the rows by index (one tensor gather), so the result does not depend on the
number of processes. Only rank 0 holds them: the probes run there alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from sslinv import cache, distributed, paths
from sslinv.data.folder import ImagePool, load_rgb, load_rgb_or_none
from sslinv.distributed import World
from sslinv.errors import NonFiniteError, UsageError
from sslinv.models.fusion import Member
from sslinv.runtime import autocast_dtype, compute_mode, image_batch_bytes, make_loader, tf32_scope

FEATURES_FORMAT = 1
#: Batches between two finiteness checks (each check waits for the device once).
CHECK_EVERY = 8
#: Channels-last layout for the model and its input on the CPU too. Measured with
#: ResNet-18 fp32 at 224 px, batch 32, on two busy cores: median 15.3 -> 19.5 images/s,
#: features equal to 3e-7 (relative). On CUDA it is always on (cuDNN's NHWC kernels).
CHANNELS_LAST_ON_CPU = True


class Extractor:
    """Runs ``model`` on uint8 image batches and returns float32 features.

    ``forward`` leaves them on the device unchecked (nothing waits for the GPU);
    ``__call__`` checks one batch at once; ``check()`` gives a ``FiniteCheck`` that
    watches many batches with one wait every ``CHECK_EVERY``.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str = "fp32",
                 name: str = "The model", channels_last: bool | None = None):
        self.device = torch.device(device)
        self.channels_last = (self.device.type == "cuda" or CHANNELS_LAST_ON_CPU) if channels_last is None \
            else channels_last
        self.model = model.to(self.device).eval()
        if self.channels_last:  # convolution weights in NHWC; other parameters are not 4-d and stay
            self.model = self.model.to(memory_format=torch.channels_last)
        self.name = name
        self.precision = precision
        self.dtype = autocast_dtype(precision)
        if self.dtype is torch.float16 and self.device.type == "cpu":
            raise UsageError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU.")

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Float32 features of a uint8 batch, on the device, not yet checked for NaN/Inf."""
        # A pinned batch is copied while the device works; 0..255 floats, and the model
        # normalises with its own mean/std (models/preprocess.py).
        x = images.to(self.device, non_blocking=True)
        x = x.to(torch.float32, memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 \
            else x.float()
        if self.dtype is None:
            with tf32_scope(self.precision):  # TF32 for the model alone (--precision tf32)
                out = self.model(x)
        else:
            with torch.autocast(self.device.type, dtype=self.dtype):
                out = self.model(x)
        return out.float()

    def __call__(self, images: torch.Tensor, on_device: bool = False, *,
                 files: Callable[[], Sequence[Any]] | None = None) -> torch.Tensor:
        """Features of a uint8 batch: float32, on the CPU (or left on the device).

        Features holding NaN or Inf stop the run (``NonFiniteError``), so they never
        reach a cache; ``files()`` names the batch's images in that message. This waits
        for the device once per call; loops use ``forward`` and ``check()``.
        """
        out = self.forward(images)
        watch = self.check(every=1)
        watch.add(out, files)
        return out if on_device else out.cpu()

    def check(self, every: int = CHECK_EVERY) -> FiniteCheck:
        """A ``FiniteCheck`` for this extractor's batches."""
        return FiniteCheck(self, every)

    def non_finite(self, bad: int, total: int, first: Any | None) -> NonFiniteError:
        where = f", the first {first}" if first is not None else ""
        fix = ("rerun with --precision fp32" if self.dtype is not None else
               "the weights are finite but the activations overflow float32; check that the checkpoint is "
               "a trained model of its architecture")
        return NonFiniteError(
            f"{self.name} gave non-finite features (NaN or Inf) for {bad} of {total} images{where}; "
            f"nothing was cached. {fix[0].upper()}{fix[1:]}."
        )


class FiniteCheck:
    """Watches feature batches for NaN/Inf with one device wait per ``every`` batches.

    ``add(out, files)`` keeps a per-row flag on the device (no wait); every ``every``
    batches, and at ``done()``, the flags are read at once, and a non-finite row raises
    the extractor's ``NonFiniteError`` naming the first such image (``files()`` names
    the images of its batch). Call ``done()`` before any feature is returned or stored.
    """

    def __init__(self, extractor: Extractor, every: int = CHECK_EVERY):
        self.extractor, self.every = extractor, max(1, every)
        self._flags: list[torch.Tensor] = []
        self._files: list[Callable[[], Sequence[Any]] | None] = []

    def add(self, out: torch.Tensor, files: Callable[[], Sequence[Any]] | None = None) -> None:
        self._flags.append(torch.isfinite(out).all(dim=1) if out.dim() > 1 else torch.isfinite(out))
        self._files.append(files)
        if len(self._flags) >= self.every:
            self.done()

    def done(self) -> None:
        """Raise ``NonFiniteError`` if a batch added since the last check held NaN or Inf."""
        if not self._flags:
            return
        flags, files = self._flags, self._files
        self._flags, self._files = [], []
        ok = torch.cat(flags)
        if bool(ok.all()):  # the one wait for the device
            return
        first = None
        for f, names in zip(flags, files):
            bad = (~f).nonzero().flatten()
            if len(bad):
                first = names()[int(bad[0])] if names is not None else None
                break
        raise self.extractor.non_finite(int((~ok).sum()), len(ok), first)


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

        img = load_rgb_or_none(self.files[j], self.skip_bad)
        return j, None if img is None else clean_view(img, self.resize, self.crop)


def collate_clean(items):
    good = [(j, x) for j, x in items if x is not None]
    bad = [j for j, x in items if x is None]
    idx = torch.tensor([j for j, _ in good], dtype=torch.long)
    views = torch.stack([x for _, x in good]) if good else None
    return idx, views, bad


class FamilyView:
    """``render(img, p, seed)``: view ``p`` of a family's grid (a picklable callable, so
    ``ViewChunks`` reaches workers under any start method); ``render.views(img, ps,
    seeds)``: several views of one image at once."""

    def __init__(self, family, params: Sequence[dict[str, Any]], resize: int, crop: int):
        self.family, self.params, self.resize, self.crop = family, list(params), resize, crop

    def __call__(self, img, p: int, seed: int) -> torch.Tensor:
        return self.family.view(img, self.params[p], self.resize, self.crop, seed)

    def views(self, img, ps: Sequence[int], seeds: Sequence[int]) -> torch.Tensor:
        """Views ``ps`` stacked, byte for byte those of ``__call__``. Families with a
        batch renderer (the geometric ones, which draw no random numbers) share work
        between the views (``Family.views``); the others, ``deform`` with its per-view
        seeds included, render view by view."""
        if self.family.apply_batch is None:
            return torch.stack([self(img, p, s) for p, s in zip(ps, seeds)])
        return self.family.views(img, [self.params[p] for p in ps], self.resize, self.crop)


class ViewChunks(Dataset):
    """Item ``c`` is a chunk of consecutive (row, param) tasks, rendered as uint8 views:
    ``(rows, params, views, same)``.

    Each distinct image of a chunk is decoded once; chunks have at most ``chunk``
    views, so memory does not grow with the number of parameters ``k``. ``same`` flags
    the views equal, byte for byte, to the image's clean view: only the parameter
    ``identity`` (a family's identity element, e.g. rotation by 0) is compared, and its
    features are then the clean features, so the model need not see it again.
    """

    def __init__(
        self,
        pool: ImagePool,
        image_ids: Sequence[int],
        tasks: Sequence[tuple[int, int]],
        render: Callable,
        chunk: int,
        seed: int,
        identity: int | None = None,
        clean: Callable | None = None,
    ):
        self.pool, self.image_ids = pool, list(image_ids)
        self.tasks = list(tasks)
        self.render, self.chunk, self.seed = render, chunk, seed
        self.identity, self.clean = identity, clean

    def __len__(self) -> int:
        return (len(self.tasks) + self.chunk - 1) // self.chunk

    def __getitem__(self, c: int):
        part = self.tasks[c * self.chunk : (c + 1) * self.chunk]
        views, rows, params, same = [], [], [], []
        for row, group in itertools.groupby(part, key=lambda task: task[0]):  # each image decoded once
            img = load_rgb(self.pool.path(self.image_ids[row]))
            ps = [p for _, p in group]
            # Per-view seed from (image id, parameter): identical for any sharding.
            seeds = [(self.seed * 1_000_003 + self.image_ids[row]) * 4099 + p for p in ps]
            if hasattr(self.render, "views"):
                rendered = list(self.render.views(img, ps, seeds))
            else:
                rendered = [self.render(img, p, s) for p, s in zip(ps, seeds)]
            for p, view in zip(ps, rendered):
                views.append(view)
                rows.append(row)
                params.append(p)
                same.append(p == self.identity and self.clean is not None and torch.equal(view, self.clean(img)))
        return torch.tensor(rows), torch.tensor(params), torch.stack(views), torch.tensor(same, dtype=torch.bool)


class CleanView:
    """``clean(img)``: the clean view (a picklable callable for ``ViewChunks``)."""

    def __init__(self, resize: int, crop: int):
        self.resize, self.crop = resize, crop

    def __call__(self, img) -> torch.Tensor:
        from sslinv.transforms import clean_view

        return clean_view(img, self.resize, self.crop)


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
) -> torch.Tensor | None:
    """Features (n x d, float32, CPU) of every item of ``dataset`` (items ``(j, uint8)``),
    in item order, on rank 0; None on the other ranks.

    Each rank extracts its shard into one buffer on the device, checks it for NaN/Inf
    (``FiniteCheck``), copies it to the CPU once, and rank 0 gathers the shards. A rank
    that found non-finite features or an unreadable image stops every rank with its
    error (the first such rank's; ``distributed.run_then_gather``), before anything is
    gathered or cached.
    """
    n = len(dataset)
    mine = distributed.shard(n, world)
    subset = torch.utils.data.Subset(dataset, list(mine))
    crop = getattr(dataset, "crop", None)  # CleanImages, SplitImages: square uint8 views
    loader = make_loader(subset, workers, batch_size, _collate, device=extractor.device,
                         batch_bytes=image_batch_bytes(batch_size, crop) if crop else None)
    files = _files(dataset)

    def local_pass() -> torch.Tensor | None:
        watch = extractor.check()
        buf: torch.Tensor | None = None  # this rank's features, on the device
        done = 0
        for idx, views in loader:
            out = extractor.forward(views)
            watch.add(out, None if files is None else lambda idx=idx: [files[j] for j in idx.tolist()])
            if buf is None:
                buf = torch.empty(len(mine), out.shape[1], dtype=torch.float32, device=extractor.device)
            # The loader keeps shard order: the batch holds rows done..done+b of the shard.
            if not torch.equal(idx, torch.tensor(mine[done:done + len(idx)])):
                raise RuntimeError("the loader returned the shard out of order")
            buf[done:done + len(idx)] = out
            done += len(idx)
            if progress:
                progress(len(idx))
        watch.done()
        return buf

    # Every rank learns the feature dimension (a rank may have no rows), or the first
    # rank's error (unreadable image, non-finite features), before anything is gathered.
    buf, found = distributed.run_then_gather(world, local_pass, share=lambda b: None if b is None else b.shape[1])
    dims = [d for d in found if d is not None]
    if not dims:
        raise ValueError("no features were extracted (empty dataset)")
    local = buf.cpu() if buf is not None else torch.empty(0, dims[0])  # the one device -> host copy
    return distributed.gather_shards(world, local, n)


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
    compute: Callable[[], torch.Tensor | None],
    world: World,
) -> tuple[torch.Tensor | None, bool]:
    """Load the features recorded under ``key`` or compute them (all ranks; ``compute``
    returns them on rank 0, None elsewhere) and store them (rank 0). Returns
    ``(features, hit)``: the features on rank 0 only (None on the other ranks, which
    neither load nor receive them); ``hit`` on every rank."""
    return cache.cached(
        features_path(cache_root, key), key, compute,
        save=lambda feats, p: torch.save(feats.contiguous(), p),
        load=lambda p: torch.load(p, map_location="cpu", weights_only=True),
        extra=lambda feats: {"shape": list(feats.shape)},
        world=world,
        main_only=True,
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
) -> tuple[list[torch.Tensor] | None, list[dict[str, Any]]]:
    """The features of ``dataset`` (items ``(j, uint8)``) for each member of a fused
    model, each cached under the member's own identity, so any fusion containing it (or
    the member alone) reuses them; fuse with ``sslinv.models.fusion.fuse``. The features
    are on rank 0 only (None on the other ranks). Also returns, per member and on every
    rank, ``{"spec", "dim", "cached", "path"}``."""
    parts, info = [], []
    for m in members:
        # The device kind and precision are part of the key: CPU and GPU features never mix.
        key = features_key(m.identity, dataset_identity, {**pipeline, **compute_mode(device, precision)})

        def compute(m: Member = m) -> torch.Tensor | None:
            mine = len(distributed.shard(len(dataset), world))
            progress = reporter.task(f"{label}: features of {m.spec}", mine)
            return extract(Extractor(m.model, device, precision, name=m.spec), dataset,
                           batch_size=batch_size, workers=workers, world=world, progress=progress)

        feats, hit = cached_features(cache_root, key, compute, world)
        parts.append(feats)
        info.append({"spec": m.spec, "dim": int(m.identity["dim"]), "cached": hit,
                     "path": str(features_path(cache_root, key))})
    return (parts if world.is_main else None), info
