"""torch.distributed as sslinv uses it: the torchrun environment as a record, and gathers.

Results never depend on the number of processes: ranks compute shards, exchange
``(index, value)`` pairs, and rows are assembled by index. Only rank 0 writes files or
prints (see ``World.is_main``). Idea as in DINO's feature extraction.

Object collectives (``broadcast_object``, ``all_gather_objects``), the tensor
collectives (``gather_shards``, ``broadcast_tensor``: CPU tensors, no pickling) and
``barrier`` go through a gloo side group with a long timeout, created once in ``init``:
a rank may wait there for rank 0 while rank 0 waits for a cache file lock held by another
job, or writes the demo pool, and NCCL's default 10-minute timeout must not kill the job
then.

An error a user can act on (``SslinvError``: an unreadable image, NaN features) raised on
one rank during a sharded pass reaches every rank (``run_then_gather``): the pass is
wrapped, its outcome travels with the gather that follows, and every rank raises the
first failing rank's error, so no rank is left waiting in a collective for a rank that
exited.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")

#: How long object collectives and barriers wait (a cold cache behind another job's lock).
OBJECT_TIMEOUT = timedelta(days=1)

_objects_group = None  # the gloo side group of ``init``


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this node

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env(env: dict[str, str] | None = None) -> World:
    """The world torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (or a single process)."""
    env = os.environ if env is None else env
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return World()
    world_size = int(env["WORLD_SIZE"])
    return World(
        rank=int(env["RANK"]),
        world_size=world_size,
        local_rank=int(env.get("LOCAL_RANK", 0)),
        # Without LOCAL_WORLD_SIZE (a launcher other than torchrun) assume one node.
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", world_size)),
    )


def started_by_torchrun(env: dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return "RANK" in env and "WORLD_SIZE" in env


def init(world: World, device: Any, timeout: timedelta | None = None) -> None:
    """Join the process group (NCCL on GPUs, bound to ``device``; gloo on CPU) and create
    the gloo side group for objects and barriers; a no-op for one process. ``timeout``:
    the main group's (None: torch's default)."""
    global _objects_group
    if not world.is_distributed:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    device = torch.device(device)
    if device.type == "cuda":
        dist.init_process_group(backend="nccl", device_id=device, timeout=timeout)
    else:
        dist.init_process_group(backend="gloo", timeout=timeout)
    _objects_group = dist.new_group(backend="gloo", timeout=OBJECT_TIMEOUT)


def shutdown(world: World) -> None:
    global _objects_group
    if not world.is_distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _objects_group = None


def all_gather_objects(world: World, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (tensors should be on CPU)."""
    if not world.is_distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world.world_size
    dist.all_gather_object(out, obj, group=_objects_group)
    return out


def run_then_gather(world: World, work: Callable[[], T], share: Callable[[T], Any] | None = None
                    ) -> tuple[T, list[Any]]:
    """Run ``work()`` (this rank's part of a sharded pass), then all-gather what it gives.

    Returns ``(value, gathered)``: this rank's ``work()`` and every rank's
    ``share(value)`` (the value itself without ``share``) in rank order, as
    ``all_gather_objects``. An ``SslinvError`` raised by ``work`` on any rank does not end
    that rank at once: the rank joins the gather with the error's class and message
    instead of its share, and then every rank raises the error of the lowest-numbered
    failing rank (the same class, so the same exit code, and the same message; its
    ``rank`` attribute says where it happened). Other exceptions and Ctrl-C end the rank
    as they would alone. With one process ``work``'s errors propagate as they are.
    """
    if not world.is_distributed:
        value = work()
        return value, [value if share is None else share(value)]
    from sslinv.errors import SslinvError, from_worker

    failure: SslinvError | None = None
    value: Any = None
    try:
        value = work()
    except SslinvError as exc:
        failure = exc
    if failure is None:
        mine = (None, value if share is None else share(value))
    else:  # a DataLoader worker's error as raised in the worker, not its traceback
        cls = type(failure)
        mine = ((f"{cls.__module__}:{cls.__qualname__}", str(from_worker(failure))), None)
    gathered = all_gather_objects(world, mine)
    failed = [(r, err) for r, (err, _) in enumerate(gathered) if err is not None]
    if not failed:
        return value, [part for _, part in gathered]
    rank, (name, message) = failed[0]
    if rank == world.rank:  # this rank's own error, with its traceback
        failure.rank = rank
        raise failure
    exc = _error_class(name)(message)
    exc.rank = rank
    raise exc from failure


def _error_class(name: str) -> type:
    """The ``SslinvError`` subclass named ``module:qualname`` (every rank runs the same
    code), or ``SslinvError`` itself for a name that is not one."""
    import importlib

    from sslinv.errors import SslinvError

    module, _, qualname = name.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return SslinvError
    return obj if isinstance(obj, type) and issubclass(obj, SslinvError) else SslinvError


def barrier(world: World) -> None:
    if world.is_distributed:
        import torch.distributed as dist

        dist.barrier(group=_objects_group)


def broadcast_object(world: World, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not world.is_distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_objects_group)
    return box[0]


def broadcast_tensor(world: World, tensor: Any) -> Any:
    """Rank 0's CPU ``tensor`` on every rank (others pass None): its shape and dtype go
    as an object, its data as one tensor broadcast, not pickled."""
    if not world.is_distributed:
        return tensor
    import torch
    import torch.distributed as dist

    meta = broadcast_object(world, (tuple(tensor.shape), tensor.dtype) if world.is_main else None)
    buf = tensor.contiguous() if world.is_main else torch.empty(meta[0], dtype=meta[1])
    dist.broadcast(buf, src=0, group=_objects_group)
    return buf


def gather_shards(world: World, local: Any, n: int) -> Any:
    """Rows ``0..n-1`` in index order on rank 0 (None on the other ranks), from every
    rank's ``local``: one row per index of its ``shard(n, world)``, in shard order (CPU
    tensors of one dtype and row shape on every rank).

    One tensor gather, not pickled objects: the shards (which differ in length by at
    most one) are padded to the longest, and index ``j`` is row ``j // world_size`` of
    rank ``j % world_size``'s shard. Rank 0 holds about twice the result at the peak.
    """
    if not world.is_distributed:
        return local
    import torch
    import torch.distributed as dist

    size = world.world_size
    rows = -(-n // size)  # the longest shard
    if local.shape[0] != len(shard(n, world)):
        raise ValueError(f"rank {world.rank} has {local.shape[0]} rows for a shard of {len(shard(n, world))}")
    pad = torch.cat([local, local.new_zeros(rows - local.shape[0], *local.shape[1:])]) if local.shape[0] < rows \
        else local.contiguous()
    if not world.is_main:
        dist.gather(pad, None, dst=0, group=_objects_group)
        return None
    parts = torch.empty(size, rows, *local.shape[1:], dtype=local.dtype)
    dist.gather(pad, list(parts.unbind(0)), dst=0, group=_objects_group)
    # parts[r, i] is index r + i * size: transposed, the rows run in index order.
    return parts.transpose(0, 1).reshape(size * rows, *local.shape[1:])[:n]


def shard(n: int, world: World) -> range:
    """Indices ``0..n-1`` this rank handles (strided, so shards differ by at most one)."""
    return range(world.rank, n, world.world_size)
