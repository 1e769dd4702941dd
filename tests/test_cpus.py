"""What the process may really use: RAM (and below, CPUs and /dev/shm) from fake
/proc and /sys/fs/cgroup trees."""

from __future__ import annotations

from pathlib import Path

from sslinv import cpus


def write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


MEMINFO = "MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n"


def test_available_ram_reads_meminfo(tmp_path):
    write(tmp_path, "proc/meminfo", MEMINFO)
    assert cpus.available_ram(tmp_path) == 20_000_000 * 1024


def test_available_ram_is_capped_by_cgroup_v2_limit(tmp_path):
    write(tmp_path, "proc/meminfo", MEMINFO)
    write(tmp_path, "sys/fs/cgroup/memory.max", str(8 * 2**30))
    write(tmp_path, "sys/fs/cgroup/memory.current", str(3 * 2**30))
    assert cpus.available_ram(tmp_path) == 5 * 2**30
    write(tmp_path, "sys/fs/cgroup/memory.max", "max")
    assert cpus.available_ram(tmp_path) == 20_000_000 * 1024


def test_available_ram_cgroup_v1_and_its_no_limit_value(tmp_path):
    write(tmp_path, "proc/meminfo", MEMINFO)
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", str(4 * 2**30))
    write(tmp_path, "sys/fs/cgroup/memory/memory.usage_in_bytes", str(2**30))
    assert cpus.available_ram(tmp_path) == 3 * 2**30
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712")
    assert cpus.available_ram(tmp_path) == 20_000_000 * 1024


def test_available_ram_of_this_machine_is_positive():
    assert cpus.available_ram() > 0


# ------------------------------------------------------------------------------- CPUs


def test_no_cgroup_means_affinity(tmp_path):
    assert cpus.cgroup_cpu_limit(tmp_path) is None
    assert cpus.usable_cpus(tmp_path, affinity=12) == 12


def test_cgroup_v2_quota_of_the_process_and_its_ancestors(tmp_path):
    write(tmp_path, "proc/self/cgroup", "0::/job/step\n")
    write(tmp_path, "sys/fs/cgroup/job/step/cpu.max", "max 100000\n")
    write(tmp_path, "sys/fs/cgroup/job/cpu.max", "250000 100000\n")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "max 100000\n")
    assert cpus.cgroup_cpu_limit(tmp_path) == 2.5
    assert cpus.usable_cpus(tmp_path, affinity=64) == 2  # 2.5 CPUs round down
    assert cpus.usable_cpus(tmp_path, affinity=1) == 1  # the affinity mask is tighter
    write(tmp_path, "sys/fs/cgroup/job/step/cpu.max", "50000 100000\n")
    assert cpus.usable_cpus(tmp_path, affinity=64) == 1  # half a CPU: still one


def test_cgroup_v2_in_a_container_namespace(tmp_path):
    write(tmp_path, "proc/self/cgroup", "0::/\n")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "400000 100000\n")
    assert cpus.usable_cpus(tmp_path, affinity=32) == 4


def test_cgroup_v1_quota(tmp_path):
    write(tmp_path, "proc/self/cgroup", "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000")
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000")
    assert cpus.usable_cpus(tmp_path, affinity=16) == 3
    write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1")
    assert cpus.usable_cpus(tmp_path, affinity=16) == 16


def test_workers_divide_the_cpus_among_local_ranks(tmp_path):
    write(tmp_path, "proc/self/cgroup", "0::/\n")
    write(tmp_path, "sys/fs/cgroup/cpu.max", "1600000 100000\n")  # 16 CPUs
    one = {"LOCAL_WORLD_SIZE": "1"}
    four = {"LOCAL_WORLD_SIZE": "4"}
    assert cpus.loader_workers("cuda", tmp_path, affinity=64, env=one) == 15
    assert cpus.loader_workers("cuda", tmp_path, affinity=64, env=four) == 3
    assert cpus.loader_workers("cuda", tmp_path, affinity=64, env={}) == 15
    assert cpus.loader_workers("cuda", tmp_path, affinity=2, env=four) == 1  # never none on a GPU
    assert cpus.loader_workers("cpu", tmp_path, affinity=64, env=one) == 0  # threads instead
    assert cpus.loader_workers("cpu", tmp_path, affinity=1, env=one) == 0
    assert cpus.local_world_size({"LOCAL_WORLD_SIZE": "junk"}) == 1


def test_usable_cpus_of_this_process():
    assert 1 <= cpus.usable_cpus() <= (cpus.os.cpu_count() or 1)


# --------------------------------------------------------------------------- /dev/shm


def test_shm_estimate_and_message():
    batch = 256 * 3 * 224 * 224  # uint8 views
    assert cpus.loader_shm_bytes(8, 4, batch) == 8 * 4 * batch
    assert cpus.loader_shm_bytes(0, 4, batch) == 0
    free = 64 * 2**20  # Docker's default
    msg = cpus.shm_problem(8, 4, batch, free=free)
    assert msg and "\n" not in msg
    assert "--workers 0" in msg and "--ipc=host" in msg and "--shm-size" in msg
    assert "8 workers x 4 batches x 36.8 MiB" in msg and "64 MiB free" in msg
    # Room for two workers' batches: the message names two.
    assert "use --workers 2," in cpus.shm_problem(8, 4, batch, free=2 * 4 * batch + 1)
    assert cpus.shm_problem(8, 4, batch, free=8 * 4 * batch) is None
    assert cpus.shm_problem(0, 4, batch, free=0) is None  # no workers, no shared memory


def test_check_shm_raises_usage_error(tmp_path):
    import pytest

    from sslinv.errors import UsageError

    with pytest.raises(UsageError, match=r"--workers 1, or give the container more shared memory"):
        cpus.check_shm(4, 2, 10 * 2**20, free=25 * 2**20)
    cpus.check_shm(4, 2, 10 * 2**20, free=100 * 2**20)
    assert cpus.shm_problem(4, 2, 10 * 2**20, path=tmp_path / "missing") is None  # no /dev/shm: no check
    assert cpus.shm_free(tmp_path) > 0
