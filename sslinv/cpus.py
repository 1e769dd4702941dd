"""What this process may really use of the machine it runs on: CPUs, RAM, /dev/shm.

A container or a batch scheduler gives a process less than the host has: an affinity
mask (``taskset``, Slurm's ``--cpus-per-task``), a cgroup CPU quota (Docker's
``--cpus``, Kubernetes limits) and a cgroup memory limit. ``os.cpu_count()`` and
``/proc/meminfo`` see the host; the functions here see the process. Every reader takes
a ``root`` (``/`` by default) so tests can hand it a fake ``/proc`` and
``/sys/fs/cgroup``.

- ``usable_cpus``: the affinity mask, capped by the cgroup v2 (``cpu.max``) or v1
  (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) quota of this process's cgroup and its
  ancestors; ``loader_workers`` divides them among the ranks on this node
  (``LOCAL_WORLD_SIZE``, set by torchrun) and keeps a core for each rank's main process.
- ``available_ram``: ``MemAvailable`` capped by the cgroup memory limit.
- ``shm_problem`` / ``check_shm``: DataLoader workers hand batches over through
  ``/dev/shm``, ``workers x prefetch_factor`` of them in flight; Docker gives a container
  64 MB by default, and a loader that outgrows it dies with a bus error. The check
  compares the estimate with the free space first and names the fix.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from sslinv.errors import UsageError

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


# -------------------------------------------------------------------------------- CPUs


def _cgroup_dirs(root: Path, controller: str | None) -> list[Path]:
    """This process's cgroup directory and its ancestors, innermost first (v2 when
    ``controller`` is None, else the v1 hierarchy holding ``controller``)."""
    rel = None
    for line in (_read(root / "proc" / "self" / "cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if controller is None and parts[0] == "0" and parts[1] == "":
            rel = parts[2]
        elif controller is not None and controller in parts[1].split(","):
            rel, mount = parts[2], parts[1]
            base = root / CGROUP / mount
            if not base.exists():
                base = root / CGROUP / controller
            break
    if controller is None:
        base = root / CGROUP
    elif rel is None:
        base, rel = root / CGROUP / controller, "/"
    rel = (rel or "/").strip("/")
    dirs = []
    path = base / rel if rel else base
    while True:
        dirs.append(path)
        if path == base or base not in path.parents:
            break
        path = path.parent
    return dirs


def cgroup_cpu_limit(root: str | Path = "/") -> float | None:
    """CPUs allowed by the cgroup CPU quota (the tightest along the hierarchy, v2 then
    v1), e.g. 2.5; None when there is no quota."""
    root = Path(root)
    limits = []
    for d in _cgroup_dirs(root, None):
        fields = (_read(d / "cpu.max") or "").split()
        if len(fields) == 2 and fields[0] != "max":
            quota, period = _int(fields[0]), _int(fields[1])
            if quota and period and quota > 0 and period > 0:
                limits.append(quota / period)
    if not limits:
        for d in _cgroup_dirs(root, "cpu"):
            quota, period = _int(_read(d / "cpu.cfs_quota_us")), _int(_read(d / "cpu.cfs_period_us"))
            if quota and period and quota > 0 and period > 0:  # -1: no quota
                limits.append(quota / period)
    return min(limits) if limits else None


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def usable_cpus(root: str | Path = "/", affinity: int | None = None) -> int:
    """CPUs this process may really use: the affinity mask capped by the cgroup quota
    (a fractional quota rounds down, but never below 1)."""
    cpus = affinity_cpus() if affinity is None else affinity
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, max(1, math.floor(limit + 1e-9)))
    return max(1, cpus)


def local_world_size(env: dict[str, str] | None = None) -> int:
    """Processes sharing this node (torchrun's ``LOCAL_WORLD_SIZE``; 1 when unset)."""
    env = os.environ if env is None else env
    n = _int(env.get("LOCAL_WORLD_SIZE"))
    return n if n and n > 0 else 1


def cpus_per_rank(root: str | Path = "/", affinity: int | None = None, env: dict[str, str] | None = None) -> int:
    """This rank's share of the usable CPUs (at least 1)."""
    return max(1, usable_cpus(root, affinity) // local_world_size(env))


def loader_workers(device_type: str, root: str | Path = "/", affinity: int | None = None,
                   env: dict[str, str] | None = None) -> int:
    """Default DataLoader workers for one rank.

    On an accelerator the model does not need the CPU: every core of the rank's share
    but one (kept for the main process) decodes and renders. On the CPU the model needs
    the cores: none, images are then loaded in the main process by one thread per core
    of the share, taking turns with the forward passes (``runtime.ThreadedLoader``).
    """
    if device_type == "cpu":
        return 0
    return max(1, cpus_per_rank(root, affinity, env) - 1)


# ----------------------------------------------------------------------------- /dev/shm

SHM = "/dev/shm"


def shm_free(path: str | Path = SHM) -> int | None:
    """Free bytes of the shared-memory file system (None where there is none)."""
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def loader_shm_bytes(workers: int, prefetch_factor: int, batch_bytes: int) -> int:
    """Shared memory in flight for a DataLoader: each worker holds up to
    ``prefetch_factor`` finished batches in ``/dev/shm`` (nothing without workers)."""
    return max(workers, 0) * max(prefetch_factor, 1) * max(batch_bytes, 0) if workers > 0 else 0


def shm_problem(workers: int, prefetch_factor: int, batch_bytes: int, free: int | None = None,
                path: str | Path = SHM) -> str | None:
    """A one-line error when the loader's batches in flight would not fit in ``path``
    (``free`` overrides the measured free space, in bytes); None when they fit or when
    there is no such file system."""
    need = loader_shm_bytes(workers, prefetch_factor, batch_bytes)
    free = shm_free(path) if free is None else free
    if free is None or need <= free:
        return None
    per_worker = max(prefetch_factor, 1) * batch_bytes
    fits = int(free // per_worker) if per_worker else workers
    mib = 2**20
    fix = f"use --workers {fits}" if fits >= 1 else "use --workers 0 (or a smaller --batch-size)"
    return (
        f"DataLoader workers need about {need / mib:.0f} MiB of shared memory ({workers} workers x "
        f"{prefetch_factor} batches x {batch_bytes / mib:.1f} MiB) but {path} has {free / mib:.0f} MiB free: "
        f"{fix}, or give the container more shared memory (docker run --ipc=host or --shm-size=8g)."
    )


def check_shm(workers: int, prefetch_factor: int, batch_bytes: int, free: int | None = None,
              path: str | Path = SHM) -> None:
    """Raise ``UsageError`` with ``shm_problem``'s message when the batches would not fit."""
    msg = shm_problem(workers, prefetch_factor, batch_bytes, free, path)
    if msg:
        raise UsageError(msg)
