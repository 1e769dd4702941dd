"""`sslinv pretrain`: the MoCo v2 training loop, checkpoints, resumption, export, log.

Contents of ``run``:
1. world and device (one process per GPU under torchrun; NCCL on GPUs, gloo on CPU);
2. recipe checks (augmentations, architecture, batch split, BN splits, learning rate);
3. data: an image folder (labels unused), two augmented views per image;
4. the run folder: start, resume from the last checkpoint, or report a finished run;
5. model and optimiser (restored when resuming), DistributedDataParallel when > 1 process;
6. the epochs: SGD steps, progress, checkpoints every epoch (and every
   ``save_every_steps``), a JSON-lines log;
7. export of the final encoders in the MoCo layout to ``<cache>/checkpoints/<name>.pth.tar``,
   so ``sslinv synthetic --model <name>`` finds it.

Training recipe (protocols.md section 6; facts from facebookresearch/moco
``main_moco.py`` and linusericsson/ssl-invariances ``pretraining/main_moco.py``): SGD
with momentum 0.9 and weight decay 1e-4 on the query encoder; learning rate
``lr * batch / 256`` (linear scaling, 0.03 at 256), set once per epoch by the cosine
schedule ``0.5 (1 + cos(pi epoch / epochs))`` (``cos=False``: x0.1 at 60% and 80% of the
epochs, the reference's 120 and 160 of 200); ImageFolder images in a fresh random order
each epoch, the last incomplete batch dropped.

Exact resumption: a run interrupted and resumed gives the numbers of an uninterrupted
one. Nothing in the loop draws from the global RNGs: the image order comes from
``(seed, epoch)``, each image's two views from ``(seed, epoch, index)``
(``augment.view_seed``, whatever the number of workers or processes), and the key
shuffle from a generator whose state is checkpointed; the global RNG states are saved
and restored anyway. A checkpoint holds model, optimiser, scaler, epoch, step, RNG
states, the partial epoch's running sums and the full config, and is loadable with
``torch.load(..., weights_only=True)``. On GPUs cuDNN picks non-deterministic kernels,
so there the match is statistical, not bitwise.

Run folder ``<cache>/pretrain/<name>/``: ``checkpoint.pth.tar`` (latest, replaced
atomically), ``log.jsonl`` (one JSON object per epoch, and per ``log_every_steps``
steps), ``config.json``; a lock file keeps two jobs from training the same name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from sslinv import cache, distributed, paths, results
from sslinv.data.folder import ImagePool, load_rgb
from sslinv.distributed import World
from sslinv.errors import BadImageError, CheckpointError, DataNotFoundError, SslinvError, UsageError
from sslinv.runtime import autocast_dtype, default_workers, opencv_fork_safe, resolve_device
from sslinv.pretrain import augment
from sslinv.pretrain.moco import MoCo, default_bn_splits, head_dim

#: Written into every training checkpoint; bumped when its contents change meaning.
CHECKPOINT_FORMAT = "sslinv.pretrain/1"
BASE_BATCH = 256  # the batch size the learning rate is quoted for

#: Config fields that define the numbers of a run: a checkpoint whose recipe differs in
#: any of them is a different run (resuming it under this config is refused).
RECIPE_FIELDS = (
    "preset", "augment", "arch", "data", "batch_size", "lr", "momentum", "weight_decay",
    "moco_dim", "moco_k", "moco_m", "moco_t", "cos", "bn_splits", "seed", "image_size", "skip_bad",
)


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
    epochs: int
    start_epoch: int  # first epoch this call trained (== epochs when it was finished already)
    resumed: bool
    finished_before: bool
    world_size: int
    device: str
    final: dict[str, Any] | None = field(default=None)  # the last epoch's log record

    def summary(self) -> dict[str, Any]:
        return asdict(self)


class Reporter:
    """Callbacks the CLI plugs in (rank 0 only); the defaults do nothing."""

    def start(self, plan: dict[str, Any]) -> None:
        pass

    def epoch_start(self, epoch: int, step: int, steps: int) -> None:
        pass

    def step(self, epoch: int, step: int, metrics: dict[str, Any] | None) -> None:
        pass

    def epoch_end(self, record: dict[str, Any]) -> None:
        pass

    def checkpoint(self, path: Path, epoch: int, step: int) -> None:
        pass

    def task(self, description: str, total: int):
        """A progress callback for a side task (painting the demo pool)."""
        return lambda n: None

    def warn(self, message: str) -> None:
        warnings.warn(message, stacklevel=2)

    def info(self, message: str) -> None:
        pass


# ------------------------------------------------------------------------------ places


class TrainedLongerError(UsageError):
    """The run exists and has trained more epochs than asked for (``trained``)."""

    def __init__(self, message: str, trained: int) -> None:
        super().__init__(message)
        self.trained = trained


def run_dir(cache_root: Path, name: str) -> Path:
    return Path(cache_root) / "pretrain" / paths.safe_name(name)


def checkpoint_file(cache_root: Path, name: str) -> Path:
    return run_dir(cache_root, name) / "checkpoint.pth.tar"


def log_file(cache_root: Path, name: str) -> Path:
    return run_dir(cache_root, name) / "log.jsonl"


def export_sidecar(path: Path) -> Path:
    return Path(str(path) + ".json")


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


# ------------------------------------------------------------------------------ data


def resolve_training_pool(data: str | None, cache_root: Path, data_root: Path, world: World, reporter) -> ImagePool:
    """``None``: ImageNet train under the data root; ``demo``: the built-in pool; else a folder."""
    from sslinv.data.folder import scan_pool
    from sslinv.data.pool import resolve_pool

    if data is None:
        root = Path(data_root) / "imagenet" / "train"
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

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        lo, hi = self.world.rank * self.per_rank, (self.world.rank + 1) * self.per_rank
        for epoch in range(self.start_epoch, self.epochs):
            perm = self.order(epoch)
            first = self.start_step if epoch == self.start_epoch else 0
            for s in range(first, self.steps_per_epoch):
                batch = perm[s * self.global_batch : (s + 1) * self.global_batch][lo:hi]
                yield [(epoch, int(i)) for i in batch]


def train_workers(device: torch.device) -> int:
    """Default decoding workers per process. On GPUs MoCo's data pipeline (two augmented
    views per image) is the usual bottleneck, so each process gets its share of the
    node's cores (torchrun's LOCAL_WORLD_SIZE processes per node), up to 16."""
    if device.type != "cuda":
        return default_workers(device)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(16, cpus // local - 1))


def _init_worker(_: int) -> None:
    # One thread per decoding worker, so workers do not fight the model for the cores.
    torch.set_num_threads(1)


def make_train_loader(dataset: Dataset, batches: Sampler, workers: int, device: torch.device) -> DataLoader:
    if workers > 0:
        opencv_fork_safe()
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate_views,
        pin_memory=device.type == "cuda",
        worker_init_fn=_init_worker if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
    )


# ------------------------------------------------------------------------------ the step


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


def train_step(net, optimizer, scaler, im_q: torch.Tensor, im_k: torch.Tensor, dtype) -> tuple[torch.Tensor, ...]:
    """One SGD step of MoCo; returns (loss, top-1 hits, top-5 hits) as device tensors
    (no host sync). ``net`` is a MoCo module or its DistributedDataParallel wrapper."""
    device = im_q.device
    with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
        logits = net(im_q, im_k)
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=device)  # the positive is column 0
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    with torch.no_grad():
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit1 = (top5[:, 0] == 0).sum()
        hit5 = (top5 == 0).any(dim=1).sum()
    return loss.detach(), hit1, hit5


class Meter:
    """Running sums of loss, top-1/top-5 hits and images on the device (float64, no sync);
    ``totals`` sums them over the ranks."""

    def __init__(self, device: torch.device, world: World) -> None:
        self.device, self.world = device, world
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)
        self._n: dict[int, torch.Tensor] = {}

    def add(self, loss: torch.Tensor, hit1: torch.Tensor, hit5: torch.Tensor, n: int) -> None:
        if n not in self._n:  # one host-to-device copy per batch size, not per step
            self._n[n] = torch.tensor(float(n), dtype=torch.float64, device=self.device)
        count = self._n[n]
        self.sums += torch.stack([loss.double() * count, hit1.double(), hit5.double(), count])

    def totals(self) -> list[float]:
        s = self.sums.clone()
        if self.world.is_distributed:
            import torch.distributed as dist

            dist.all_reduce(s)
        return s.cpu().tolist()

    def load(self, totals: list[float] | None) -> None:
        """Restore global sums: on rank 0 only, so the next ``totals`` counts them once."""
        self.sums.zero_()
        if totals and self.world.is_main:
            self.sums += torch.tensor(totals, dtype=torch.float64, device=self.device)

    def reset(self) -> None:
        self.sums.zero_()


def metrics_of(totals: list[float]) -> dict[str, float]:
    loss, hit1, hit5, n = totals
    n = max(n, 1.0)
    return {"loss": loss / n, "acc1": 100.0 * hit1 / n, "acc5": 100.0 * hit5 / n, "images": int(totals[3])}


# ------------------------------------------------------------------------------ checkpoints


def rng_states(model: MoCo) -> dict[str, Any]:
    """Every RNG state, as tensors and plain values (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "shuffle": model.shuffle_generator.get_state(),
        "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_states(model: MoCo, state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    model.shuffle_generator.set_state(state["shuffle"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_training_checkpoint(path: Path, model: MoCo, optimizer, scaler, *, epoch: int, step: int,
                             global_step: int, meter: list[float] | None, cfg: dict, run_id: str,
                             arch: str) -> None:
    """The training checkpoint: the MoCo layout (``epoch``, ``arch``, ``state_dict``,
    ``optimizer``) plus what exact resumption needs. ``epoch`` counts finished epochs, as
    MoCo's does; ``step`` counts the steps done in the next one."""
    import sslinv

    state = {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "step": step,
        "global_step": global_step,
        "arch": arch,
        "state_dict": model.moco_state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "rng": rng_states(model),
        "meter": meter,
        "config": cfg,
        "run_id": run_id,
        "sslinv": sslinv.__version__,
        "torch": str(torch.__version__),
    }
    with cache.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise CheckpointError(
            f"Cannot read the training checkpoint {path} ({type(e).__name__}). "
            "Pass --force to start the run over, or --name NEW for a separate run."
        ) from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not an sslinv pretrain checkpoint (format {CHECKPOINT_FORMAT}). "
            "Pass --force to start the run over, or --name NEW for a separate run."
        )
    return state


