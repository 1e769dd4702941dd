"""A pretraining run's state on disk: plan, checkpoint, RNG states, export, log.

Run folder ``<cache>/pretrain/<name>/`` (``sslinv.paths.pretrain_dir``):
``checkpoint.pth.tar`` (latest, replaced atomically), ``log.jsonl`` (one JSON object per
epoch, and per ``log_every_steps`` steps), ``config.json``; a lock file keeps two jobs
from training the same name. The final encoders are exported in the MoCo layout to
``<cache>/checkpoints/<name>.pth.tar`` with a JSON sidecar naming the run that wrote them.

Exact resumption: a checkpoint holds model, optimiser, scaler, epoch, step, every RNG
state, the partial epoch's running sums and the full config, and is loadable with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslinv import cache, distributed, paths, results
from sslinv.distributed import World
from sslinv.errors import CheckpointError, SslinvError, UsageError
from sslinv.pretrain.config import RECIPE_DEFAULTS, RECIPE_FIELDS, PretrainConfig
from sslinv.pretrain.moco import MoCo
from sslinv.reporting import human_duration

#: Written into every training checkpoint; bumped when its contents change meaning.
CHECKPOINT_FORMAT = "sslinv.pretrain/1"


class TrainedLongerError(UsageError):
    """The run exists and has trained more epochs than asked for (``trained``)."""

    def __init__(self, message: str, trained: int) -> None:
        super().__init__(message)
        self.trained = trained


# ------------------------------------------------------------------------------ plan


def _recipe(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg.get(k, RECIPE_DEFAULTS.get(k)) for k in RECIPE_FIELDS}


def _describe_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    parts = []
    old, new = _recipe(old), _recipe(new)
    for k in RECIPE_FIELDS:
        if old.get(k) != new.get(k):
            parts.append(f"--{k.replace('_', '-')} {old.get(k)!r} there, {new.get(k)!r} now")
    return "; ".join(parts)


def plan_run(cfg: PretrainConfig, public: dict[str, Any], loaded: dict[str, Any]) -> dict[str, Any]:
    """Rank 0: start fresh, resume, or report finished; checks the export target's owner.
    A checkpoint read here is kept in ``loaded["state"]`` (read once, not twice)."""
    ckpt_path = paths.pretrain_checkpoint(cfg.cache_dir, cfg.name)
    export = paths.checkpoint_path(cfg.cache_dir, cfg.name)
    if cfg.force:  # start over: this name's checkpoint, log and exported model go
        for stale in (ckpt_path, paths.pretrain_log(cfg.cache_dir, cfg.name), export, cache.sidecar(export)):
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
            owner = cache.read_json(cache.sidecar(export)).get("run_id")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner != plan["run_id"]:
            raise UsageError(
                f"A model named {cfg.name!r} already exists at {export} and was not written by "
                "this run. Pass --name NEW to train under another name, or --force to replace it."
            )
    return plan


def agree(world: World, fn) -> Any:
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


def restore_training(state: dict[str, Any], model: MoCo, optimizer, scaler) -> list[float] | None:
    """Model, optimiser, scaler and RNG states from a training checkpoint; returns its
    partial epoch's running sums and seconds (``None`` at an epoch boundary)."""
    model.load_moco_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(state["scaler"])
    restore_rng_states(model, state["rng"])
    return state.get("meter")


def load_everywhere(path: Path, world: World, preloaded: dict[str, Any] | None) -> dict[str, Any]:
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


# ------------------------------------------------------------------------------ export


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
    cache.write_json(cache.sidecar(path), sidecar)


def export_sidecar(cfg: PretrainConfig, public: dict[str, Any], run_id: str,
                   final: dict[str, Any] | None) -> dict[str, Any]:
    """What the exported model's JSON sidecar says about the run that wrote it."""
    return {
        "written_by": "sslinv pretrain",
        "created": results.now(),
        "run_id": run_id,
        "run_dir": str(paths.pretrain_dir(cfg.cache_dir, cfg.name)),
        "name": cfg.name,
        "arch": cfg.arch,
        "preset": cfg.preset,
        "augment": list(cfg.augment),
        "augment_on": cfg.augment_on,
        "epochs": cfg.epochs,
        "final": final,
        "config": public,
        "environment": results.environment(public.get("resolved_device", ""), public.get("world_size", 1)),
    }


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


def last_epoch(path: Path) -> dict[str, Any] | None:
    """The log record of the run's last finished epoch."""
    epochs = [r for r in read_log(path) if r.get("event") == "epoch"]
    return epochs[-1] if epochs else None


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


def status_text(record: dict[str, Any] | None) -> str:
    """A log record as the status of a progress bar: loss, contrastive acc@1, lr,
    throughput and the run's ETA."""
    if not record:
        return ""
    return (f"loss {record['loss']:.4f}  acc@1 {record['acc1']:.1f}%  lr {record['lr']:.4g}  "
            f"{record['images_per_s']:.0f} img/s  ETA {human_duration(record.get('eta_s'))}")


def epoch_line(record: dict[str, Any]) -> str:
    """An epoch's log record as the line that replaces its progress bar."""
    return f"epoch {record['epoch']}/{record['epochs']}  {status_text(record)}  ({human_duration(record['seconds'])})"
