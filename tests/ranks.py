"""Spawning torch.distributed ranks as plain processes in tests (gloo on the CPU)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, world_size: int, port: int, **extra: str) -> dict[str, str]:
    """This process's environment plus what torchrun would give rank ``rank`` of a
    one-node world (one thread each, the tests folder importable), and ``extra``."""
    return {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            **extra}
