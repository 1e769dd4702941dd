"""`sslinv pretrain`: the MoCo v2 training loop.

Structured as MoCo's ``main_moco.py`` and DINO's ``main_dino.py``: ``run`` prepares the
run and drives a short outer loop over the epochs (set the learning rate, train one
epoch, log it, checkpoint); :func:`train_one_epoch` runs one epoch's SGD steps, with the
step records and mid-epoch checkpoints that fall strictly inside it. The end of an
epoch belongs to the outer loop alone.

Contents of ``run``:
1. world and device (one process per GPU under torchrun; NCCL on GPUs, gloo on CPU);
2. recipe checks (``config.resolve_recipe``);
3. data: an image folder (labels unused), two augmented views per image, made by PIL in
   the loader workers or (``--augment-on device``) on the training device (``data``);
4. the run folder: start, resume from the last checkpoint, or report a finished run
   (``state.plan_run``);
5. model and optimiser (restored when resuming), DistributedDataParallel when > 1 process;
6. the epochs: SGD steps, progress, checkpoints every epoch (and every
   ``save_every_steps``), a JSON-lines log;
7. export of the final encoders in the MoCo layout to ``<cache>/checkpoints/<name>.pth.tar``,
   so ``sslinv synthetic --model <name>`` finds it.

Exact resumption: a run interrupted and resumed gives the numbers of an uninterrupted
one. Nothing in the loop draws from the global RNGs: the image order and the views are
seeded (``data``), and the key shuffle comes from a generator whose state is
checkpointed; the global RNG states are saved and restored anyway (``state``). On GPUs
cuDNN picks non-deterministic kernels, so there the match is statistical, not bitwise.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sslinv import cache, distributed, paths, results
from sslinv.cpus import check_shm
from sslinv.distributed import World
from sslinv.errors import DataNotFoundError, SslinvError, UsageError
from sslinv.pretrain import augment
from sslinv.pretrain.config import PretrainConfig, PretrainResult, lr_at, resolve_recipe
from sslinv.pretrain.data import (
    Decoded,
    DeviceViews,
    RunBatches,
    TwoViews,
    make_train_loader,
    prefetch_factor,
    resolve_training_pool,
    train_batch_bytes,
    train_workers,
)
from sslinv.pretrain.moco import MoCo
from sslinv.pretrain.state import (
    LogWriter,
    agree,
    epoch_line,
    export_model,
    export_sidecar,
    last_epoch,
    load_everywhere,
    plan_run,
    restore_training,
    save_training_checkpoint,
    status_text,
    truncate_log,
)
from sslinv.reporting import Reporter
from sslinv.runtime import autocast_dtype, resolve_device, set_precision

#: Called after every checkpoint with its path, the finished epochs and the steps done in
#: the next one (on every rank); raising here stops the run as Ctrl-C would.
OnCheckpoint = Callable[[Path, int, int], None]


# ------------------------------------------------------------------------------ the step


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


# ------------------------------------------------------------------------------ one epoch


@dataclass
class Training:
    """What the epochs of one call share: recipe, model, where to write and report, and
    the run's position and clock."""

    cfg: PretrainConfig
    model: MoCo  # unwrapped (the checkpoints' and the export's)
    scaler: Any
    dtype: torch.dtype | None
    device: torch.device
    world: World
    steps_per_epoch: int
    log: LogWriter
    reporter: Reporter
    on_checkpoint: OnCheckpoint
    ckpt_path: Path
    public: dict[str, Any]
    run_id: str
    global_step: int
    t_run: float = 0.0
    steps_run: int = 0  # steps trained by this call (for the ETA)
    status: str = ""  # the last log record, as the progress bar shows it

    def eta(self, now: float, epoch: int, step: int) -> float:
        left = (self.cfg.epochs - epoch) * self.steps_per_epoch - step
        return round((now - self.t_run) / max(self.steps_run, 1) * max(left, 0), 1)

    def checkpoint(self, optimizer, epoch: int, step: int, meter: list[float] | None) -> None:
        """Save (rank 0) after ``epoch`` finished epochs and ``step`` steps of the next."""
        if self.world.is_main:
            save_training_checkpoint(self.ckpt_path, self.model, optimizer, self.scaler, epoch=epoch, step=step,
                                     global_step=self.global_step, meter=meter, cfg=self.public,
                                     run_id=self.run_id, arch=self.cfg.arch)
        self.on_checkpoint(self.ckpt_path, epoch, step)

    def check_finite(self, loss: float, epoch: int, step: int) -> None:
        if not math.isfinite(loss):
            raise SslinvError(
                f"Training diverged: the loss is {loss} at epoch {epoch + 1}, step {step}. Start a new run with "
                "a lower --lr, or --precision bf16/fp32 instead of fp16 (add --force, or --name NEW); the last "
                f"good checkpoint is {self.ckpt_path} (a plain rerun resumes from it with the same settings)."
            )


