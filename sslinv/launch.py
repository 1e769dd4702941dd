"""Re-execute the current command under torchrun when more than one process is asked for.

One place for every command: ``--nproc-per-node N`` (and ``--nnodes``, ``--node-rank``,
``--rdzv-endpoint``) become torchrun's own options, and the same sslinv command line
runs in each worker. Workers see RANK/WORLD_SIZE and therefore never relaunch. No
home-made process management: torch.distributed.run does it.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from sslinv.distributed import started_by_torchrun


@dataclass(frozen=True)
class LaunchOptions:
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None

    @property
    def wants_relaunch(self) -> bool:
        return (self.nproc_per_node > 1 or self.nnodes > 1) and not started_by_torchrun()


def torchrun_command(opts: LaunchOptions, argv: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={opts.nproc_per_node}"]
    if opts.nnodes > 1:
        if not opts.rdzv_endpoint:
            from sslinv.errors import UsageError

            raise UsageError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every node).")
        cmd += [
            f"--nnodes={opts.nnodes}",
            f"--node-rank={opts.node_rank}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={opts.rdzv_endpoint}",
        ]
    else:
        cmd.append("--standalone")
    return [*cmd, "-m", "sslinv", *argv]


def relaunch(opts: LaunchOptions, argv: list[str] | None = None) -> int:
    """Run this command line under torchrun and return its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    return subprocess.call(torchrun_command(opts, argv))
