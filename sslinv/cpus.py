"""What this process may really use of the machine it runs on: CPUs and RAM.

A container or a batch scheduler gives a process less than the host has: an affinity
mask (``taskset``, Slurm's ``--cpus-per-task``), a cgroup CPU quota (Docker's
``--cpus``, Kubernetes limits) and a cgroup memory limit. ``os.cpu_count()`` and
``/proc/meminfo`` see the host; the functions here see the process. Every reader takes
a ``root`` (``/`` by default) so tests can hand it a fake ``/proc`` and
``/sys/fs/cgroup``.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP = "sys/fs/cgroup"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# ------------------------------------------------------------------------------ memory


def _cgroup_memory_left(root: Path) -> int | None:
    """Bytes left under the cgroup memory limit (v2, then v1); None when unlimited."""
    cg = root / CGROUP
    limit, used = _read(cg / "memory.max"), _int(_read(cg / "memory.current"))
    if limit is None:  # cgroup v1
        limit, used = _read(cg / "memory" / "memory.limit_in_bytes"), _int(_read(cg / "memory" / "memory.usage_in_bytes"))
    cap = _int(limit)
    # v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages); treat >= 2^60 as none.
    if cap is None or cap >= 1 << 60:
        return None
    return max(cap - (used or 0), 0)


def available_ram(root: str | Path = "/") -> int:
    """Bytes of RAM this process can still allocate without swapping or being killed:
    ``MemAvailable`` of ``/proc/meminfo``, capped by what is left under the cgroup limit."""
    root = Path(root)
    avail = None
    for line in (_read(root / "proc" / "meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            avail = int(line.split()[1]) * 1024
            break
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 62
    left = _cgroup_memory_left(root)
    return min(avail, left) if left is not None else avail