def train_one_epoch(net, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], optimizer, epoch: int,
                    run: Training, first_step: int = 0,
                    resumed: list[float] | None = None) -> tuple[list[float], float]:
    """Train epoch ``epoch`` (0-based) from step ``first_step``: its batches are
    ``batches``. ``resumed`` holds the running sums and seconds of the steps before
    ``first_step`` (a mid-epoch checkpoint). Returns the epoch's sums over all ranks
    (``metrics_of`` reads them) and its seconds."""
    cfg = run.cfg
    lr = optimizer.param_groups[0]["lr"]
    meter, window = Meter(run.device, run.world), Meter(run.device, run.world)
    meter.load(resumed[:4] if resumed else None)
    t_epoch = time.perf_counter() - (float(resumed[4]) if resumed else 0.0)
    t_window = time.perf_counter()
    # Step records and mid-epoch checkpoints fall strictly inside the epoch: its last
    # step is followed by the epoch record and checkpoint of the outer loop instead.
    inside = range(first_step + 1, run.steps_per_epoch)
    offset = run.global_step - first_step  # global step = offset + step
    log_at = {s for s in inside if cfg.log_every_steps and (offset + s) % cfg.log_every_steps == 0}
    save_at = {s for s in inside if cfg.save_every_steps and s % cfg.save_every_steps == 0}
    bar = run.reporter.bar(f"epoch {epoch + 1}/{cfg.epochs}", run.steps_per_epoch, "steps", first_step)
    bar.update(status=run.status)

    for step, (im_q, im_k) in enumerate(batches, start=first_step + 1):
        loss, hit1, hit5 = train_step(net, optimizer, run.scaler, im_q, im_k, run.dtype)
        n = im_q.shape[0]
        meter.add(loss, hit1, hit5, n)
        window.add(loss, hit1, hit5, n)
        run.global_step += 1
        run.steps_run += 1
        if step in log_at:
            now = time.perf_counter()
            m = metrics_of(window.totals())
            run.check_finite(m["loss"], epoch, step)
            record = {
                "event": "step", "epoch": epoch + 1, "step": step, "global_step": run.global_step, **m, "lr": lr,
                "images_per_s": m["images"] / max(now - t_window, 1e-9), "eta_s": run.eta(now, epoch, step),
            }
            run.log.write(record)
            window.reset()
            t_window = now
            run.status = status_text(record)
        bar.update(completed=step, status=run.status)
        if step in save_at:
            run.checkpoint(optimizer, epoch, step, [*meter.totals(), time.perf_counter() - t_epoch])

    now = time.perf_counter()
    totals = meter.totals()
    bar.close(keep=False)  # the outer loop's epoch line replaces it
    return totals, now - t_epoch


# ------------------------------------------------------------------------------ run