def export_model(path: Path, model: MoCo, epoch: int, sidecar: dict[str, Any]) -> None:
    """The MoCo release layout (optimizer removed) at ``path``, plus a JSON sidecar."""
    from sslinv.models.checkpoints import save_moco_checkpoint

    q = {k: v.detach().cpu() for k, v in model.encoder_q.state_dict().items()}
    k = {k: v.detach().cpu() for k, v in model.encoder_k.state_dict().items()}
    head = {n: v for n, v in q.items() if n.startswith("fc.")}
    save_moco_checkpoint(
        path, q, model.arch, mlp_dim=model.dim, epoch=epoch, optimizer=None,
        head_state_dict=head, key_state_dict=k, queue=model.queue.detach().cpu(),
        queue_ptr=int(model.queue_ptr),
    )
    cache.write_json(export_sidecar(path), sidecar)


# ------------------------------------------------------------------------------ the log


def read_log(path: Path | str) -> list[dict[str, Any]]:
    """The records of a run's JSON-lines log (a line cut short by a crash is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def truncate_log(path: Path, global_step: int) -> None:
    """Drop records written after the checkpoint we resume from (they will be redone)."""
    records = [r for r in read_log(path) if r.get("global_step", 0) <= global_step]
    with cache.atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))


class LogWriter:
    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


# ------------------------------------------------------------------------------ run


def _recipe(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg.get(k) for k in RECIPE_FIELDS}


def _describe_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    parts = []
    for k in RECIPE_FIELDS:
        if old.get(k) != new.get(k):
            parts.append(f"--{k.replace('_', '-')} {old.get(k)!r} there, {new.get(k)!r} now")
    return "; ".join(parts)


def _plan(cfg: PretrainConfig, public: dict[str, Any], loaded: dict[str, Any]) -> dict[str, Any]:
    """Rank 0: start fresh, resume, or report finished; checks the export target's owner.
    A checkpoint read here is kept in ``loaded["state"]`` (read once, not twice)."""
    ckpt_path = checkpoint_file(cfg.cache_dir, cfg.name)
    export = paths.checkpoint_path(cfg.cache_dir, cfg.name)
    if cfg.force:  # start over: this name's checkpoint, log and exported model go
        for stale in (ckpt_path, log_file(cfg.cache_dir, cfg.name), export, export_sidecar(export)):
            stale.unlink(missing_ok=True)
    if not ckpt_path.exists():
        if cfg.resume:
            raise CheckpointError(
                f"Nothing to resume: no checkpoint for the run {cfg.name!r} at {ckpt_path}. "
                "Leave out --resume to start it."
            )
        plan = {"mode": "fresh", "run_id": uuid.uuid4().hex[:12], "epoch": 0, "step": 0, "global_step": 0}
    else:
        state = loaded["state"] = load_training_checkpoint(ckpt_path)
        old = state.get("config", {})
        if _recipe(old) != _recipe(public):
            raise UsageError(
                f"A run named {cfg.name!r} with another recipe exists in {ckpt_path.parent} "
                f"({_describe_diff(old, public)}). Rerun with its settings to resume it, pass "
                "--name NEW for a separate run, or --force to start it over."
            )
        epoch, step = int(state["epoch"]), int(state["step"])
        if epoch > cfg.epochs or (epoch == cfg.epochs and step > 0):
            raise TrainedLongerError(
                f"The run {cfg.name!r} has already trained {epoch} epochs, more than --epochs "
                f"{cfg.epochs}. Pass --epochs {max(epoch, old.get('epochs', epoch))} to export it "
                "as it is, --force to start over, or --name NEW.",
                trained=max(epoch, int(old.get("epochs", epoch))),
            )
        mode = "finished" if epoch == cfg.epochs else "resume"
        plan = {"mode": mode, "run_id": state["run_id"], "epoch": epoch, "step": step,
                "global_step": int(state["global_step"]), "old_epochs": int(old.get("epochs", cfg.epochs))}
    if export.exists() and not cfg.force:
        owner = None
        try:
            owner = cache.read_json(export_sidecar(export)).get("run_id")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner != plan["run_id"]:
            raise UsageError(
                f"A model named {cfg.name!r} already exists at {export} and was not written by "
                "this run. Pass --name NEW to train under another name, or --force to replace it."
            )
    return plan


def _agree(world: World, fn) -> Any:
    """Run ``fn`` on rank 0 and give every rank its value, or raise its error on every rank."""
    value, error = None, None
    if world.is_main:
        try:
            value = fn()
        except SslinvError as e:
            error = (type(e).__name__, str(e))
    value, error = distributed.broadcast_object(world, (value, error))
    if error is not None:
        import sslinv.errors as errors

        raise getattr(errors, error[0], SslinvError)(error[1])
    return value


def _resolve_recipe(cfg: PretrainConfig, world: World, reporter: Reporter) -> PretrainConfig:
    """Fill in the defaults that depend on the architecture and the world; check the rest."""
    from sslinv.models.resnet import ARCHS

    ARCHS.get(cfg.arch)  # unknown architecture: did-you-mean
    augment.check_augment(cfg.augment)
    check_name(cfg.name)
    for opt, v in (("--epochs", cfg.epochs), ("--batch-size", cfg.batch_size), ("--image-size", cfg.image_size),
                   ("--moco-k", cfg.moco_k)):
        if v < 1:
            raise UsageError(f"{opt} must be positive, not {v}.")
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
    out = PretrainConfig(**{**asdict(cfg), "moco_dim": moco_dim, "bn_splits": bn_splits})
    return out


def run(cfg: PretrainConfig, reporter: Reporter | None = None) -> PretrainResult | None:
    """Train (or resume, or find finished) the run ``cfg.name``; returns the result on
    rank 0 and ``None`` on the other ranks."""
    world = distributed.world_from_env()
    reporter = (reporter or Reporter()) if world.is_main else Reporter()

    # -- world and device ----------------------------------------------------------
    device = resolve_device(cfg.device, world)
    distributed.init(world, device.type)
    dtype = autocast_dtype(cfg.precision)
    if dtype is torch.float16 and device.type != "cuda":
        raise UsageError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU.")
    if world.is_distributed and device.type == "cuda" and cfg.device and ":" in cfg.device:
        raise UsageError(
            f"--device {cfg.device} names one GPU, but {world.world_size} processes train: pass --device cuda "
            "and each process takes the GPU of its local rank (choose GPUs with CUDA_VISIBLE_DEVICES)."
        )
    workers = train_workers(device) if cfg.workers is None else cfg.workers
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # -- recipe ----------------------------------------------------------------------
    cfg = _resolve_recipe(cfg, world, reporter)
    pipeline = augment.build_pipeline(cfg.augment, cfg.image_size)

    # -- data --------------------------------------------------------------------------
    pool = resolve_training_pool(cfg.data, cfg.cache_dir, cfg.data_root, world, reporter)
    if len(pool) < cfg.batch_size:
        raise DataNotFoundError(
            f"{pool.root} holds {len(pool)} images, fewer than one batch of {cfg.batch_size}. "
            "Pass a smaller --batch-size or a larger image folder."
        )
    if cfg.moco_k > len(pool) - cfg.batch_size:
        reporter.warn(
            f"The queue (--moco-k {cfg.moco_k}) is longer than the data set allows ({len(pool)} "
            f"images): an image's own older keys become negatives. Pass --moco-k "
            f"{max(cfg.batch_size, (len(pool) - cfg.batch_size) // cfg.batch_size * cfg.batch_size)} or less."
        )
    public = cfg.public()
    public["data"] = str(pool.root)  # the recipe names the folder actually used

    # -- the run folder: fresh, resume, or finished ------------------------------------
    folder = run_dir(cfg.cache_dir, cfg.name)
    lock = cache.lock(folder / "run", timeout=0)
    if world.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        from filelock import Timeout

        try:
            lock.acquire()
        except Timeout:
            raise UsageError(
                f"Another sslinv pretrain is training {cfg.name!r} right now (lock {folder / 'run.lock'}). "
                "Wait for it, or pass --name NEW."
            ) from None
    try:
        return _run_locked(cfg, public, pool, pipeline, world, device, dtype, workers, reporter)
    finally:
        if world.is_main:
            lock.release()


def _run_locked(cfg, public, pool, pipeline, world, device, dtype, workers, reporter) -> PretrainResult | None:
    loaded: dict[str, Any] = {}
    plan = _agree(world, lambda: _plan(cfg, public, loaded))
    ckpt_path = checkpoint_file(cfg.cache_dir, cfg.name)
    log_path = log_file(cfg.cache_dir, cfg.name)
    export = paths.checkpoint_path(cfg.cache_dir, cfg.name)
    run_id = plan["run_id"]
    public = {**public, "world_size": world.world_size, "run_id": run_id, "resolved_device": str(device)}
    start_epoch, start_step, global_step = plan["epoch"], plan["step"], plan["global_step"]
    steps_per_epoch = len(pool) // cfg.batch_size

    def result(final, finished_before) -> PretrainResult:
        return PretrainResult(
            name=cfg.name, checkpoint=str(export), run_dir=str(ckpt_path.parent), log=str(log_path),
            arch=cfg.arch, augment=list(cfg.augment), epochs=cfg.epochs, start_epoch=start_epoch,
            resumed=plan["mode"] != "fresh", finished_before=finished_before,
            world_size=world.world_size, device=str(device), final=final,
        )

    # -- model and optimiser -------------------------------------------------------------
    torch.manual_seed(cfg.seed)  # the same initial weights and queue on every rank
    model = MoCo(
        cfg.arch, dim=cfg.moco_dim, K=cfg.moco_k, m=cfg.moco_m, T=cfg.moco_t, bn_splits=cfg.bn_splits,
        world=world, shuffle_seed=cfg.seed,
        # channels_last speeds up convolutions on GPUs; split BN reshapes NCHW batches.
        channels_last=device.type == "cuda" and cfg.bn_splits == 1,
    )
    if model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = model.to(device)
    optimizer = torch.optim.SGD(
        model.encoder_q.parameters(), lr=lr_at(cfg, start_epoch), momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    meter_state = None

    if plan["mode"] != "fresh":
        state = _load_everywhere(ckpt_path, world, loaded.pop("state", None))
        model.load_moco_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        restore_rng_states(model, state["rng"])
        meter_state = state.get("meter")
        del state

    if plan["mode"] == "finished":
        if world.is_main and not export.exists():
            export_model(export, model, cfg.epochs, _sidecar(cfg, public, run_id, _last_epoch(log_path)))
        distributed.barrier(world)
        reporter.info(f"The run {cfg.name!r} finished all {cfg.epochs} epochs already; nothing to train.")
        return result(_last_epoch(log_path), True) if world.is_main else None

    if plan["mode"] == "resume":
        reporter.info(f"Resuming {cfg.name!r} from epoch {start_epoch + 1}, step {start_step} ({ckpt_path}).")
        changed = [e for e in range(1, start_epoch)
                   if not math.isclose(lr_at(cfg, e, plan["old_epochs"]), lr_at(cfg, e))]
        if changed:
            reporter.warn(
                f"The first {start_epoch} epochs followed the learning-rate schedule of a "
                f"{plan['old_epochs']}-epoch run; the result will differ from an uninterrupted "
                f"{cfg.epochs}-epoch run."
            )
    if world.is_main:
        if plan["mode"] == "resume":
            truncate_log(log_path, global_step)
        elif log_path.exists():
            log_path.unlink()
        cache.write_json(ckpt_path.parent / "config.json", public)

    net = model
    if world.is_distributed:
        from torch.nn.parallel import DistributedDataParallel

        # Buffers are not broadcast: the queue is the same on every rank by construction,
        # and each rank keeps its own BN running statistics (rank 0's are exported).
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )

    # -- epochs --------------------------------------------------------------------------
    dataset = TwoViews(pool, pipeline, cfg.seed, cfg.skip_bad)
    batches = RunBatches(len(pool), cfg.batch_size, world, cfg.seed, start_epoch, start_step, cfg.epochs)
    loader = make_train_loader(dataset, batches, workers, device)
    log = LogWriter(log_path, world.is_main)
    epoch_meter, window = Meter(device, world), Meter(device, world)
    epoch_meter.load(meter_state[:4] if meter_state else None)
    seconds_before = float(meter_state[4]) if meter_state else 0.0
    reporter.start({
        "name": cfg.name, "epochs": cfg.epochs, "start_epoch": start_epoch, "start_step": start_step,
        "steps_per_epoch": steps_per_epoch, "global_batch": cfg.batch_size, "world_size": world.world_size,
        "arch": cfg.arch, "augment": list(cfg.augment), "images": len(pool), "device": str(device),
        "bn_splits": cfg.bn_splits, "moco_dim": cfg.moco_dim, "resumed": plan["mode"] == "resume",
    })

    epoch, step = start_epoch, start_step
    lr = lr_at(cfg, epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.train()
    t_run = time.perf_counter()
    steps_run = 0
    t_epoch = time.perf_counter() - seconds_before
    t_window = time.perf_counter()
    reporter.epoch_start(epoch, step, steps_per_epoch)
    final = None
    for im_q, im_k, error in loader:
        if error is not None:
            raise BadImageError(error)
        im_q = im_q.to(device, non_blocking=True)
        im_k = im_k.to(device, non_blocking=True)
        loss, hit1, hit5 = train_step(net, optimizer, scaler, im_q, im_k, dtype)
        n = im_q.shape[0]
        epoch_meter.add(loss, hit1, hit5, n)
        window.add(loss, hit1, hit5, n)
        step += 1
        global_step += 1
        steps_run += 1
        metrics = None
        last_step = step == steps_per_epoch
        if cfg.log_every_steps and global_step % cfg.log_every_steps == 0 and not last_step:
            now = time.perf_counter()
            m = metrics_of(window.totals())
            _check_finite(m["loss"], epoch, step, ckpt_path)
            metrics = {
                "event": "step", "epoch": epoch + 1, "step": step, "global_step": global_step, **m, "lr": lr,
                "images_per_s": m["images"] / max(now - t_window, 1e-9),
                "eta_s": _eta(now - t_run, steps_run, cfg, epoch, step, steps_per_epoch),
            }
            log.write(metrics)
            window.reset()
            t_window = now
        reporter.step(epoch, step, metrics)

        if last_step:
            # -- end of epoch: checkpoint, log, report --------------------------------------
            now = time.perf_counter()
            window.reset()
            t_window = now
            m = metrics_of(epoch_meter.totals())
            _check_finite(m["loss"], epoch, step, ckpt_path)
            seconds = now - t_epoch
            epoch, step = epoch + 1, 0
            final = {
                "event": "epoch", "epoch": epoch, "epochs": cfg.epochs, "global_step": global_step, **m, "lr": lr,
                "images_per_s": m["images"] / max(seconds, 1e-9), "seconds": round(seconds, 3),
                "eta_s": _eta(now - t_run, steps_run, cfg, epoch, 0, steps_per_epoch), "time": results.now(),
            }
            if world.is_main:
                save_training_checkpoint(ckpt_path, model, optimizer, scaler, epoch=epoch, step=0,
                                         global_step=global_step, meter=None, cfg=public, run_id=run_id, arch=cfg.arch)
            log.write(final)
            reporter.checkpoint(ckpt_path, epoch, 0)
            reporter.epoch_end(final)
            if epoch < cfg.epochs:
                lr = lr_at(cfg, epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                epoch_meter.reset()
                t_epoch = time.perf_counter()
                reporter.epoch_start(epoch, 0, steps_per_epoch)
        elif cfg.save_every_steps and step % cfg.save_every_steps == 0:
            totals = epoch_meter.totals()
            if world.is_main:
                save_training_checkpoint(ckpt_path, model, optimizer, scaler, epoch=epoch, step=step,
                                         global_step=global_step, meter=[*totals, time.perf_counter() - t_epoch],
                                         cfg=public, run_id=run_id, arch=cfg.arch)
            reporter.checkpoint(ckpt_path, epoch, step)

    # -- export ----------------------------------------------------------------------------
    if world.is_main:
        export_model(export, model, cfg.epochs, _sidecar(cfg, public, run_id, final))
    distributed.barrier(world)
    return result(final, False) if world.is_main else None


def _load_everywhere(path: Path, world: World, preloaded: dict[str, Any] | None) -> dict[str, Any]:
    """The checkpoint on every rank: rank 0 has it (``preloaded``); the others read it from
    disk where visible, else rank 0 sends it (multi-node runs whose cache is not on a
    shared file system)."""
    visible = all(distributed.all_gather_objects(world, path.exists()))
    if world.is_main:
        state = preloaded if preloaded is not None else load_training_checkpoint(path)
    else:
        state = load_training_checkpoint(path) if visible else None
    if not visible:
        state = distributed.broadcast_object(world, state)
    return state


def _eta(elapsed: float, steps_run: int, cfg: PretrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    left = (cfg.epochs - epoch) * steps_per_epoch - step
    return round(elapsed / max(steps_run, 1) * max(left, 0), 1)


def _check_finite(loss: float, epoch: int, step: int, ckpt_path: Path) -> None:
    if not math.isfinite(loss):
        raise SslinvError(
            f"Training diverged: the loss is {loss} at epoch {epoch + 1}, step {step}. Lower --lr, or use "
            f"--precision bf16/fp32 instead of fp16; the last good checkpoint is {ckpt_path} (rerun to resume)."
        )


def _last_epoch(log_path: Path) -> dict[str, Any] | None:
    epochs = [r for r in read_log(log_path) if r.get("event") == "epoch"]
    return epochs[-1] if epochs else None


def _sidecar(cfg: PretrainConfig, public: dict[str, Any], run_id: str, final: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "written_by": "sslinv pretrain",
        "created": results.now(),
        "run_id": run_id,
        "run_dir": str(run_dir(cfg.cache_dir, cfg.name)),
        "name": cfg.name,
        "arch": cfg.arch,
        "preset": cfg.preset,
        "augment": list(cfg.augment),
        "epochs": cfg.epochs,
        "final": final,
        "config": public,
        "environment": results.environment(public.get("resolved_device", ""), public.get("world_size", 1)),
    }
