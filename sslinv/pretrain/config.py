"""The pretraining recipe: the run's config, its checks, its learning-rate schedule.

Training recipe (protocols.md section 6; facts from facebookresearch/moco
``main_moco.py`` and linusericsson/ssl-invariances ``pretraining/main_moco.py``): SGD
with momentum 0.9 and weight decay 1e-4 on the query encoder; learning rate
``lr * batch / 256`` (linear scaling, 0.03 at 256), set once per epoch by the cosine
schedule ``0.5 (1 + cos(pi epoch / epochs))`` (``cos=False``: x0.1 at 60% and 80% of the
epochs, the reference's 120 and 160 of 200); ImageFolder images in a fresh random order
each epoch, the last incomplete batch dropped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sslinv import paths
from sslinv.distributed import World
from sslinv.errors import UsageError
from sslinv.pretrain import augment
from sslinv.pretrain.moco import default_bn_splits, head_dim

BASE_BATCH = 256  # the batch size the learning rate is quoted for

#: Config fields that define the numbers of a run: a checkpoint whose recipe differs in
#: any of them is a different run (resuming it under this config is refused).
RECIPE_FIELDS = (
    "preset", "augment", "arch", "data", "batch_size", "lr", "momentum", "weight_decay",
    "moco_dim", "moco_k", "moco_m", "moco_t", "cos", "bn_splits", "seed", "image_size", "skip_bad", "augment_on",
    "precision",
)
#: What a checkpoint written before a recipe field existed meant by it.
RECIPE_DEFAULTS = {"augment_on": "workers", "precision": "fp32"}

#: Where the two views of each image are made (``--augment-on``): ``workers`` = PIL in
#: the DataLoader workers (``augment``, the reference's pipeline); ``device`` = the
#: workers only decode and ``gpu_augment.GPUAugment`` makes a batch's views on the
#: training device. The views differ (other random numbers, float resampling), so the
#: choice is part of the recipe.
AUGMENT_ON = ("workers", "device")


@dataclass
class PretrainConfig:
    name: str
    augment: list[str]
    arch: str
    cache_dir: Path
    data_root: Path
    preset: str | None = None
    data: str | None = None  # None: <data-root>/imagenet/train; "demo"; or a folder
    epochs: int = 200
    batch_size: int = 256  # global, over all processes
    lr: float = 0.03  # for a batch of 256, scaled linearly
    momentum: float = 0.9
    weight_decay: float = 1e-4
    moco_dim: int | None = None  # None: 128 (384 for resnet50w3)
    moco_k: int = 65536
    moco_m: float = 0.999
    moco_t: float = 0.2
    cos: bool = True
    bn_splits: int | None = None  # None: default_bn_splits
    seed: int = 0
    image_size: int = 224
    augment_on: str = "workers"  # AUGMENT_ON
    workers: int | None = None
    device: str | None = None
    precision: str = "fp32"
    save_every_steps: int = 0
    log_every_steps: int = 50
    skip_bad: bool = False
    resume: bool = False
    force: bool = False

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d["cache_dir"], d["data_root"] = str(self.cache_dir), str(self.data_root)
        d["augment"] = list(self.augment)
        return d


@dataclass
class PretrainResult:
    name: str
    checkpoint: str  # the exported MoCo-layout file
    run_dir: str
    log: str
    arch: str
    augment: list[str]
    augment_on: str
    epochs: int
    start_epoch: int  # first epoch this call trained (== epochs when it was finished already)
    resumed: bool
    finished_before: bool
    world_size: int
    device: str
    final: dict[str, Any] | None = field(default=None)  # the last epoch's log record

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def lr_at(cfg: PretrainConfig, epoch: int, epochs: int | None = None) -> float:
    """Learning rate of ``epoch`` (0-based): linear scaling, then cosine or step schedule."""
    epochs = cfg.epochs if epochs is None else epochs
    lr = cfg.lr * cfg.batch_size / BASE_BATCH
    if cfg.cos:
        return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    for milestone in (round(0.6 * epochs), round(0.8 * epochs)):
        if epoch >= milestone:
            lr *= 0.1
    return lr


def check_name(name: str) -> str:
    """A run name is a file name (``<name>.pth.tar``) and a ``--model`` name."""
    from sslinv.models.zoo import MODELS

    if not name or paths.safe_name(name) != name or "+" in name:
        raise UsageError(
            f"--name {name!r} cannot name a model file: use letters, digits and '-', '_', '.' "
            "(no '+', which fuses models)."
        )
    if name in MODELS and MODELS.get(name).kind != "checkpoint":
        raise UsageError(
            f"--name {name!r} is a built-in model ({MODELS.get(name).description}); "
            "choose another name for the trained model."
        )
    return name


def resolve_recipe(cfg: PretrainConfig, world: World) -> PretrainConfig:
    """Fill in the defaults that depend on the architecture and the world; check the rest."""
    from sslinv.models.resnet import ARCHS

    ARCHS.get(cfg.arch)  # unknown architecture: did-you-mean
    augment.check_augment(cfg.augment)
    check_name(cfg.name)
    for opt, v in (("--epochs", cfg.epochs), ("--batch-size", cfg.batch_size), ("--image-size", cfg.image_size),
                   ("--moco-k", cfg.moco_k)):
        if v < 1:
            raise UsageError(f"{opt} must be positive, not {v}.")
    if cfg.augment_on not in AUGMENT_ON:
        raise UsageError(f"--augment-on {cfg.augment_on!r}: use one of {', '.join(AUGMENT_ON)}.")
    if not 0.0 <= cfg.moco_m < 1.0 or cfg.moco_t <= 0:
        raise UsageError("--moco-m must lie in [0, 1) and --moco-t be positive.")
    if cfg.batch_size % world.world_size:
        raise UsageError(
            f"--batch-size {cfg.batch_size} (global) does not split evenly over {world.world_size} "
            f"processes. Use a multiple of {world.world_size}."
        )
    per_rank = cfg.batch_size // world.world_size
    moco_dim = cfg.moco_dim or head_dim(cfg.arch)
    bn_splits = cfg.bn_splits or default_bn_splits(per_rank, world.world_size)
    if per_rank % bn_splits:
        raise UsageError(
            f"--bn-splits {bn_splits} does not divide the per-process batch {per_rank}; "
            "choose a divisor of it."
        )
    if cfg.moco_k < cfg.batch_size:
        raise UsageError(f"--moco-k {cfg.moco_k} is smaller than one global batch ({cfg.batch_size}); "
                         "the queue must hold at least one batch of keys.")
    return PretrainConfig(**{**asdict(cfg), "moco_dim": moco_dim, "bn_splits": bn_splits})