def run(cfg: PretrainConfig, reporter: Reporter | None = None,
        on_checkpoint: OnCheckpoint | None = None) -> PretrainResult | None:
    """Train (or resume, or find finished) the run ``cfg.name``; returns the result on
    rank 0 and ``None`` on the other ranks."""
    world = distributed.world_from_env()
    reporter = (reporter or Reporter()) if world.is_main else Reporter()

    # -- world and device ----------------------------------------------------------
    device = resolve_device(cfg.device, world)
    distributed.init(world, device)
    dtype = autocast_dtype(cfg.precision)
    if dtype is torch.float16 and device.type != "cuda":
        raise UsageError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU.")
    set_precision(cfg.precision)
    workers = train_workers(device) if cfg.workers is None else cfg.workers
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # -- recipe ----------------------------------------------------------------------
    cfg = resolve_recipe(cfg, world)
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
    # The workers' batches in /dev/shm, checked before anything is written. Every rank of
    # the node shares it, so one rank's batch counts local_world_size times.
    batch_bytes = 0
    if workers > 0:
        batch_bytes = world.local_world_size * train_batch_bytes(
            pool, cfg.batch_size // world.world_size, cfg.image_size, cfg.augment_on)
        check_shm(workers, prefetch_factor(cfg.augment_on), batch_bytes)
    public = cfg.public()
    public["data"] = str(pool.root)  # the recipe names the folder actually used

    # -- the run folder: fresh, resume, or finished ------------------------------------
    folder = paths.pretrain_dir(cfg.cache_dir, cfg.name)
    lock = cache.lock(paths.pretrain_lock(cfg.cache_dir, cfg.name), timeout=0)
    if world.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        from filelock import Timeout

        try:
            lock.acquire()
        except Timeout:
            raise UsageError(
                f"Another sslinv pretrain is training {cfg.name!r} right now (lock {lock.lock_file}). "
                "Wait for it, or pass --name NEW."
            ) from None
    try:
        return _run_locked(cfg, public, pool, pipeline, world, device, dtype, workers, batch_bytes, reporter,
                           on_checkpoint or (lambda path, epoch, step: None))
    finally:
        if world.is_main:
            lock.release()


def _model_and_optimiser(cfg: PretrainConfig, world: World, device: torch.device, dtype, start_epoch: int):
    """MoCo with the same initial weights and queue on every rank, its SGD and loss scaler."""
    torch.manual_seed(cfg.seed)
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
    return model, optimizer, scaler


def _run_locked(cfg, public, pool, pipeline, world, device, dtype, workers, batch_bytes, reporter,
                on_checkpoint: OnCheckpoint) -> PretrainResult | None:
    loaded: dict[str, Any] = {}
    plan = agree(world, lambda: plan_run(cfg, public, loaded))
    ckpt_path = paths.pretrain_checkpoint(cfg.cache_dir, cfg.name)
    log_path = paths.pretrain_log(cfg.cache_dir, cfg.name)
    export = paths.checkpoint_path(cfg.cache_dir, cfg.name)
    run_id = plan["run_id"]
    public = {**public, "world_size": world.world_size, "run_id": run_id, "resolved_device": str(device)}
    start_epoch, start_step = plan["epoch"], plan["step"]
    steps_per_epoch = len(pool) // cfg.batch_size

    def result(final, finished_before) -> PretrainResult:
        return PretrainResult(
            name=cfg.name, checkpoint=str(export), run_dir=str(ckpt_path.parent), log=str(log_path),
            arch=cfg.arch, augment=list(cfg.augment), augment_on=cfg.augment_on, epochs=cfg.epochs,
            start_epoch=start_epoch,
            resumed=plan["mode"] != "fresh", finished_before=finished_before,
            world_size=world.world_size, device=str(device), final=final,
        )

    # -- model and optimiser -------------------------------------------------------------
    model, optimizer, scaler = _model_and_optimiser(cfg, world, device, dtype, start_epoch)
    meter_state = None
    if plan["mode"] != "fresh":
        state = load_everywhere(ckpt_path, world, loaded.pop("state", None))
        meter_state = restore_training(state, model, optimizer, scaler)
        del state

    if plan["mode"] == "finished":
        if world.is_main and not export.exists():
            export_model(export, model, cfg.epochs, export_sidecar(cfg, public, run_id, last_epoch(log_path)))
        distributed.barrier(world)
        reporter.info(f"The run {cfg.name!r} finished all {cfg.epochs} epochs already; nothing to train.")
        return result(last_epoch(log_path), True) if world.is_main else None

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
            truncate_log(log_path, plan["global_step"])
        elif log_path.exists():
            log_path.unlink()
        cache.write_json(paths.pretrain_config(cfg.cache_dir, cfg.name), public)

    net = model
    if world.is_distributed:
        from torch.nn.parallel import DistributedDataParallel

        # Buffers are not broadcast: the queue is the same on every rank by construction,
        # and each rank keeps its own BN running statistics (rank 0's are exported).
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
        )

    # -- epochs --------------------------------------------------------------------------
    batches = RunBatches(len(pool), cfg.batch_size, world, cfg.seed, start_epoch, start_step, cfg.epochs)
    if cfg.augment_on == "device":  # workers decode; both views of a batch made on the device
        dataset, views = Decoded(pool, cfg.skip_bad), DeviceViews(cfg.augment, cfg.image_size, cfg.seed, world.rank)
    else:  # workers decode and make the views with PIL
        dataset, views = TwoViews(pool, pipeline, cfg.seed, cfg.skip_bad), None
    loader = make_train_loader(dataset, batches, workers, device, batch_bytes, views)
    training = Training(
        cfg=cfg, model=model, scaler=scaler, dtype=dtype, device=device, world=world,
        steps_per_epoch=steps_per_epoch, log=LogWriter(log_path, world.is_main), reporter=reporter,
        on_checkpoint=on_checkpoint, ckpt_path=ckpt_path, public=public, run_id=run_id,
        global_step=plan["global_step"],
    )
    reporter.info(
        f"pretrain {cfg.name}: {cfg.arch}, {', '.join(cfg.augment)} (views made "
        f"{'on ' + str(device) if cfg.augment_on == 'device' else f'by PIL in {workers} loader worker(s)'}); "
        f"{len(pool)} images, batch {cfg.batch_size} "
        f"over {world.world_size} process(es) on {device}, {steps_per_epoch} steps per epoch, BN groups per "
        f"process {cfg.bn_splits}."
    )
    model.train()
    training.t_run = time.perf_counter()
    final = None
    for epoch in range(start_epoch, cfg.epochs):
        lr = lr_at(cfg, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        first, resumed = (start_step, meter_state) if epoch == start_epoch else (0, None)
        totals, seconds = train_one_epoch(net, loader.epoch(epoch), optimizer, epoch, training, first, resumed)

        # -- end of epoch: log, checkpoint, report ------------------------------------------
        m = metrics_of(totals)
        training.check_finite(m["loss"], epoch, steps_per_epoch)
        final = {
            "event": "epoch", "epoch": epoch + 1, "epochs": cfg.epochs, "global_step": training.global_step, **m,
            "lr": lr, "images_per_s": m["images"] / max(seconds, 1e-9), "augment_on": cfg.augment_on,
            "seconds": round(seconds, 3),
            "eta_s": training.eta(time.perf_counter(), epoch + 1, 0), "time": results.now(),
        }
        training.log.write(final)
        training.checkpoint(optimizer, epoch + 1, 0, None)
        training.status = status_text(final)
        reporter.info(epoch_line(final))

    # -- export ----------------------------------------------------------------------------
    if world.is_main:
        export_model(export, model, cfg.epochs, export_sidecar(cfg, public, run_id, final))
    distributed.barrier(world)
    return result(final, False) if world.is_main else None
