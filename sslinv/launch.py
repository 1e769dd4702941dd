"""Re-execute the current command under torchrun when more than one process is asked for.

One place for every command: ``--nproc-per-node N`` (and ``--nnodes``, ``--node-rank``,
``--rdzv-endpoint``) become torchrun's own options, and the same sslinv command line
runs in each worker. Workers see RANK/WORLD_SIZE and therefore never relaunch. No
home-made process management: torch.distributed.run does it, called through ``torchrun``
below (``python -m sslinv.launch``) so that a worker that stopped on an sslinv error
(whose line the workers printed) ends the command with that error's exit code, without
torchrun's failure report.
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
    cmd = [sys.executable, "-m", "sslinv.launch", f"--nproc-per-node={opts.nproc_per_node}"]
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


def torchrun(args: list[str]) -> int:
    """``torchrun args``, returning the exit code of the worker that failed first.

    A worker that exited with a code (an sslinv error: one line printed, by rank 0 when
    every rank raised it; or a Python traceback) ends the command with that code and
    without torchrun's report, which would only repeat the exit code under a traceback of
    torchrun itself. A worker killed by a signal (out of memory, a crash) still gets the
    report: it says which rank and host died.
    """
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    def not_exited_with_a_code(rec: logging.LogRecord) -> bool:  # torchrun's "failed (exitcode: 3) ..." line
        return not (rec.msg.startswith("failed (exitcode: ") and isinstance(rec.args, tuple) and rec.args
                    and isinstance(rec.args[0], int) and rec.args[0] > 0)

    agent = logging.getLogger("torch.distributed.elastic.multiprocessing.api")
    agent.addFilter(not_exited_with_a_code)
    try:
        run(parse_args(args))
    except ChildFailedError as exc:
        _, first = exc.get_first_failure()
        if first.exitcode > 0:
            return first.exitcode
        raise
    finally:
        agent.removeFilter(not_exited_with_a_code)
    return 0


if __name__ == "__main__":
    sys.exit(torchrun(sys.argv[1:]))
