"""Features of a fixed image dataset, extracted once and cached.

Used by the commands that probe frozen features (``causal3dident``, ``downstream``,
``realworld``): features are keyed by the model identity (checkpoint hash included), the
feature layer, the dataset identity and split, and the image pipeline, so a rerun, a
second probe or another target costs no forward pass. Extraction is sharded across
torchrun ranks and rows are assembled by index, so the result does not depend on the
number of processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from sslinv import cache, distributed, paths
from sslinv.distributed import World
from sslinv.features import Extractor
from sslinv.runtime import make_loader

FEATURES_FORMAT = 1


class ImageList(Dataset):
    """Item ``j`` is ``(j, uint8 tensor)``: ``render(load(files[j]))``.

    ``render`` maps a PIL image to a uint8 (3, H, W) tensor, e.g.
    ``functools.partial(sslinv.transforms.clean_view, resize=224, crop=224)``; any
    dataset-specific crop (a landmark box, a central square) happens inside it.
    """

    def __init__(self, files: Sequence[Path], render: Callable):
        self.files, self.render = list(files), render

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, j: int):
        from sslinv.data.folder import load_rgb

        return j, self.render(load_rgb(self.files[j]), j)


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
    loader = make_loader(subset, workers, batch_size, _collate)
    idx_parts, feat_parts = [], []
    for idx, views in loader:
        idx_parts.append(idx)
        feat_parts.append(extractor(views))
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


def features_key(model_identity: dict[str, Any], dataset: dict[str, Any], pipeline: dict[str, Any]) -> dict[str, Any]:
    return {"format": FEATURES_FORMAT, "model": model_identity, "dataset": dataset, "pipeline": pipeline}


def cached_features(
    cache_root: Path,
    key: dict[str, Any],
    compute: Callable[[], torch.Tensor],
    world: World,
) -> tuple[torch.Tensor, bool]:
    """Load the features recorded under ``key`` or compute them (all ranks) and store them
    (rank 0). Returns ``(features, hit)``; identical on every rank."""
    path = paths.features_dir(cache_root, key["model"].get("spec", "model")) / f"{cache.key_hash(key)}.pt"
    return cache.cached(
        path, key, compute,
        save=lambda feats, p: torch.save(feats.contiguous(), p),
        load=lambda p: torch.load(p, map_location="cpu", weights_only=True),
        extra=lambda feats: {"shape": list(feats.shape)},
        world=world,
    )
