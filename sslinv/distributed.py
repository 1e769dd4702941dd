"""torch.distributed as sslinv uses it: the torchrun environment as a record, and gathers.

Results never depend on the number of processes: ranks compute shards, exchange
``(index, value)`` pairs, and every rank assembles rows by index. Only rank 0 writes
files or prints (see ``World.is_main``). Idea as in DINO's feature extraction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

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
    return World(
        rank=int(env["RANK"]),
        world_size=int(env["WORLD_SIZE"]),
        local_rank=int(env.get("LOCAL_RANK", 0)),
    )


def started_by_torchrun(env: dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return "RANK" in env and "WORLD_SIZE" in env


def init(world: World, device_type: str) -> None:
    """Join the process group (NCCL on GPUs, gloo on CPU); a no-op for one process."""
    if not world.is_distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)


def shutdown(world: World) -> None:
    if not world.is_distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def all_gather_objects(world: World, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (tensors should be on CPU)."""
    if not world.is_distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.is_distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(world: World, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not world.is_distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(n: int, world: World) -> range:
    """Indices ``0..n-1`` this rank handles (strided, so shards differ by at most one)."""
    return range(world.rank, n, world.world_size)
